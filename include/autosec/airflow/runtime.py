"""What every autosec task needs from its surroundings: store, clock, settings, blob store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

from autosec.airflow.hooks import ObjectStorageBlobStore, store_connection
from autosec.config.estate import EstateConfig, load_estate
from autosec.config.settings import get_settings


def now() -> datetime:
    return datetime.now(UTC)


def store():
    return store_connection()


@cache
def estate() -> EstateConfig:
    return load_estate(get_settings().estate)


def policy():
    from autosec.config.policy import load_policy

    return load_policy(estate().resolve(estate().policy))


@contextmanager
def source_access(source) -> Iterator[tuple[str | None, Any, Any]]:
    """(path, endpoint, session) for one inventory source: a file's resolved path, or an HTTP
    source's endpoint from its Airflow connection and a session closed afterwards."""
    if source.kind == "file":
        yield str(estate().resolve(source.path)), None, None
        return
    import requests
    from airflow.sdk import BaseHook

    from autosec.inventory.registry import get_source

    endpoint = get_source(source.kind).endpoint_from_connection(
        BaseHook.get_connection(source.conn_id)
    )
    with requests.Session() as session:
        yield None, endpoint, session


def blob_store() -> ObjectStorageBlobStore:
    return ObjectStorageBlobStore(get_settings().data_dir)


def run_ref(context: Any) -> str:
    return f"{context['dag'].dag_id}/{context['run_id']}"


def remediation_tools() -> tuple[dict, Any]:
    """Each action built from its Airflow connection, and the HTTP session they share.

    An action whose connection is not defined is left out: applying it fails with a clear
    error in the ledger, and the other actions still run.
    """
    import requests
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from autosec.remediation.actions import notify, patch_request, quarantine, ticket

    config = estate().remediation
    builders = {
        "ticket": (
            config.ticket_conn_id,
            lambda c: ticket.TicketAction(ticket.TicketEndpoint.from_connection(c)),
        ),
        "notify": (
            config.notify_conn_id,
            lambda c: notify.NotifyAction(notify.notify_endpoint_from_connection(c)),
        ),
        "quarantine": (
            config.enforcement_conn_id,
            lambda c: quarantine.QuarantineAction(quarantine.QuarantineEndpoint.from_connection(c)),
        ),
        "patch_request": (
            config.githost_conn_id,
            lambda c: patch_request.PatchRequestAction(
                patch_request.GitHostEndpoint.from_connection(c)
            ),
        ),
    }
    actions = {}
    for name, (conn_id, build) in builders.items():
        try:
            connection = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            continue
        actions[name] = build(connection)
    return actions, requests.Session()

"""What every autosec task needs from its surroundings: store, clock, settings, blob store."""

from __future__ import annotations

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


def blob_store() -> ObjectStorageBlobStore:
    return ObjectStorageBlobStore(get_settings().data_dir)


def run_ref(context: Any) -> str:
    return f"{context['dag'].dag_id}/{context['run_id']}"


def remediation_tools() -> tuple[dict, Any]:
    """Actions built from their Airflow connections, and the HTTP session they share."""
    import requests
    from airflow.sdk import BaseHook

    from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint

    connection = BaseHook.get_connection(estate().remediation.ticket_conn_id)
    scheme = "https" if (connection.conn_type or "").lower() == "https" else "http"
    port = f":{connection.port}" if connection.port else ""
    endpoint = TicketEndpoint(
        base_url=f"{scheme}://{connection.host}{port}", token=connection.password or None
    )
    return {"ticket": TicketAction(endpoint)}, requests.Session()

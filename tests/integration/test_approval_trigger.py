"""The approval gate's trigger against the real store, run on an asyncio loop as the triggerer does.

The trigger reads its store connection the way it does in Airflow: ``BaseHook.aget_connection``
resolves ``AIRFLOW_CONN_AUTOSEC_DB`` from the environment, so no running Airflow is needed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from autosec.airflow.triggers import ApprovalTrigger
from autosec.store import approvals, db

pytestmark = pytest.mark.integration
POLL = 0.05
HASH = "c" * 64


@pytest.fixture
def store_env(conn, store_url, monkeypatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_AUTOSEC_DB", store_url)
    return store_url


def _request(conn, created: datetime | None = None, hours: float = 1) -> int:
    approval_id = approvals.create_approval(
        conn,
        "autosec-scheduler",
        ["alice", "bob"],
        1,
        "ticket: exposed db",
        "rule-1",
        HASH,
        created or datetime.now(UTC),
        hours,
    )
    conn.commit()
    return approval_id


def _decide(url: str, approval_id: int, decision: str) -> str:
    """Another process deciding: its own connection, on another thread."""
    with db.connect(url) as other:
        return approvals.decide(
            other, approval_id, "alice", decision, f"{decision} from the UI", datetime.now(UTC)
        )


def _first_event(trigger: ApprovalTrigger, timeout: float = 5):
    async def first():
        events = trigger.run()
        try:
            return await asyncio.wait_for(anext(events), timeout)
        finally:
            await events.aclose()

    return asyncio.run(first())


def test_waits_while_pending_and_fires_once_every_request_is_decided(conn, store_env) -> None:
    first, second = _request(conn), _request(conn)
    trigger = ApprovalTrigger([first, second], poll_interval=POLL)

    async def scenario():
        events = trigger.run()
        waiting = asyncio.create_task(anext(events))
        try:
            await asyncio.sleep(10 * POLL)
            assert not waiting.done(), "fired while both requests were pending"
            assert await asyncio.to_thread(_decide, store_env, first, "approve") == "approved"
            await asyncio.sleep(10 * POLL)
            assert not waiting.done(), "fired while one request was still pending"
            assert await asyncio.to_thread(_decide, store_env, second, "reject") == "rejected"
            return await asyncio.wait_for(waiting, 5)
        finally:
            waiting.cancel()
            await events.aclose()

    event = asyncio.run(asyncio.wait_for(scenario(), 20))

    assert event.payload == {
        "status": "settled",
        "approvals": {str(first): "approved", str(second): "rejected"},
    }


def test_a_request_past_its_expiry_fires_as_expired(conn, store_env) -> None:
    stale = _request(conn, created=datetime.now(UTC) - timedelta(hours=2), hours=1)
    live = _request(conn)
    _decide(store_env, live, "approve")

    event = _first_event(ApprovalTrigger([stale, live], poll_interval=POLL))

    assert event.payload == {
        "status": "settled",
        "approvals": {str(stale): "expired", str(live): "approved"},
    }
    # The trigger only reads: recording the expiry is the sensor's job when it resumes.
    assert approvals.statuses(conn, [stale]) == {stale: "pending"}


def test_unknown_ids_fire_an_error(conn, store_env) -> None:
    known = _request(conn)

    event = _first_event(ApprovalTrigger([known, known + 1000], poll_interval=POLL))

    assert event.payload == {"status": "error", "error": f"unknown approval ids [{known + 1000}]"}


def test_an_unreachable_store_fires_an_error_after_the_allowed_failures(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUTOSEC_DB_DOWN", "postgresql://postgres@127.0.0.1:1/none")
    trigger = ApprovalTrigger(
        [1], conn_id="autosec_db_down", poll_interval=0.01, max_connect_failures=2
    )

    event = _first_event(trigger)

    assert event.payload["status"] == "error"
    assert "127.0.0.1" in event.payload["error"]


def test_serialize_round_trips() -> None:
    trigger = ApprovalTrigger(["7", 3], conn_id="store", poll_interval=0.5, max_connect_failures=4)

    classpath, kwargs = trigger.serialize()

    assert kwargs == {
        "approval_ids": [7, 3],
        "conn_id": "store",
        "poll_interval": 0.5,
        "max_connect_failures": 4,
    }
    json.dumps(kwargs)  # what the triggerer stores must be plain data
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is ApprovalTrigger
    assert cls(**kwargs).serialize() == (classpath, kwargs)

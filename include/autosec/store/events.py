"""The lifecycle event log (finding.new, blind_spot.found, approval.requested, ...).

The names are ``autosec.notifications.events.EVENT_NAMES``; routing them to people is
``autosec.store.notifications``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import psycopg
from psycopg.types.json import Jsonb

from autosec.notifications.events import EVENT_NAMES


def emit(conn: psycopg.Connection, name: str, subject: str, payload: dict | None = None) -> None:
    emit_many(conn, name, [(subject, payload or {})])


def emit_many(conn: psycopg.Connection, name: str, items: Iterable[tuple[str, dict]]) -> None:
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown event {name!r}: known events are {sorted(EVENT_NAMES)}")
    rows = [(name, subject, Jsonb(payload)) for subject, payload in items]
    if rows:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO events (name, subject, payload) VALUES (%s, %s, %s)", rows)


def undelivered(conn: psycopg.Connection, names: Iterable[str], limit: int = 1000) -> list[dict]:
    """Events of these names that no notifier has delivered yet, oldest first."""
    from psycopg.rows import dict_row

    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, name, subject, payload, at FROM events "
            "WHERE delivered_at IS NULL AND name = ANY(%s) ORDER BY id LIMIT %s",
            (sorted(set(names)), limit),
        )
        .fetchall()
    )


def mark_delivered(conn: psycopg.Connection, event_ids: Iterable[int], now) -> int:
    rows = conn.execute(
        "UPDATE events SET delivered_at = %s WHERE id = ANY(%s) AND delivered_at IS NULL "
        "RETURNING id",
        (now, list(event_ids)),
    ).fetchall()
    return len(rows)


def emitted_on(conn: psycopg.Connection, name: str, subject: str, day: date) -> bool:
    """Whether ``name`` was already raised about ``subject`` for ``day`` (the ``day`` in its
    payload): for reminders that must not repeat on every run (a stale feed is worth one word
    a day)."""
    row = conn.execute(
        "SELECT 1 FROM events WHERE name = %s AND subject = %s AND payload->>'day' = %s LIMIT 1",
        (name, subject, day.isoformat()),
    ).fetchone()
    return row is not None

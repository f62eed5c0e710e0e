"""The lifecycle event log (finding.new, blind_spot.found, approval.requested, ...)."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb

EVENT_NAMES = frozenset(
    {
        "scan.failed",
        "finding.new",
        "finding.black_swan",
        "approval.requested",
        "approval.expired",
        "sla.breached",
        "report.ready",
        "blind_spot.found",
        "blind_spot.assigned",
        "blind_spot.dismissed",
        "blind_spot.adopted",
        "input.rejected",
        "action.rolled_back",
        "action.rollback_refused",
        "action.unplannable",
        "break_glass.opened",
        "break_glass.closed",
        "break_glass.used",
        "break_glass.refused",
        "verification.requested",
        "verification.settled",
        "ticket.commented",
        "ticket.closed",
        "drill.completed",
        "import.finished",
        "intel.feed_stale",
        "exception.requested",
        "exception.approved",
        "exception.revoked",
        "exception.expired",
        "triage.rejected",
    }
)


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

"""Reports the report stage wrote, with their sha256, and the data they are built from."""

from __future__ import annotations

from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row


def record_report(
    conn: psycopg.Connection,
    kind: str,
    media_type: str,
    period_start: date,
    period_end: date,
    path: str,
    sha256: str,
    size: int,
    policy_hash: str | None,
    now: datetime,
) -> int:
    row = conn.execute(
        "INSERT INTO reports (kind, media_type, period_start, period_end, path, sha256, "
        "size_bytes, policy_hash, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (kind, media_type, period_start, period_end, path, sha256, size, policy_hash, now),
    ).fetchone()
    return int(row[0])


def list_reports(conn: psycopg.Connection) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM reports ORDER BY created_at DESC, id DESC")
        .fetchall()
    )


def report_inputs(conn: psycopg.Connection) -> dict[str, list[dict]]:
    """Everything a posture report shows, as plain rows."""
    cur = conn.cursor(row_factory=dict_row)
    return {
        "assets": cur.execute(
            "SELECT a.*, (SELECT max(last_success_at) FROM asset_scan_state s "
            " WHERE s.asset_id = a.id) AS last_scanned FROM assets a "
            "WHERE a.status = 'active' ORDER BY a.id"
        ).fetchall(),
        "findings": cur.execute(
            "SELECT f.*, a.name AS asset_name FROM findings f JOIN assets a ON a.id = f.asset_id "
            "ORDER BY f.id"
        ).fetchall(),
        "blind_spots": cur.execute(
            "SELECT * FROM blind_spots WHERE status = 'open' ORDER BY address, port"
        ).fetchall(),
        "actions": cur.execute(
            "SELECT x.*, d.rule_id, f.asset_id FROM actions x "
            "JOIN policy_decisions d ON d.id = x.decision_id "
            "JOIN findings f ON f.id = x.finding_id "
            "ORDER BY x.id"
        ).fetchall(),
        "approvals": cur.execute("SELECT * FROM approvals ORDER BY id").fetchall(),
        "approval_decisions": cur.execute(
            "SELECT * FROM approval_decisions ORDER BY approval_id, id"
        ).fetchall(),
    }


def latest_drills(conn: psycopg.Connection, since: datetime) -> list[dict]:
    """The most recent result of each drill since ``since`` (from ``drill.completed``)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT DISTINCT ON (subject) subject, payload, at FROM events "
            "WHERE name = 'drill.completed' AND at >= %s ORDER BY subject, id DESC",
            (since,),
        )
        .fetchall()
    )

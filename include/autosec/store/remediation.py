"""The decision log and the action ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


def record_decision(
    conn: psycopg.Connection, finding_id: int, decision, now: datetime, run_ref: str | None
) -> int | None:
    """Store one decision; None when this finding already has one under this policy version."""
    row = conn.execute(
        "INSERT INTO policy_decisions (finding_id, policy_hash, policy_version, rule_id, action, "
        "mode, inputs, reasons, decided_at, run_ref, dry_run) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (finding_id, policy_hash, dry_run) DO NOTHING RETURNING id",
        (
            finding_id,
            decision.policy_hash,
            decision.policy_version or "",
            decision.rule_id,
            decision.action,
            decision.mode,
            Jsonb(decision.as_record()),
            Jsonb(list(decision.reasons)),
            now,
            run_ref,
            decision.dry_run,
        ),
    ).fetchone()
    return int(row[0]) if row else None


def record_action(
    conn: psycopg.Connection,
    decision_id: int,
    finding_id: int,
    request,
    mode: str,
    now: datetime,
) -> int | None:
    """Add a planned action to the ledger; None when its idempotency key is already there.

    A dry run is recorded under its own ledger key, so it never stands in for the real action.
    """
    key = request.idempotency_key
    if request.dry_run:
        key = hashlib.sha256(f"dry-run:{key}".encode()).hexdigest()
    row = conn.execute(
        "INSERT INTO actions (idempotency_key, decision_id, finding_id, action, mode, status, "
        "dry_run, request, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 'planned', %s, %s,"
        " %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        (
            key,
            decision_id,
            finding_id,
            request.action,
            mode,
            request.dry_run,
            Jsonb(request.as_dict()),
            now,
            now,
        ),
    ).fetchone()
    return int(row[0]) if row else None


def gate_action(conn: psycopg.Connection, action_id: int, approval_id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE actions SET status = 'awaiting_approval', approval_id = %s, updated_at = %s "
        "WHERE id = %s",
        (approval_id, now, action_id),
    )


def actions_to_apply(conn: psycopg.Connection, action_ids: Sequence[int]) -> list[dict]:
    """Planned (or previously failed) actions among ``action_ids``, locked for this task."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM actions WHERE id = ANY(%s) AND status IN ('planned', 'failed') "
            "ORDER BY id FOR UPDATE SKIP LOCKED",
            (list(action_ids),),
        )
        .fetchall()
    )


def record_result(conn: psycopg.Connection, action_id: int, result, now: datetime) -> None:
    conn.execute(
        "UPDATE actions SET status = %s, result = %s, external_ref = %s, updated_at = %s "
        "WHERE id = %s",
        (result.status, Jsonb(result.as_dict()), result.external_ref, now, action_id),
    )


def release_gated(
    conn: psycopg.Connection, approval_ids: Sequence[int], now: datetime
) -> tuple[list[int], list[int]]:
    """After the gate: approved actions become planned, the others rejected. Returns both."""
    approved = conn.execute(
        "UPDATE actions x SET status = 'planned', updated_at = %s FROM approvals a "
        "WHERE x.approval_id = a.id AND a.id = ANY(%s) AND a.status = 'approved' "
        "AND x.status = 'awaiting_approval' RETURNING x.id",
        (now, list(approval_ids)),
    ).fetchall()
    rejected = conn.execute(
        "UPDATE actions x SET status = 'rejected', updated_at = %s FROM approvals a "
        "WHERE x.approval_id = a.id AND a.id = ANY(%s) AND a.status IN ('rejected', 'expired') "
        "AND x.status = 'awaiting_approval' RETURNING x.id",
        (now, list(approval_ids)),
    ).fetchall()
    return [r[0] for r in approved], [r[0] for r in rejected]


def approved_action_ids(conn: psycopg.Connection, approval_ids: Sequence[int]) -> list[int]:
    rows = conn.execute(
        "SELECT x.id FROM actions x JOIN approvals a ON a.id = x.approval_id "
        "WHERE a.id = ANY(%s) AND a.status = 'approved' ORDER BY x.id",
        (list(approval_ids),),
    ).fetchall()
    return [r[0] for r in rows]


def decision_for(conn: psycopg.Connection, finding_id: int) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM policy_decisions WHERE finding_id = %s ORDER BY id", (finding_id,))
        .fetchall()
    )

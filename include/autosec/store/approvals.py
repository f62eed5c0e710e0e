"""Approval requests and their append-only decision log.

A request is either an approval gate (``kind`` 'approval': nothing happens until it passes) or
a review (``kind`` 'review': an on-the-loop action was taken and a reviewer keeps it by
approving or has it rolled back by rejecting). Both follow the same rules.

The rules (no self-approval, quorum, reason on reject, expiry) are pure code in
``autosec.remediation.approvals``; this module loads, locks and records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from autosec.remediation import approvals as rules
from autosec.store import events

SYSTEM_APPROVER = "autosec"
KINDS = ("approval", "review")
_READ_REQUEST = "SELECT * FROM approvals WHERE id = %s"
_LOCK_REQUEST = "SELECT * FROM approvals WHERE id = %s FOR UPDATE"


def create_approval(
    conn: psycopg.Connection,
    requester: str,
    approvers: Sequence[str],
    quorum: int,
    summary: str,
    rule_id: str | None,
    policy_hash: str,
    now: datetime,
    expiry_hours: float,
    kind: str = "approval",
) -> int:
    if kind not in KINDS:
        raise ValueError(f"approval request kind {kind!r}: expected one of {', '.join(KINDS)}")
    row = conn.execute(
        "INSERT INTO approvals (kind, requester, approvers, quorum, status, summary, rule_id, "
        "policy_hash, created_at, expires_at) "
        "VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s, %s, %s) RETURNING id",
        (
            kind,
            requester,
            list(approvers),
            quorum,
            summary,
            rule_id,
            policy_hash,
            now,
            now + timedelta(hours=expiry_hours),
        ),
    ).fetchone()
    approval_id = int(row[0])
    events.emit(
        conn,
        "approval.requested",
        f"approval:{approval_id}",
        {"summary": summary, "approvers": list(approvers), "quorum": quorum, "kind": kind},
    )
    return approval_id


def load_request(conn: psycopg.Connection, approval_id: int, lock: bool = False):
    cur = conn.cursor(row_factory=dict_row)
    query = _LOCK_REQUEST if lock else _READ_REQUEST
    row = cur.execute(query, (approval_id,)).fetchone()
    if row is None:
        raise rules.ApprovalRefused(f"approval {approval_id} does not exist")
    decisions = cur.execute(
        "SELECT * FROM approval_decisions WHERE approval_id = %s ORDER BY id", (approval_id,)
    ).fetchall()
    return rules.ApprovalRequest(
        id=row["id"],
        requester=row["requester"],
        approvers=tuple(row["approvers"]),
        quorum=row["quorum"],
        status=row["status"],
        expires_at=row["expires_at"],
        decisions=[
            rules.ApprovalDecision(
                approver=d["approver"],
                decision=d["decision"],
                reason=d["reason"],
                decided_at=d["decided_at"],
                policy_hash=d["policy_hash"],
            )
            for d in decisions
        ],
    ), row["policy_hash"]


def decide(
    conn: psycopg.Connection,
    approval_id: int,
    approver: str,
    decision: str,
    reason: str | None,
    now: datetime,
    approver_groups: Sequence[str] = (),
) -> str:
    """Record one approver's decision; returns the request's status afterwards.

    Raises ``ApprovalRefused`` (and records nothing) when the rules say no. An expired
    request is recorded as expired first, so the refusal leaves the store consistent.
    """
    with conn.transaction():
        request, policy_hash = load_request(conn, approval_id, lock=True)
        if request.status == "pending" and rules.is_expired(request, now):
            _expire(conn, approval_id, policy_hash, now)
            expired = True
        else:
            expired = False
    if expired:
        conn.commit()
        raise rules.ApprovalRefused(f"approval {approval_id} expired at {request.expires_at}")
    with conn.transaction():
        request, policy_hash = load_request(conn, approval_id, lock=True)
        status, recorded = rules.apply_decision(
            request, approver, decision, reason, now, approver_groups=approver_groups
        )
        conn.execute(
            "INSERT INTO approval_decisions (approval_id, approver, decision, reason, "
            "policy_hash, decided_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (approval_id, recorded.approver, recorded.decision, recorded.reason, policy_hash, now),
        )
        if status != request.status:
            conn.execute(
                "UPDATE approvals SET status = %s, decided_at = %s WHERE id = %s",
                (status, now, approval_id),
            )
    conn.commit()
    return status


def _expire(conn: psycopg.Connection, approval_id: int, policy_hash: str, now: datetime) -> None:
    conn.execute(
        "UPDATE approvals SET status = 'expired', decided_at = %s, escalated_at = %s WHERE id = %s",
        (now, now, approval_id),
    )
    conn.execute(
        "INSERT INTO approval_decisions (approval_id, approver, decision, reason, policy_hash, "
        "decided_at) VALUES (%s, %s, 'expire', 'expired without a decision: rejected (fail safe)',"
        " %s, %s)",
        (approval_id, SYSTEM_APPROVER, policy_hash, now),
    )
    events.emit(conn, "approval.expired", f"approval:{approval_id}", {"escalated": True})


def expire_due(
    conn: psycopg.Connection, approval_ids: Sequence[int] | None = None, now: datetime | None = None
) -> list[int]:
    """Expire every pending request past its expiry (optionally among ``approval_ids``)."""
    query = "SELECT id, policy_hash FROM approvals WHERE status = 'pending' AND expires_at <= %s"
    params: list = [now or datetime.now().astimezone()]
    if approval_ids is not None:
        query += " AND id = ANY(%s)"
        params.append(list(approval_ids))
    expired = []
    for approval_id, policy_hash in conn.execute(query + " FOR UPDATE", params).fetchall():
        _expire(conn, approval_id, policy_hash, params[0])
        expired.append(approval_id)
    conn.commit()
    return expired


def statuses(conn: psycopg.Connection, approval_ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute(
        "SELECT id, status FROM approvals WHERE id = ANY(%s)", (list(approval_ids),)
    ).fetchall()
    return {int(r[0]): r[1] for r in rows}


def all_settled(conn: psycopg.Connection, approval_ids: Sequence[int]) -> bool:
    """True when no request is still waiting (pending and not yet past its expiry)."""
    row = conn.execute(
        "SELECT count(*) FROM approvals WHERE id = ANY(%s) AND status = 'pending' "
        "AND expires_at > now()",
        (list(approval_ids),),
    ).fetchone()
    return row[0] == 0


def list_approvals(
    conn: psycopg.Connection, status: str | None = None, kind: str | None = None
) -> list[dict]:
    """Requests (one row per linked action: a gate's or a review's), optionally filtered."""
    query = (
        "SELECT a.*, x.action, x.finding_id, f.asset_id, f.title AS finding_title, f.severity "
        "FROM approvals a LEFT JOIN actions x ON a.id IN (x.approval_id, x.review_id) "
        "LEFT JOIN findings f ON f.id = x.finding_id"
    )
    conditions: list[str] = []
    params: list = []
    if status:
        conditions.append("a.status = %s")
        params.append(status)
    if kind:
        conditions.append("a.kind = %s")
        params.append(kind)
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    return conn.cursor(row_factory=dict_row).execute(query + " ORDER BY a.id", params).fetchall()


def decisions_for(conn: psycopg.Connection, approval_id: int) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM approval_decisions WHERE approval_id = %s ORDER BY id", (approval_id,)
        )
        .fetchall()
    )


async def poll_states(aconn: psycopg.AsyncConnection, approval_ids: Sequence[int]) -> list[tuple]:
    """(id, status, expired) for each request; used by the gate's trigger without blocking."""
    cursor = await aconn.execute(
        "SELECT id, status, (status = 'pending' AND expires_at <= now()) AS expired "
        "FROM approvals WHERE id = ANY(%s)",
        (list(approval_ids),),
    )
    return await cursor.fetchall()

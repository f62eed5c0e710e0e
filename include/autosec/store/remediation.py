"""The decision log, the action ledger, rollbacks, break glass sessions and verifications."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_READ_ACTION = "SELECT * FROM actions WHERE id = %s"
_LOCK_ACTION = "SELECT * FROM actions WHERE id = %s FOR UPDATE"
_READ_SESSION = "SELECT * FROM break_glass_sessions WHERE id = %s"
_LOCK_SESSION = "SELECT * FROM break_glass_sessions WHERE id = %s FOR UPDATE"


def record_decision(
    conn: psycopg.Connection, finding_id: int, decision, now: datetime, run_ref: str | None
) -> int | None:
    """Store one decision; None when this finding already has one under this policy version.

    A decision that break glass changed names the session (``decision.break_glass_id``).
    """
    row = conn.execute(
        "INSERT INTO policy_decisions (finding_id, policy_hash, policy_version, rule_id, action, "
        "mode, inputs, reasons, decided_at, run_ref, dry_run, break_glass_session_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
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
            decision.break_glass_id if decision.break_glass_used else None,
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


# --- actions: reviews and rollbacks --------------------------------------------------------------


def load_action(conn: psycopg.Connection, action_id: int, lock: bool = False) -> dict | None:
    """One ledger row (locked for this transaction when ``lock``), or None."""
    query = _LOCK_ACTION if lock else _READ_ACTION
    return conn.cursor(row_factory=dict_row).execute(query, (action_id,)).fetchone()


def actions_needing_review(conn: psycopg.Connection, action_ids: Sequence[int]) -> list[dict]:
    """Applied on-the-loop actions among ``action_ids`` that have no review yet.

    Each row carries the decision record (approvers, quorum, expiry) and what the finding is,
    so the review can be filed without another lookup. Locked for this task.
    """
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT x.id, x.action, x.external_ref, x.finding_id, d.inputs AS decision, "
            "d.rule_id, d.policy_hash, f.title, f.asset_id, f.severity "
            "FROM actions x JOIN policy_decisions d ON d.id = x.decision_id "
            "JOIN findings f ON f.id = x.finding_id "
            "WHERE x.id = ANY(%s) AND x.mode = 'on_the_loop' AND x.status = 'applied' "
            "AND NOT x.dry_run AND x.review_id IS NULL ORDER BY x.id FOR UPDATE OF x SKIP LOCKED",
            (list(action_ids),),
        )
        .fetchall()
    )


def attach_review(conn: psycopg.Connection, action_id: int, review_id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE actions SET review_id = %s, updated_at = %s WHERE id = %s",
        (review_id, now, action_id),
    )


def review_ids_for(conn: psycopg.Connection, action_ids: Sequence[int]) -> list[int]:
    """The review requests opened for ``action_ids`` (none for gated or automatic ones)."""
    rows = conn.execute(
        "SELECT review_id FROM actions WHERE id = ANY(%s) AND review_id IS NOT NULL "
        "ORDER BY review_id",
        (list(action_ids),),
    ).fetchall()
    return [int(r[0]) for r in rows]


def record_rollback_attempt(
    conn: psycopg.Connection,
    action_id: int,
    actor: str,
    reason: str,
    outcome: str,
    detail: dict[str, Any],
    now: datetime,
    review_id: int | None = None,
) -> int:
    """Append one attempt to the rollback log: rolled_back, refused or failed."""
    row = conn.execute(
        "INSERT INTO action_rollbacks (action_id, review_id, actor, reason, outcome, detail, at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (action_id, review_id, actor, reason, outcome, Jsonb(detail), now),
    ).fetchone()
    return int(row[0])


def record_rollback(
    conn: psycopg.Connection,
    action_id: int,
    result: dict[str, Any],
    actor: str,
    reason: str,
    now: datetime,
    review_id: int | None = None,
) -> None:
    """The action was undone: status rolled_back, with the result, who, why and when."""
    conn.execute(
        "UPDATE actions SET status = 'rolled_back', rollback_result = %s, rolled_back_by = %s, "
        "rollback_reason = %s, rolled_back_at = %s, updated_at = %s WHERE id = %s",
        (Jsonb(result), actor, reason, now, now, action_id),
    )
    record_rollback_attempt(conn, action_id, actor, reason, "rolled_back", result, now, review_id)


def rollbacks_for(conn: psycopg.Connection, action_id: int) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM action_rollbacks WHERE action_id = %s ORDER BY id", (action_id,))
        .fetchall()
    )


def rejected_reviews(conn: psycopg.Connection) -> list[dict]:
    """Applied actions whose review was rejected: (action_id, review_id, approver, reason).

    An action whose rollback was refused (it cannot be undone) is left out, so a sweep does
    not refuse it again on every run; a failed attempt (the remote system was down) is retried.
    """
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT x.id AS action_id, a.id AS review_id, d.approver, d.reason "
            "FROM actions x JOIN approvals a ON a.id = x.review_id "
            "JOIN approval_decisions d ON d.approval_id = a.id AND d.decision = 'reject' "
            "WHERE a.kind = 'review' AND a.status = 'rejected' AND x.status = 'applied' "
            "AND NOT EXISTS (SELECT 1 FROM action_rollbacks r WHERE r.action_id = x.id "
            "AND r.outcome = 'refused') ORDER BY x.id"
        )
        .fetchall()
    )


def pending_review_ids(conn: psycopg.Connection) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM approvals WHERE kind = 'review' AND status = 'pending' ORDER BY id"
    ).fetchall()
    return [int(r[0]) for r in rows]


# --- break glass --------------------------------------------------------------------------------

_BREAK_GLASS_LOCK = "autosec.break_glass"


def lock_break_glass(conn: psycopg.Connection) -> None:
    """Serialise opening and closing sessions until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_BREAK_GLASS_LOCK,))


def active_break_glass(conn: psycopg.Connection, now: datetime) -> dict | None:
    """The session in force at ``now`` (opened, not closed, not expired), newest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM break_glass_sessions WHERE closed_at IS NULL AND opened_at <= %s "
            "AND expires_at > %s ORDER BY opened_at DESC, id DESC LIMIT 1",
            (now, now),
        )
        .fetchone()
    )


def open_break_glass(
    conn: psycopg.Connection,
    opened_by: str,
    reason: str,
    opened_at: datetime,
    expires_at: datetime,
    suspended_rules: Iterable[str],
    policy_hash: str,
) -> int:
    row = conn.execute(
        "INSERT INTO break_glass_sessions (opened_by, reason, opened_at, expires_at, "
        "suspended_rules, policy_hash) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (opened_by, reason, opened_at, expires_at, sorted(suspended_rules), policy_hash),
    ).fetchone()
    return int(row[0])


def load_break_glass(conn: psycopg.Connection, session_id: int, lock: bool = False) -> dict | None:
    query = _LOCK_SESSION if lock else _READ_SESSION
    return conn.cursor(row_factory=dict_row).execute(query, (session_id,)).fetchone()


def close_break_glass(
    conn: psycopg.Connection, session_id: int, closed_by: str, now: datetime
) -> bool:
    """Close an open session; False when it was already closed."""
    row = conn.execute(
        "UPDATE break_glass_sessions SET closed_at = %s, closed_by = %s "
        "WHERE id = %s AND closed_at IS NULL RETURNING id",
        (now, closed_by, session_id),
    ).fetchone()
    return row is not None


def break_glass_sessions(conn: psycopg.Connection, since: datetime) -> list[dict]:
    """Sessions in force at any time from ``since`` on, oldest first, with how often each
    changed a decision (``uses``) and when it stopped (``ended_at``: closed or expired)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT s.*, LEAST(COALESCE(s.closed_at, s.expires_at), s.expires_at) AS ended_at, "
            "(SELECT count(*) FROM policy_decisions d WHERE d.break_glass_session_id = s.id) "
            "AS uses FROM break_glass_sessions s "
            "WHERE LEAST(COALESCE(s.closed_at, s.expires_at), s.expires_at) >= %s "
            "ORDER BY s.opened_at, s.id",
            (since,),
        )
        .fetchall()
    )


def break_glass_uses(conn: psycopg.Connection, session_id: int) -> list[dict]:
    """The decisions a session changed, with the finding each was about."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT d.id AS decision_id, d.finding_id, d.rule_id, d.action, d.mode, d.decided_at, "
            "d.inputs->'skipped_rules' AS skipped_rules, f.asset_id, f.title "
            "FROM policy_decisions d JOIN findings f ON f.id = d.finding_id "
            "WHERE d.break_glass_session_id = %s ORDER BY d.id",
            (session_id,),
        )
        .fetchall()
    )


# --- verification rescans -----------------------------------------------------------------------


def add_verification(
    conn: psycopg.Connection,
    action_id: int,
    finding_id: int,
    asset_id: str,
    engine: str,
    now: datetime,
    requested_by: str,
) -> tuple[int, bool]:
    """Ask for a rescan; (id, False) when the action already has one pending."""
    row = conn.execute(
        "INSERT INTO verification_requests (action_id, finding_id, asset_id, engine, "
        "requested_at, requested_by) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (action_id) WHERE outcome IS NULL DO NOTHING RETURNING id",
        (action_id, finding_id, asset_id, engine, now, requested_by),
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    existing = conn.execute(
        "SELECT id FROM verification_requests WHERE action_id = %s AND outcome IS NULL",
        (action_id,),
    ).fetchone()
    return int(existing[0]), False


def pending_verifications(conn: psycopg.Connection, engine: str) -> list[str]:
    """Active assets with a verification waiting for a rescan by ``engine``: the scan planner
    adds them to what is due, whatever their cadence says."""
    rows = conn.execute(
        "SELECT DISTINCT v.asset_id FROM verification_requests v "
        "JOIN assets a ON a.id = v.asset_id "
        "WHERE v.outcome IS NULL AND v.engine = %s AND a.status = 'active' ORDER BY v.asset_id",
        (engine,),
    ).fetchall()
    return [r[0] for r in rows]


def pending_verification_rows(conn: psycopg.Connection) -> list[dict]:
    """Pending requests with their finding's status and the run that last reported it."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT v.*, f.status AS finding_status, f.last_scan_run_id, "
            "(SELECT h.scan_run_id FROM finding_history h WHERE h.finding_id = f.id "
            " AND h.to_status = 'fixed' ORDER BY h.id DESC LIMIT 1) AS fixed_by_scan_run_id "
            "FROM verification_requests v JOIN findings f ON f.id = v.finding_id "
            "WHERE v.outcome IS NULL ORDER BY v.id FOR UPDATE OF v SKIP LOCKED"
        )
        .fetchall()
    )


def rescans_since(
    conn: psycopg.Connection, asset_id: str, engine: str, since: datetime
) -> list[int]:
    """Successful, triaged runs of ``engine`` over ``asset_id`` that started at or after
    ``since``, oldest first: only their results can say whether a fix held."""
    rows = conn.execute(
        "SELECT id FROM scan_runs WHERE engine = %s AND %s = ANY(asset_ids) "
        "AND status = 'succeeded' AND triaged_at IS NOT NULL AND started_at >= %s ORDER BY id",
        (engine, asset_id, since),
    ).fetchall()
    return [int(r[0]) for r in rows]


def settle_verification(
    conn: psycopg.Connection, verification_id: int, outcome: str, scan_run_id: int, now: datetime
) -> None:
    conn.execute(
        "UPDATE verification_requests SET outcome = %s, scan_run_id = %s, settled_at = %s "
        "WHERE id = %s AND outcome IS NULL",
        (outcome, scan_run_id, now, verification_id),
    )


def verifications_for(conn: psycopg.Connection, action_id: int) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM verification_requests WHERE action_id = %s ORDER BY id", (action_id,)
        )
        .fetchall()
    )


# --- follow-up after acting ----------------------------------------------------------------------


def follow_up_candidates(conn: psycopg.Connection, kinds: Sequence[str]) -> list[int]:
    """Applied actions of ``kinds`` (not dry runs, not rolled back) with something to follow up.

    Their finding is still open (the remote side may report a fix), fixed while the ticket is
    not yet closed, or was reopened after the action was planned (a comment may be owed).
    """
    rows = conn.execute(
        "SELECT x.id FROM actions x JOIN findings f ON f.id = x.finding_id "
        "WHERE x.status = 'applied' AND NOT x.dry_run AND x.action = ANY(%s) "
        "AND (f.status IN ('open', 'reopened') "
        " OR (f.status = 'fixed' AND x.action = 'ticket' AND x.closed_at IS NULL) "
        " OR EXISTS (SELECT 1 FROM finding_history h WHERE h.finding_id = f.id "
        "  AND h.to_status = 'reopened' AND h.at > x.created_at)) ORDER BY x.id",
        (list(kinds),),
    ).fetchall()
    return [int(r[0]) for r in rows]


def lock_for_follow_up(conn: psycopg.Connection, action_id: int) -> dict | None:
    """The applied action with its finding's status, locked for this transaction; None when it
    is no longer applied or another follow-up run holds it."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT x.id, x.action, x.finding_id, x.result, x.external_ref, x.created_at, "
            "x.closed_at, x.follow_up, f.status AS finding_status, f.asset_id, f.engine, f.title "
            "FROM actions x JOIN findings f ON f.id = x.finding_id "
            "WHERE x.id = %s AND x.status = 'applied' AND NOT x.dry_run "
            "FOR UPDATE OF x SKIP LOCKED",
            (action_id,),
        )
        .fetchone()
    )


def reopen_transitions(conn: psycopg.Connection, finding_id: int, after: datetime) -> list[dict]:
    """The finding's reopen transitions recorded after ``after``, oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, scan_run_id, at FROM finding_history WHERE finding_id = %s "
            "AND to_status = 'reopened' AND at > %s ORDER BY id",
            (finding_id, after),
        )
        .fetchall()
    )


def last_fix(conn: psycopg.Connection, finding_id: int) -> dict | None:
    """The finding's latest transition to fixed, with the engine of the run that closed it."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT h.id, h.scan_run_id, h.at, r.engine FROM finding_history h "
            "LEFT JOIN scan_runs r ON r.id = h.scan_run_id "
            "WHERE h.finding_id = %s AND h.to_status = 'fixed' ORDER BY h.id DESC LIMIT 1",
            (finding_id,),
        )
        .fetchone()
    )


def still_present_verifications(conn: psycopg.Connection, action_id: int) -> list[dict]:
    """The action's verifications whose rescan still found the finding, oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, scan_run_id, settled_at FROM verification_requests "
            "WHERE action_id = %s AND outcome = 'still_present' ORDER BY id",
            (action_id,),
        )
        .fetchall()
    )


def append_follow_up(conn: psycopg.Connection, action_id: int, entry: dict[str, Any]) -> None:
    """Append one entry (JSON-ready) to the action's follow-up log."""
    conn.execute(
        "UPDATE actions SET follow_up = follow_up || jsonb_build_array(%s::jsonb) WHERE id = %s",
        (Jsonb(entry), action_id),
    )


def mark_ticket_closed(
    conn: psycopg.Connection, action_id: int, entry: dict[str, Any], now: datetime
) -> bool:
    """Set ``closed_at`` and log the close; False (nothing written) when it was already set."""
    row = conn.execute(
        "UPDATE actions SET closed_at = %s, follow_up = follow_up || jsonb_build_array(%s::jsonb) "
        "WHERE id = %s AND closed_at IS NULL RETURNING id",
        (now, Jsonb(entry), action_id),
    ).fetchone()
    return row is not None


def replace_follow_up_entry(
    conn: psycopg.Connection, action_id: int, index: int, entry: dict[str, Any]
) -> None:
    """Replace entry ``index`` of the action's follow-up log (a repeated error's count)."""
    conn.execute(
        "UPDATE actions SET follow_up = jsonb_set(follow_up, %s::text[], %s::jsonb) "
        "WHERE id = %s AND %s < jsonb_array_length(follow_up)",
        ([str(index)], Jsonb(entry), action_id, index),
    )


# --- explain ------------------------------------------------------------------------------------


def find_finding(conn: psycopg.Connection, ref: str | int) -> dict | None:
    """A finding by id (digits) or fingerprint (64 hex characters), or None."""
    text = str(ref).strip()
    cur = conn.cursor(row_factory=dict_row)
    if len(text) == 64:
        return cur.execute(
            "SELECT * FROM findings WHERE fingerprint = %s", (text.lower(),)
        ).fetchone()
    if text.isdigit():
        return cur.execute("SELECT * FROM findings WHERE id = %s", (int(text),)).fetchone()
    return None


def _approval_with_log(conn: psycopg.Connection, approval_id: int | None) -> dict | None:
    if approval_id is None:
        return None
    cur = conn.cursor(row_factory=dict_row)
    row = cur.execute(
        "SELECT id, kind, requester, approvers, quorum, status, summary, rule_id, policy_hash, "
        "created_at, expires_at, decided_at, escalated_at FROM approvals WHERE id = %s",
        (approval_id,),
    ).fetchone()
    if row is None:
        return None
    row["decisions"] = cur.execute(
        "SELECT approver, decision, reason, policy_hash, decided_at FROM approval_decisions "
        "WHERE approval_id = %s ORDER BY id",
        (approval_id,),
    ).fetchall()
    return row


def explain_finding(conn: psycopg.Connection, finding_id: int) -> dict:
    """Everything stored about how a finding was decided and acted on, oldest decision first."""
    cur = conn.cursor(row_factory=dict_row)
    finding = cur.execute(
        "SELECT id, fingerprint, asset_id, engine, rule_id, title, severity, status, priority, "
        "due_date, first_seen, last_seen, fixed_at FROM findings WHERE id = %s",
        (finding_id,),
    ).fetchone()
    if finding is None:
        raise LookupError(f"finding {finding_id} does not exist")
    decisions = []
    for d in decision_for(conn, finding_id):
        record = d["inputs"] or {}
        session = (
            load_break_glass(conn, d["break_glass_session_id"])
            if d["break_glass_session_id"] is not None
            else None
        )
        actions = []
        for x in cur.execute(
            "SELECT * FROM actions WHERE decision_id = %s ORDER BY id", (d["id"],)
        ).fetchall():
            actions.append(
                {
                    "id": x["id"],
                    "action": x["action"],
                    "mode": x["mode"],
                    "status": x["status"],
                    "dry_run": x["dry_run"],
                    "external_ref": x["external_ref"],
                    "idempotency_key": x["idempotency_key"].strip(),
                    "created_at": x["created_at"],
                    "updated_at": x["updated_at"],
                    "approval": _approval_with_log(conn, x["approval_id"]),
                    "review": _approval_with_log(conn, x["review_id"]),
                    "rolled_back_by": x["rolled_back_by"],
                    "rollback_reason": x["rollback_reason"],
                    "rolled_back_at": x["rolled_back_at"],
                    "rollbacks": rollbacks_for(conn, x["id"]),
                    "verifications": verifications_for(conn, x["id"]),
                }
            )
        decisions.append(
            {
                "id": d["id"],
                "rule_id": d["rule_id"],
                "action": d["action"],
                "mode": d["mode"],
                "dry_run": d["dry_run"],
                "failed_closed": bool(record.get("failed_closed")),
                "approvers": record.get("approvers", []),
                "quorum": record.get("quorum"),
                "inputs": record.get("inputs", {}),
                "reasons": list(d["reasons"] or []),
                "skipped_rules": record.get("skipped_rules", []),
                "policy_version": d["policy_version"],
                "policy_hash": d["policy_hash"].strip(),
                "decided_at": d["decided_at"],
                "run_ref": d["run_ref"],
                "break_glass": session,
                "actions": actions,
            }
        )
    finding["fingerprint"] = finding["fingerprint"].strip()
    return {"finding": finding, "decisions": decisions}

"""Exceptions (risk acceptance, false positive): requests, approvals, expiry, and the findings
they set aside.

The rules (scope, reason, expiry, no self-approval) are pure code in
``autosec.triage.exceptions``; the table refuses a self-approval too, whatever the caller did.
This module records, and moves findings: an approved, unexpired exception sets the open findings
it matches to ``accepted`` / ``false_positive`` (each with a history row naming the exception),
and when it expires or is revoked they are open again, with history rows, and an event tells
their owners. Functions here do not commit: the caller's transaction holds each step together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from autosec.store import events
from autosec.triage.exceptions import (
    KINDS,
    STATUSES,
    ActiveException,
    ExceptionRefused,
    ExceptionRequest,
    check_approval,
    check_revocation,
)

SYSTEM_ACTOR = "autosec"
_READ = "SELECT * FROM finding_exceptions WHERE id = %s"
_LOCK = "SELECT * FROM finding_exceptions WHERE id = %s FOR UPDATE"
_TARGET_COLUMN = {"finding": "fingerprint", "cve": "cve_id", "asset": "asset_id"}

# For each finding still in play (open, or set aside by an exception), the exception that
# applies: narrowest scope first, then the one that lasts longest, then the oldest (the order of
# autosec.triage.exceptions.precedence). A finding moves when that is not the exception it has:
# an open one is set aside, one set aside by a wider exception moves to the narrower one (a
# false positive on one finding beats a risk acceptance of its whole asset).
_APPLY = """
WITH best AS (
    SELECT DISTINCT ON (f.id) f.id, f.status AS from_status, f.exception_id AS from_exception,
           e.id AS exception_id, e.kind, e.approved_by, e.expires_at, e.reason
    FROM findings f
    JOIN finding_exceptions e ON e.status = 'approved' AND e.expires_at > %(now)s AND (
           (e.scope = 'finding' AND e.fingerprint = f.fingerprint)
        OR (e.scope = 'asset' AND e.asset_id = f.asset_id)
        OR (e.scope = 'cve' AND e.cve_id = ANY(f.cve_ids)))
    WHERE f.status IN ('open', 'reopened', 'accepted', 'false_positive')
      AND (%(assets)s::text[] IS NULL OR f.asset_id = ANY(%(assets)s::text[]))
      AND (%(findings)s::bigint[] IS NULL OR f.id = ANY(%(findings)s::bigint[]))
    ORDER BY f.id, CASE e.scope WHEN 'finding' THEN 0 WHEN 'cve' THEN 1 ELSE 2 END,
             e.expires_at DESC, e.id
),
candidates AS (
    SELECT * FROM best
    WHERE exception_id IS DISTINCT FROM from_exception
      AND (%(exceptions)s::bigint[] IS NULL OR exception_id = ANY(%(exceptions)s::bigint[]))
),
changed AS (
    UPDATE findings f
    SET status = CASE c.kind WHEN 'risk_acceptance' THEN 'accepted' ELSE 'false_positive' END,
        exception_id = c.exception_id
    FROM candidates c
    WHERE f.id = c.id AND f.status = c.from_status
      AND f.exception_id IS NOT DISTINCT FROM c.from_exception
    RETURNING f.id, c.from_status, f.status, c.exception_id, c.kind, c.approved_by,
              c.expires_at, c.reason
)
INSERT INTO finding_history (finding_id, from_status, to_status, scan_run_id, reason, at,
                             exception_id)
SELECT id, from_status, status, %(run)s,
       'exception #' || exception_id || ' (' || replace(kind, '_', ' ') || ', approved by '
       || approved_by || ', until ' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
       || '): ' || left(reason, 200),
       %(now)s, exception_id
FROM changed
RETURNING finding_id, exception_id
"""

_REOPEN = """
WITH old AS (
    SELECT id, status, exception_id FROM findings
    WHERE exception_id = ANY(%(ids)s) AND status IN ('accepted', 'false_positive')
    FOR UPDATE
),
reopened AS (
    UPDATE findings f SET status = 'open', exception_id = NULL
    FROM old WHERE f.id = old.id
    RETURNING f.id, old.status AS from_status, old.exception_id, f.owner, f.asset_id
),
logged AS (
    INSERT INTO finding_history (finding_id, from_status, to_status, reason, at, exception_id)
    SELECT id, from_status, 'open',
           'exception #' || exception_id || ' ' || %(why)s, %(now)s, exception_id
    FROM reopened
)
SELECT id, exception_id, owner, asset_id FROM reopened
"""


def _row(conn: psycopg.Connection, exception_id: int, lock: bool = False) -> dict:
    query = _LOCK if lock else _READ
    row = conn.cursor(row_factory=dict_row).execute(query, (exception_id,)).fetchone()
    if row is None:
        raise ExceptionRefused(f"exception {exception_id} does not exist")
    return _clean(row)


def _clean(row: dict) -> dict:
    if row.get("fingerprint"):
        row["fingerprint"] = row["fingerprint"].strip()
    row["target"] = row.get(_TARGET_COLUMN[row["scope"]])
    return row


def _log(
    conn: psycopg.Connection,
    exception_id: int,
    step: str,
    actor: str,
    now: datetime,
    reason: str | None = None,
    findings: int = 0,
) -> None:
    conn.execute(
        "INSERT INTO finding_exception_log (exception_id, at, step, actor, reason, findings) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (exception_id, now, step, actor, reason, findings),
    )


def _summary(row: dict) -> str:
    return f"{row['kind'].replace('_', ' ')} #{row['id']} on {row['scope']} {row['target']}"


def request_exception(conn: psycopg.Connection, request: ExceptionRequest, now: datetime) -> dict:
    """Record a request (it sets nothing aside until someone else approves it)."""
    checked = request.checked(now)
    if checked.scope == "finding":
        known = conn.execute(
            "SELECT 1 FROM findings WHERE fingerprint = %s", (checked.target,)
        ).fetchone()
        if known is None:
            raise ExceptionRefused(f"no finding has fingerprint {checked.target}")
    if checked.scope == "asset":
        known = conn.execute("SELECT 1 FROM assets WHERE id = %s", (checked.target,)).fetchone()
        if known is None:
            raise ExceptionRefused(f"asset {checked.target!r} is not in the inventory")
    targets = dict.fromkeys(_TARGET_COLUMN.values())
    targets[_TARGET_COLUMN[checked.scope]] = checked.target
    exception_id = conn.execute(
        "INSERT INTO finding_exceptions (kind, scope, fingerprint, cve_id, asset_id, reason, "
        "requested_by, requested_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (
            checked.kind,
            checked.scope,
            targets["fingerprint"],
            targets["cve_id"],
            targets["asset_id"],
            checked.reason,
            checked.requested_by,
            now,
            checked.expires_at,
        ),
    ).fetchone()[0]
    _log(conn, exception_id, "requested", checked.requested_by, now, checked.reason)
    row = _row(conn, exception_id)
    events.emit(
        conn,
        "exception.requested",
        f"exception:{exception_id}",
        {
            "summary": f"{_summary(row)} requested by {row['requested_by']}: {row['reason']}",
            "expires_at": row["expires_at"].isoformat(),
        },
    )
    return row


def approve_exception(
    conn: psycopg.Connection, exception_id: int, approver: str, now: datetime
) -> dict:
    """Approve a request and set aside the open findings it matches; returns the row with
    ``findings``, how many were set aside."""
    row = _row(conn, exception_id, lock=True)
    check_approval(
        exception_id, row["status"], row["requested_by"], row["expires_at"], approver, now
    )
    approver = approver.strip()
    conn.execute(
        "UPDATE finding_exceptions SET status = 'approved', approved_by = %s, approved_at = %s "
        "WHERE id = %s",
        (approver, now, exception_id),
    )
    applied = apply_exceptions(conn, now, exception_ids=[exception_id])
    _log(conn, exception_id, "approved", approver, now, findings=len(applied))
    row = _row(conn, exception_id)
    row["findings"] = len(applied)
    events.emit(
        conn,
        "exception.approved",
        f"exception:{exception_id}",
        {
            "summary": f"{_summary(row)} approved by {approver}: {len(applied)} finding(s) "
            f"set aside until {row['expires_at']:%Y-%m-%d}",
            "findings": len(applied),
        },
    )
    return row


def revoke_exception(
    conn: psycopg.Connection, exception_id: int, actor: str, reason: str, now: datetime
) -> dict:
    """Withdraw a request or end an approved exception now; its findings are open again."""
    row = _row(conn, exception_id, lock=True)
    check_revocation(exception_id, row["status"], actor, reason)
    actor, reason = actor.strip(), reason.strip()
    conn.execute(
        "UPDATE finding_exceptions SET status = 'revoked', decided_by = %s, decided_at = %s, "
        "decision_reason = %s WHERE id = %s",
        (actor, now, reason, exception_id),
    )
    reopened = _reopen(conn, [exception_id], f"revoked by {actor}: {reason[:200]}", now)
    _log(conn, exception_id, "revoked", actor, now, reason, findings=len(reopened))
    row = _row(conn, exception_id)
    row["findings"] = len(reopened)
    events.emit(
        conn,
        "exception.revoked",
        f"exception:{exception_id}",
        {
            "summary": f"{_summary(row)} revoked by {actor}: {len(reopened)} finding(s) "
            f"open again ({reason})",
            "findings": len(reopened),
            "owners": sorted({r["owner"] for r in reopened if r["owner"]}),
        },
    )
    return row


def apply_exceptions(
    conn: psycopg.Connection,
    now: datetime,
    *,
    asset_ids: Sequence[str] | None = None,
    finding_ids: Sequence[int] | None = None,
    exception_ids: Sequence[int] | None = None,
    scan_run_id: int | None = None,
) -> list[int]:
    """Give every finding in play the exception that applies to it now, in one statement:
    open ones are set aside, ones a wider exception set aside move to a narrower one.
    Optionally only findings on some assets, some findings, or findings whose applicable
    exception is one of ``exception_ids``. Returns the findings that moved."""
    rows = conn.execute(
        _APPLY,
        {
            "now": now,
            "assets": list(asset_ids) if asset_ids is not None else None,
            "findings": list(finding_ids) if finding_ids is not None else None,
            "exceptions": list(exception_ids) if exception_ids is not None else None,
            "run": scan_run_id,
        },
    ).fetchall()
    return [r[0] for r in rows]


def _reopen(
    conn: psycopg.Connection, exception_ids: Sequence[int], why: str, now: datetime
) -> list[dict]:
    """Open again the findings these exceptions set aside, then let any other exception that
    still applies take them (a narrower or longer one): each step has its history row."""
    if not exception_ids:
        return []
    reopened = (
        conn.cursor(row_factory=dict_row)
        .execute(_REOPEN, {"ids": list(exception_ids), "why": why, "now": now})
        .fetchall()
    )
    if reopened:
        apply_exceptions(conn, now, finding_ids=[r["id"] for r in reopened])
    return reopened


def expire_exceptions(conn: psycopg.Connection, now: datetime) -> list[dict]:
    """The sweep: every exception past its expiry is expired; the findings an approved one set
    aside are open again and ``exception.expired`` tells their owners. Returns one dict per
    expired exception (the row, ``findings`` reopened, ``owners``)."""
    expired = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "WITH due AS (SELECT id, status FROM finding_exceptions "
            " WHERE status IN ('requested', 'approved') AND expires_at <= %s FOR UPDATE) "
            "UPDATE finding_exceptions e SET status = 'expired' FROM due WHERE e.id = due.id "
            "RETURNING e.*, due.status AS was",
            (now,),
        )
        .fetchall()
    )
    if not expired:
        return []
    approved = [r["id"] for r in expired if r["was"] == "approved"]
    reopened = _reopen(conn, approved, f"expired on {now:%Y-%m-%d}", now)
    by_exception: dict[int, list[dict]] = {}
    for finding in reopened:
        by_exception.setdefault(finding["exception_id"], []).append(finding)
    results = []
    notices: list[tuple[str, dict[str, Any]]] = []
    for row in sorted(expired, key=lambda r: r["id"]):
        row = _clean(row)
        findings = by_exception.get(row["id"], [])
        owners = sorted({f["owner"] for f in findings if f["owner"]})
        _log(conn, row["id"], "expired", SYSTEM_ACTOR, now, findings=len(findings))
        row.update(findings=len(findings), owners=owners)
        results.append(row)
        if row["was"] != "approved":
            continue  # a request nobody approved set nothing aside: nobody needs telling
        notices.append(
            (
                f"exception:{row['id']}",
                {
                    "summary": f"{_summary(row)} expired: {len(findings)} finding(s) open "
                    f"again for {', '.join(owners) or 'no owner'} (requested by "
                    f"{row['requested_by']}, approved by {row['approved_by']}: {row['reason']})",
                    "kind": row["kind"],
                    "scope": row["scope"],
                    "target": row["target"],
                    "findings": len(findings),
                    "finding_ids": sorted(f["id"] for f in findings)[:100],
                    "owners": owners,
                    "requested_by": row["requested_by"],
                    "approved_by": row["approved_by"],
                    "expired_at": row["expires_at"].isoformat(),
                },
            )
        )
    events.emit_many(conn, "exception.expired", notices)
    return results


def load_exception(conn: psycopg.Connection, exception_id: int) -> dict:
    """One exception with its log, oldest step first."""
    row = _row(conn, exception_id)
    row["log"] = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT at, step, actor, reason, findings FROM finding_exception_log "
            "WHERE exception_id = %s ORDER BY id",
            (exception_id,),
        )
        .fetchall()
    )
    row["findings_set_aside"] = conn.execute(
        "SELECT count(*) FROM findings WHERE exception_id = %s", (exception_id,)
    ).fetchone()[0]
    return row


def list_exceptions(
    conn: psycopg.Connection, status: str | None = None, kind: str | None = None
) -> list[dict]:
    """Exceptions (newest first) with how many findings each sets aside now."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"exception status {status!r}: expected one of {list(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"exception kind {kind!r}: expected one of {list(KINDS)}")
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT e.*, (SELECT count(*) FROM findings f WHERE f.exception_id = e.id) "
            "AS findings_set_aside FROM finding_exceptions e "
            "WHERE (%(status)s::text IS NULL OR e.status = %(status)s) "
            "AND (%(kind)s::text IS NULL OR e.kind = %(kind)s) ORDER BY e.id DESC",
            {"status": status, "kind": kind},
        )
        .fetchall()
    )
    return [_clean(r) for r in rows]


def active_exceptions(conn: psycopg.Connection, now: datetime) -> list[ActiveException]:
    """Approved, unexpired exceptions, as the pure matching rules take them."""
    rows = conn.execute(
        "SELECT id, kind, scope, fingerprint, cve_id, asset_id, expires_at "
        "FROM finding_exceptions WHERE status = 'approved' AND expires_at > %s ORDER BY id",
        (now,),
    ).fetchall()
    return [
        ActiveException(
            id=r[0],
            kind=r[1],
            scope=r[2],
            target=(r[3].strip() if r[3] else None) or r[4] or r[5],
            expires_at=r[6],
        )
        for r in rows
    ]

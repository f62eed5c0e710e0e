"""Break glass: a time-boxed, recorded suspension of named enforcement rules.

The policy's ``break_glass`` section says who may open a session, for how long at most, and
which rules it suspends. While a session is in force (opened, not closed, not expired) the
remediate stage skips those rules when it decides; every decision a session changes names it,
and opening, closing, refusing and each use are events, so the report can list them all.

Only one session is in force at a time, so every changed decision has one clear author. A
session suspends only what the policy in force still lets break glass suspend: a policy change
that drops a rule from ``break_glass.suspends`` ends its suspension at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autosec.config.policy import BreakGlassPolicy, LoadedPolicy
from autosec.remediation.approvals import is_allowed
from autosec.store import events
from autosec.store import remediation as ledger
from autosec.store.db import Connection


class BreakGlassRefused(Exception):
    """Opening or closing a session is not allowed; nothing changed (the refusal is an event)."""


@dataclass(frozen=True)
class Suspension:
    """What the session in force suspends right now."""

    session_id: int
    rules: frozenset[str]
    opened_by: str
    expires_at: datetime


def check_open(
    policy: BreakGlassPolicy,
    user: str,
    reason: str | None,
    minutes: int | None = None,
    groups: Sequence[str] = (),
) -> int:
    """How many minutes a session may run for ``user``; raises ``BreakGlassRefused`` naming
    the rule that says no. Pure: the policy section and the request in, a duration out."""
    user = (user or "").strip()
    if not user:
        raise BreakGlassRefused("break glass: who opens it is required (--as)")
    if not policy.who:
        raise BreakGlassRefused("break glass: the policy names nobody in break_glass.who")
    if not is_allowed(user, policy.who, groups):
        raise BreakGlassRefused(
            f"break glass: {user} may not open it (break_glass.who: {', '.join(policy.who)})"
        )
    if not (reason or "").strip():
        raise BreakGlassRefused("break glass: a reason is required")
    if not policy.suspends:
        raise BreakGlassRefused(
            "break glass: break_glass.suspends names no rule, so there is nothing to suspend"
        )
    if minutes is None:
        return policy.max_minutes
    if minutes < 1:
        raise BreakGlassRefused(f"break glass: {minutes} minutes is not a duration")
    if minutes > policy.max_minutes:
        raise BreakGlassRefused(
            f"break glass: {minutes} minutes is longer than break_glass.max_minutes "
            f"({policy.max_minutes})"
        )
    return minutes


def state(session: dict, now: datetime) -> str:
    """'open', 'closed' or 'expired' at ``now``."""
    if session["closed_at"] is not None:
        return "closed"
    return "open" if session["expires_at"] > now else "expired"


def _refuse(conn: Connection, user: str, message: str, payload: dict) -> BreakGlassRefused:
    events.emit(conn, "break_glass.refused", f"user:{user or '?'}", {"error": message, **payload})
    conn.commit()
    return BreakGlassRefused(message)


def open_session(
    conn: Connection,
    loaded: LoadedPolicy,
    user: str,
    reason: str,
    now: datetime,
    minutes: int | None = None,
    groups: Sequence[str] = (),
) -> dict:
    """Open a session suspending the policy's ``break_glass.suspends`` rules; the stored row."""
    policy = loaded.policy.break_glass
    user, reason = (user or "").strip(), (reason or "").strip()
    request = {"action": "open", "minutes": minutes, "reason": reason}
    try:
        minutes = check_open(policy, user, reason, minutes, groups)
    except BreakGlassRefused as exc:
        raise _refuse(conn, user, str(exc), request) from None
    with conn.transaction():
        ledger.lock_break_glass(conn)
        active = ledger.active_break_glass(conn, now)
        if active is None:
            session_id = ledger.open_break_glass(
                conn,
                user,
                reason,
                now,
                now + timedelta(minutes=minutes),
                policy.suspends,
                loaded.sha256,
            )
            session = ledger.load_break_glass(conn, session_id)
            events.emit(
                conn,
                "break_glass.opened",
                f"break_glass:{session_id}",
                {
                    "opened_by": user,
                    "reason": reason,
                    "expires_at": session["expires_at"].isoformat(),
                    "suspended_rules": list(session["suspended_rules"]),
                    "policy_hash": loaded.sha256,
                },
            )
    if active is not None:
        raise _refuse(
            conn,
            user,
            f"break glass #{active['id']} is already open (by {active['opened_by']} until "
            f"{active['expires_at'].isoformat()}): close it first",
            request,
        )
    conn.commit()
    return session


def close_session(
    conn: Connection,
    loaded: LoadedPolicy,
    session_id: int,
    user: str,
    now: datetime,
    groups: Sequence[str] = (),
) -> dict:
    """Close a session early. Its opener or anyone the policy lets open one may close it."""
    user = (user or "").strip()
    request = {"action": "close", "session_id": session_id}
    with conn.transaction():
        ledger.lock_break_glass(conn)
        session = ledger.load_break_glass(conn, session_id, lock=True)
        problem = _close_problem(session, session_id, user, now, loaded.policy.break_glass, groups)
        if problem is None:
            ledger.close_break_glass(conn, session_id, user, now)
            events.emit(
                conn,
                "break_glass.closed",
                f"break_glass:{session_id}",
                {"closed_by": user, "opened_by": session["opened_by"]},
            )
    if problem is not None:
        raise _refuse(conn, user, problem, request)
    conn.commit()
    return ledger.load_break_glass(conn, session_id)


def _close_problem(
    session: dict | None,
    session_id: int,
    user: str,
    now: datetime,
    policy: BreakGlassPolicy,
    groups: Sequence[str],
) -> str | None:
    if not user:
        return "break glass: who closes it is required (--as)"
    if session is None:
        return f"break glass #{session_id} does not exist"
    current = state(session, now)
    if current == "closed":
        return (
            f"break glass #{session_id} is already closed (by {session['closed_by']} at "
            f"{session['closed_at'].isoformat()})"
        )
    if current == "expired":
        return f"break glass #{session_id} already expired at {session['expires_at'].isoformat()}"
    if user != session["opened_by"] and not is_allowed(user, policy.who, groups):
        return (
            f"break glass: {user} may not close #{session_id} (its opener "
            f"{session['opened_by']} or break_glass.who: {', '.join(policy.who) or 'nobody'})"
        )
    return None


def active_suspension(conn: Connection, loaded: LoadedPolicy, now: datetime) -> Suspension | None:
    """What is suspended at ``now`` under ``loaded``, or None when nothing is."""
    session = ledger.active_break_glass(conn, now)
    if session is None:
        return None
    rules = frozenset(session["suspended_rules"]) & frozenset(loaded.policy.break_glass.suspends)
    if not rules:
        return None
    return Suspension(
        session_id=int(session["id"]),
        rules=rules,
        opened_by=session["opened_by"],
        expires_at=session["expires_at"],
    )


def sessions(conn: Connection, now: datetime, since: datetime) -> list[dict]:
    """Sessions in force at any time since ``since``, each with its ``state`` at ``now``."""
    rows = ledger.break_glass_sessions(conn, since)
    for row in rows:
        row["state"] = state(row, now)
    return rows

"""The approvals table enforces what a real approval needs, and its log is append-only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from autosec.remediation.approvals import ApprovalRefused
from autosec.store import approvals

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HASH = "a" * 64


def _request(conn, approvers=("alice", "bob"), quorum=1, hours=24) -> int:
    approval_id = approvals.create_approval(
        conn, "carol", list(approvers), quorum, "ticket: exposed db", "rule-1", HASH, T0, hours
    )
    conn.commit()
    return approval_id


def test_requester_cannot_approve_and_outsiders_cannot_either(conn) -> None:
    approval_id = _request(conn, approvers=("alice", "carol"))
    with pytest.raises(ApprovalRefused):
        approvals.decide(conn, approval_id, "carol", "approve", "lgtm", T0)
    with pytest.raises(ApprovalRefused):
        approvals.decide(conn, approval_id, "mallory", "approve", "lgtm", T0)
    assert approvals.statuses(conn, [approval_id]) == {approval_id: "pending"}
    assert approvals.decisions_for(conn, approval_id) == []


def test_quorum_reject_reason_and_log(conn) -> None:
    approval_id = _request(conn, quorum=2)
    assert approvals.decide(conn, approval_id, "alice", "approve", "ok", T0) == "pending"
    with pytest.raises(ApprovalRefused):
        approvals.decide(conn, approval_id, "alice", "approve", "again", T0)
    assert approvals.decide(conn, approval_id, "bob", "approve", "ok", T0) == "approved"
    log = approvals.decisions_for(conn, approval_id)
    assert [(d["approver"], d["decision"]) for d in log] == [
        ("alice", "approve"),
        ("bob", "approve"),
    ]
    assert all(d["policy_hash"] == HASH for d in log)

    other = _request(conn)
    with pytest.raises(ApprovalRefused):
        approvals.decide(conn, other, "alice", "reject", "", T0)
    assert (
        approvals.decide(conn, other, "alice", "reject", "not during the freeze", T0) == "rejected"
    )


def test_the_decision_log_is_append_only(conn) -> None:
    approval_id = _request(conn)
    approvals.decide(conn, approval_id, "alice", "approve", "ok", T0)
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE approval_decisions SET reason = 'edited'")
    conn.rollback()
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM approval_decisions")
    conn.rollback()


def test_expiry_rejects_and_escalates(conn) -> None:
    approval_id = _request(conn, hours=1)
    with pytest.raises(ApprovalRefused, match="expired"):
        approvals.decide(conn, approval_id, "alice", "approve", "late", T0 + timedelta(hours=2))
    assert approvals.statuses(conn, [approval_id]) == {approval_id: "expired"}
    events = conn.execute("SELECT name FROM events ORDER BY id").fetchall()
    assert ("approval.expired",) in events

    pending = _request(conn, hours=1)
    assert approvals.expire_due(conn, [pending], T0 + timedelta(hours=2)) == [pending]
    assert approvals.all_settled(conn, [approval_id, pending])

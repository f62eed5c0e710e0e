"""The approval rules: self-approval, allowed approvers and groups, quorum, reasons, expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from autosec.remediation.approvals import (
    ApprovalDecision,
    ApprovalRefused,
    ApprovalRequest,
    apply_decision,
    is_allowed,
    is_expired,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = "ab" * 32


def _request(**overrides) -> ApprovalRequest:
    fields = {
        "id": 5,
        "requester": "autosec",
        "approvers": ("alice", "bob", "group:secops"),
        "quorum": 1,
        "status": "pending",
        "expires_at": NOW + timedelta(hours=72),
        "decisions": [],
        "policy_hash": POLICY,
    }
    fields.update(overrides)
    return ApprovalRequest(**fields)


def _decided(approver: str, decision: str = "approve") -> ApprovalDecision:
    return ApprovalDecision(approver, decision, None, NOW - timedelta(hours=1), POLICY)


def _refused(
    request: ApprovalRequest,
    approver: str,
    decision: str = "approve",
    reason: str | None = None,
    now: datetime = NOW,
    groups=(),
) -> ApprovalRefused:
    with pytest.raises(ApprovalRefused) as info:
        apply_decision(request, approver, decision, reason, now, approver_groups=groups)
    return info.value


def test_one_approval_meets_a_quorum_of_one():
    status, recorded = apply_decision(_request(), "alice", "approve", " looks right ", NOW)
    assert status == "approved"
    assert recorded == ApprovalDecision("alice", "approve", "looks right", NOW, POLICY)


def test_quorum_counts_distinct_approvers():
    request = _request(quorum=2)
    status, recorded = apply_decision(request, "alice", "approve", None, NOW)
    assert status == "pending"
    assert recorded.reason is None
    second = replace(request, decisions=[recorded])
    status, _ = apply_decision(second, "bob", "approve", None, NOW)
    assert status == "approved"


def test_apply_decision_does_not_modify_the_request():
    request = _request(quorum=2)
    apply_decision(request, "alice", "approve", None, NOW)
    assert request.decisions == [] and request.status == "pending"


def test_one_reject_rejects_even_after_approvals():
    request = _request(quorum=2, decisions=[_decided("alice")])
    status, recorded = apply_decision(request, "bob", "reject", "not during the freeze", NOW)
    assert status == "rejected"
    assert (recorded.decision, recorded.reason) == ("reject", "not during the freeze")


def test_the_requester_cannot_decide_on_their_own_request():
    request = _request(requester="alice")
    assert str(_refused(request, "alice")) == "alice requested approval 5 and cannot decide on it"
    assert "cannot decide" in str(_refused(request, "ALICE ", "reject", "no"))


def test_the_requester_cannot_approve_through_a_group():
    request = _request(requester="carol")
    assert "requested approval 5" in str(_refused(request, "carol", groups=["secops"]))


def test_only_listed_approvers_may_decide():
    refusal = _refused(_request(), "mallory")
    assert str(refusal) == (
        "mallory is not an approver of approval 5 (approvers: alice, bob, group:secops)"
    )
    assert refusal.status_to_record is None


def test_allowed_by_exact_name_only():
    assert "not an approver" in str(_refused(_request(), "Alice"))


def test_group_members_may_decide_when_their_groups_are_given():
    assert "not an approver" in str(_refused(_request(), "carol"))
    assert "not an approver" in str(_refused(_request(), "carol", groups=["ops"]))
    status, recorded = apply_decision(
        _request(), "carol", "approve", None, NOW, approver_groups=["ops", "secops"]
    )
    assert status == "approved"
    assert recorded.approver == "carol"


def test_is_allowed():
    approvers = ("alice", "group:secops")
    assert is_allowed("alice", approvers)
    assert not is_allowed("bob", approvers)
    assert is_allowed("bob", approvers, ["secops"])
    assert not is_allowed("secops", approvers)
    assert not is_allowed("group:secops", approvers)


@pytest.mark.parametrize("status", ["approved", "rejected", "expired"])
def test_a_settled_request_takes_no_more_decisions(status):
    refusal = _refused(_request(status=status), "alice")
    assert str(refusal) == f"approval 5 is already {status}"


def test_an_expired_request_is_refused_and_to_be_recorded_as_expired():
    request = _request(expires_at=NOW)
    refusal = _refused(request, "alice")
    assert str(refusal) == f"approval 5 expired at {NOW.isoformat()}"
    assert refusal.status_to_record == "expired"
    earlier = NOW - timedelta(seconds=1)
    assert apply_decision(request, "alice", "approve", None, earlier)[0] == "approved"


def test_is_expired_is_inclusive_and_needs_aware_times():
    request = _request(expires_at=NOW)
    assert is_expired(request, NOW) is True
    assert is_expired(request, NOW - timedelta(microseconds=1)) is False
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        is_expired(request, datetime(2026, 3, 1, 12, 0))  # noqa: DTZ001


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_rejection_needs_a_reason(reason):
    assert str(_refused(_request(), "alice", "reject", reason)) == "a rejection needs a reason"


def test_the_same_approver_cannot_decide_twice():
    request = _request(quorum=2, decisions=[_decided("alice")])
    assert str(_refused(request, "alice")) == "alice has already decided on approval 5"
    assert "already decided" in str(_refused(request, "alice", "reject", "changed my mind"))


def test_an_unknown_decision_or_missing_approver_is_refused():
    assert "unknown decision 'maybe'" in str(_refused(_request(), "alice", "maybe"))
    assert str(_refused(_request(), "  ")) == "an approver name is required"


def test_earlier_system_expire_lines_do_not_count_towards_quorum():
    request = _request(quorum=2, decisions=[_decided("autosec", "expire")])
    assert apply_decision(request, "alice", "approve", None, NOW)[0] == "pending"


def test_request_state_is_validated():
    with pytest.raises(ValueError, match="unknown status 'open'"):
        _request(status="open")
    with pytest.raises(ValueError, match="quorum must be at least 1"):
        _request(quorum=0)

"""On the loop: act at once, then a review keeps the action or rolls it back, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autosec.cli import main as autosec
from autosec.domain.models import Severity
from autosec.remediation.actions.base import Action, ActionRequest, ActionResult
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.remediation.approvals import ApprovalRefused
from autosec.stages.remediate import (
    ActionsFailed,
    RollbackRefused,
    apply_planned,
    decide_findings,
    rollback_action,
    settle_reviews,
)
from autosec.store import approvals
from autosec.store import remediation as ledger

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
SCHEDULER = "autosec-scheduler"


def _acted(estate, actions, session, port: int = 8080) -> tuple[dict, dict]:
    """Decide and apply one medium finding on the allowlisted runner: (action row, counts)."""
    estate.scan("runner", {port: Severity.MEDIUM}, T0)
    plan = decide_findings(estate.conn, estate.policy, T0, requester=SCHEDULER)
    counts = apply_planned(estate.conn, plan.apply_now, actions, session, T0)
    action = estate.action(estate.finding("runner", port)["id"])
    return action, {"plan": plan, "counts": counts}


def test_acts_at_once_then_opens_a_review_that_does_not_gate(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    action, seen = _acted(estate, actions, session)
    plan = seen["plan"]

    # Acted without a gate: the DAG's approval sensor has nothing to wait for.
    assert plan.approval_ids == []
    assert plan.apply_now == plan.review_action_ids == [action["id"]]
    assert seen["counts"] == {"applied": 1, "reviews_opened": 1}
    [ticket] = ticketing.tickets()
    assert ticket["status"] == "open"
    assert (action["status"], action["mode"], action["external_ref"]) == (
        "applied",
        "on_the_loop",
        ticket["key"],
    )

    # The review: filed by the system, reviewed by the rule's approvers, linked to the action.
    assert approvals.list_approvals(conn, kind="approval") == []
    [review] = approvals.list_approvals(conn, kind="review")
    assert review["id"] == action["review_id"]
    assert review["requester"] == "autosec"
    assert (review["approvers"], review["quorum"]) == (["alice", "bob"], 1)
    assert (review["rule_id"], review["policy_hash"]) == (
        "ticket-on-the-loop",
        estate.policy.sha256,
    )
    assert review["status"] == "pending"
    assert review["expires_at"] == T0 + timedelta(hours=24)
    assert (review["action"], review["finding_id"]) == ("ticket", action["finding_id"])
    assert ticket["key"] in review["summary"]
    [(subject, payload)] = estate.events("approval.requested")
    assert subject == f"approval:{review['id']}" and payload["kind"] == "review"
    assert ledger.review_ids_for(conn, plan.apply_now) == [review["id"]]

    # Running the apply step again sends nothing and opens no second review.
    calls = len(session.calls)
    assert apply_planned(conn, plan.apply_now, actions, session, LATER) == {}
    assert len(session.calls) == calls
    assert len(approvals.list_approvals(conn)) == 1

    # The system asked, so it cannot keep its own action; a reviewer must give a reason to reject.
    with pytest.raises(ApprovalRefused, match="cannot decide"):
        approvals.decide(conn, review["id"], "autosec", "approve", "fine", LATER)
    with pytest.raises(ApprovalRefused, match="reason"):
        approvals.decide(conn, review["id"], "alice", "reject", "  ", LATER)
    assert approvals.statuses(conn, [review["id"]]) == {review["id"]: "pending"}


def test_a_rejected_review_rolls_back_exactly_once(estate, actions, session, ticketing) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)
    reason = "team-ci tracks this in its own backlog"
    approvals.decide(conn, action["review_id"], "alice", "reject", reason, LATER)

    assert settle_reviews(conn, actions, session, LATER) == {"rolled_back": 1}

    assert session.closes() == 1
    [ticket] = ticketing.tickets()
    assert ticket["status"] == "closed"
    done = estate.action(action["finding_id"])
    assert done["status"] == "rolled_back"
    assert (done["rolled_back_by"], done["rollback_reason"], done["rolled_back_at"]) == (
        "alice",
        reason,
        LATER,
    )
    assert done["rollback_result"]["status"] == "rolled_back"
    assert done["rollback_result"]["detail"]["ticket_key"] == ticket["key"]
    assert done["external_ref"] == ticket["key"]
    [attempt] = ledger.rollbacks_for(conn, action["id"])
    assert (attempt["outcome"], attempt["actor"], attempt["review_id"]) == (
        "rolled_back",
        "alice",
        action["review_id"],
    )
    [(subject, payload)] = estate.events("action.rolled_back")
    assert subject == f"action:{action['id']}"
    assert (payload["actor"], payload["reason"]) == ("alice", reason)

    # The sweep again, and an explicit rollback: nothing more is sent or recorded.
    assert settle_reviews(conn, actions, session, LATER + timedelta(hours=1)) == {}
    again = rollback_action(conn, action["id"], actions, session, "bob", "once more", LATER)
    assert (again.outcome, again.ok) == ("already_rolled_back", True)
    assert "alice" in again.message
    assert session.closes() == 1
    assert len(ledger.rollbacks_for(conn, action["id"])) == 1
    assert estate.action(action["finding_id"])["rolled_back_by"] == "alice"
    # Deciding again under the same policy does not file the ticket a second time.
    assert decide_findings(conn, estate.policy, LATER, requester=SCHEDULER).decisions == 0


def test_an_approved_review_keeps_the_action(estate, actions, session, ticketing) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)

    assert approvals.decide(conn, action["review_id"], "bob", "approve", "right call", LATER) == (
        "approved"
    )
    assert settle_reviews(conn, actions, session, LATER) == {}

    assert session.closes() == 0
    assert [t["status"] for t in ticketing.tickets()] == ["open"]
    assert estate.action(action["finding_id"])["status"] == "applied"


def test_an_unreviewed_action_stays_and_its_review_expires(estate, actions, session) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)

    assert settle_reviews(conn, actions, session, T0 + timedelta(hours=23)) == {}
    counts = settle_reviews(conn, actions, session, T0 + timedelta(hours=24))

    assert counts == {"reviews_expired": 1}
    assert approvals.statuses(conn, [action["review_id"]]) == {action["review_id"]: "expired"}
    assert estate.action(action["finding_id"])["status"] == "applied"
    assert session.closes() == 0
    assert [s for s, _ in estate.events("approval.expired")] == [f"approval:{action['review_id']}"]


def test_cli_rollback_closes_the_ticket_once(
    estate, actions, session, ticketing, ticket_token, store_url, monkeypatch, capsys
) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)
    argv = ["--database-url", store_url, "actions", "rollback", str(action["id"]), "--as", "bob"]

    # Without the ticketing API the CLI says what it needs and records nothing.
    monkeypatch.delenv("AUTOSEC_TICKET_URL", raising=False)
    assert autosec([*argv, "--reason", "duplicate of SEC-9"]) == 2
    assert "AUTOSEC_TICKET_URL" in capsys.readouterr().err
    assert ledger.rollbacks_for(conn, action["id"]) == []

    monkeypatch.setenv("AUTOSEC_TICKET_URL", ticketing.url)
    monkeypatch.setenv("AUTOSEC_TICKET_TOKEN", ticket_token)
    assert autosec([*argv, "--reason", "duplicate of SEC-9"]) == 0
    assert f"action {action['id']}" in capsys.readouterr().out
    assert [t["status"] for t in ticketing.tickets()] == ["closed"]
    done = estate.action(action["finding_id"])
    assert (done["status"], done["rolled_back_by"], done["rollback_reason"]) == (
        "rolled_back",
        "bob",
        "duplicate of SEC-9",
    )

    assert autosec([*argv, "--reason", "again"]) == 0
    assert "already rolled back" in capsys.readouterr().out
    # The reviewer's later rejection finds nothing left to undo.
    approvals.decide(conn, action["review_id"], "alice", "reject", "agreed, drop it", LATER)
    assert settle_reviews(conn, actions, session, LATER) == {}
    assert len(ledger.rollbacks_for(conn, action["id"])) == 1

    # A reason is required.
    with pytest.raises(SystemExit):
        autosec(argv)


class _CannotUndo(Action):
    """An action with no rollback: the base class refuses."""

    name = "ticket"

    def plan(self, finding: Any, decision: Any) -> ActionRequest:
        raise AssertionError("not used")

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        raise AssertionError("not used")


def test_an_action_that_cannot_be_undone_is_refused_on_the_record(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)
    approvals.decide(conn, action["review_id"], "alice", "reject", "should not exist", LATER)
    cannot = {"ticket": _CannotUndo()}

    assert settle_reviews(conn, cannot, session, LATER) == {"refused": 1}

    kept = estate.action(action["finding_id"])
    assert (kept["status"], kept["rollback_result"], kept["rolled_back_by"]) == (
        "applied",
        None,
        None,
    )
    [attempt] = ledger.rollbacks_for(conn, action["id"])
    assert attempt["outcome"] == "refused"
    assert "cannot be rolled back" in attempt["detail"]["error"]
    [(subject, payload)] = estate.events("action.rollback_refused")
    assert subject == f"action:{action['id']}" and payload["actor"] == "alice"
    # The sweep does not refuse it again on every run.
    assert settle_reviews(conn, cannot, session, LATER) == {}
    assert len(ledger.rollbacks_for(conn, action["id"])) == 1
    assert [t["status"] for t in ticketing.tickets()] == ["open"]


def test_a_failed_rollback_is_recorded_and_retried(estate, actions, session, ticketing) -> None:
    conn = estate.conn
    action, _ = _acted(estate, actions, session)
    approvals.decide(conn, action["review_id"], "alice", "reject", "wrong owner", LATER)
    refused_by_api = {
        "ticket": TicketAction(TicketEndpoint(ticketing.url, token="not-the-token", timeout=5))
    }
    not_configured = {"ticket": TicketAction(None)}

    with pytest.raises(ActionsFailed, match=f"action {action['id']}"):
        settle_reviews(conn, refused_by_api, session, LATER)
    assert estate.action(action["finding_id"])["status"] == "applied"
    [failed] = ledger.rollbacks_for(conn, action["id"])
    assert failed["outcome"] == "failed"
    assert failed["detail"]["result"]["detail"]["http_status"] == 401
    with pytest.raises(ActionsFailed, match="no ticketing endpoint configured"):
        settle_reviews(conn, not_configured, session, LATER)
    assert [t["status"] for t in ticketing.tickets()] == ["open"]

    assert settle_reviews(conn, actions, session, LATER) == {"rolled_back": 1}
    assert [t["status"] for t in ticketing.tickets()] == ["closed"]
    assert [r["outcome"] for r in ledger.rollbacks_for(conn, action["id"])] == [
        "failed",
        "failed",
        "rolled_back",
    ]


def test_rollback_refusals(estate, actions, session, ticketing) -> None:
    conn = estate.conn
    estate.scan("web", {443: Severity.HIGH}, T0)
    decide_findings(conn, estate.policy, T0, requester=SCHEDULER)
    gated = estate.action(estate.finding("web", 443)["id"])
    assert gated["status"] == "awaiting_approval"

    for actor, reason, action_id in (
        ("bob", "", gated["id"]),
        ("", "no actor", gated["id"]),
        ("bob", "no such action", 999_999),
    ):
        with pytest.raises(RollbackRefused):
            rollback_action(conn, action_id, actions, session, actor, reason, LATER)
    assert ledger.rollbacks_for(conn, gated["id"]) == []

    # Nothing was applied: refused, on the record, and the gate is untouched.
    outcome = rollback_action(conn, gated["id"], actions, session, "bob", "stop it", LATER)
    assert (outcome.outcome, outcome.ok) == ("refused", False)
    assert "awaiting_approval" in outcome.message
    assert estate.action(gated["finding_id"])["status"] == "awaiting_approval"
    assert [r["outcome"] for r in ledger.rollbacks_for(conn, gated["id"])] == ["refused"]
    assert session.calls == [] and ticketing.tickets() == []

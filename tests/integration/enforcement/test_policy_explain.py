"""`autosec policy explain`: the decision log for one finding, as text and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from autosec.cli import main as autosec
from autosec.domain.models import Severity
from autosec.stages.remediate import apply_after_gate, decide_findings
from autosec.store import approvals

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def test_explain_shows_rule_policy_action_and_approval_log(
    estate, actions, session, ticketing, store_url, capsys
) -> None:
    conn, loaded = estate.conn, estate.policy
    estate.scan("web", {443: Severity.HIGH}, T0)
    plan = decide_findings(conn, loaded, T0, requester="autosec-scheduler")
    [approval_id] = plan.approval_ids
    approvals.decide(conn, approval_id, "ciso", "approve", "file it today", T0 + timedelta(hours=1))
    apply_after_gate(conn, plan.approval_ids, actions, session, T0 + timedelta(hours=1))
    finding = estate.finding("web", 443)
    [ticket] = ticketing.tickets()

    assert autosec(["--database-url", store_url, "policy", "explain", str(finding["id"])]) == 0
    text = capsys.readouterr().out
    for expected in (
        f"finding {finding['id']}",
        "rule prod-gate -> action ticket, mode in_the_loop",
        f"policy version enforcement-1, sha256 {loaded.sha256}",
        "rule prod-gate matched: environment production in [production]",
        f"[applied], ref {ticket['key']}",
        f"approval #{approval_id} [approved] approvers ciso",
        "ciso approve: file it today",
        '"environment": "production"',
    ):
        assert expected in text, expected

    assert (
        autosec(
            ["--database-url", store_url, "policy", "explain", finding["fingerprint"], "--json"]
        )
        == 0
    )
    explained = json.loads(capsys.readouterr().out)
    assert explained["finding"]["id"] == finding["id"]
    [decision] = explained["decisions"]
    assert (decision["rule_id"], decision["action"], decision["mode"]) == (
        "prod-gate",
        "ticket",
        "in_the_loop",
    )
    assert (decision["policy_hash"], decision["policy_version"]) == (loaded.sha256, "enforcement-1")
    assert decision["inputs"]["asset"]["id"] == "web"
    assert decision["reasons"][0].startswith("rule prod-gate matched")
    [action] = decision["actions"]
    assert (action["status"], action["external_ref"]) == ("applied", ticket["key"])
    assert action["approval"]["id"] == approval_id
    assert [
        (d["approver"], d["decision"], d["reason"]) for d in action["approval"]["decisions"]
    ] == [("ciso", "approve", "file it today")]
    assert action["review"] is None


def test_explain_an_undecided_or_unknown_finding(estate, store_url, capsys) -> None:
    estate.scan("runner", {22: Severity.LOW}, T0)
    finding = estate.finding("runner", 22)

    assert autosec(["--database-url", store_url, "policy", "explain", str(finding["id"])]) == 0
    assert "no decision recorded yet" in capsys.readouterr().out
    for unknown in ("999999", "f" * 64, "not-a-finding"):
        assert autosec(["--database-url", store_url, "policy", "explain", unknown]) == 1
        assert f"no finding {unknown!r}" in capsys.readouterr().err

"""Break glass in the decision: a suspended rule is skipped, and the decision says by whom.

Also the pure rules for opening a session (who, how long, why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autosec.config.policy import BreakGlassPolicy, LoadedPolicy, Policy
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import FindingFacts, decide
from autosec.stages.break_glass import BreakGlassRefused, check_open

HASH = "cd" * 32


def _asset(environment: str = "production", asset_id: str = "web-1") -> Asset:
    return Asset(
        id=asset_id,
        name=asset_id,
        kind=AssetKind.WEB_APP,
        source="test",
        owner="team-web",
        environment=Environment(environment),
        criticality=Criticality.MEDIUM,
        addresses=("10.0.0.5",),
    )


def _facts(severity: str = "high") -> FindingFacts:
    return FindingFacts(fingerprint="e" * 64, rule_id="r1", engine="nmap", severity=severity)


def _loaded(*rules: dict[str, Any], allowlist: tuple[str, ...] = ()) -> LoadedPolicy:
    data = {
        "version": "bg-1",
        "enforcement": {
            "rules": list(rules),
            "fallback_approvers": ["secops"],
            "auto_action_allowlist": list(allowlist),
        },
        "break_glass": {"who": ["ciso"], "suspends": [r["id"] for r in rules][:1]},
    }
    return LoadedPolicy(policy=Policy.model_validate(data), sha256=HASH, path=Path("p.yaml"))


GATE = {
    "id": "prod-gate",
    "match": {"environments": ["production"]},
    "action": "ticket",
    "mode": "in_the_loop",
    "approvers": ["ciso"],
}
AUTO = {
    "id": "auto-ticket",
    "match": {"min_severity": "medium"},
    "action": "ticket",
    "mode": "out_of_loop",
    "requires": {"allowlisted": True},
    "names_protected_assets": True,
}
RECORD = {"id": "record", "action": "none"}


def test_a_suspended_rule_is_skipped_and_the_next_one_decides() -> None:
    loaded = _loaded(GATE, AUTO, allowlist=("web-1",))

    decision = decide(_facts(), _asset(), loaded, suspended_rules={"prod-gate"}, break_glass_id=7)

    assert (decision.rule_id, decision.action, decision.mode) == (
        "auto-ticket",
        "ticket",
        "out_of_loop",
    )
    assert decision.skipped_rules == ("prod-gate",)
    assert (decision.break_glass_id, decision.break_glass_used) == (7, True)
    assert decision.reasons[0] == (
        "rule prod-gate matched (environment production in [production]) but is suspended by "
        "break glass #7: skipped"
    )
    assert decision.reasons[1].startswith("rule auto-ticket matched")
    assert decision.inputs["break_glass"] == {"session_id": 7, "suspended_rules": ["prod-gate"]}
    record = decision.as_record()
    assert (record["skipped_rules"], record["break_glass_id"]) == (["prod-gate"], 7)


def test_without_a_suspension_the_decision_is_unchanged() -> None:
    loaded = _loaded(GATE, AUTO, allowlist=("web-1",))

    plain = decide(_facts(), _asset(), loaded)

    assert plain == decide(_facts(), _asset(), loaded, suspended_rules=frozenset())
    assert (plain.rule_id, plain.mode) == ("prod-gate", "in_the_loop")
    assert (plain.skipped_rules, plain.break_glass_id, plain.break_glass_used) == ((), None, False)
    assert "break_glass" not in plain.inputs


def test_a_suspension_that_matches_nothing_is_an_input_but_not_a_use() -> None:
    loaded = _loaded(GATE, AUTO, allowlist=("dev-1",))

    decision = decide(
        _facts(),
        _asset("development", "dev-1"),
        loaded,
        suspended_rules={"prod-gate"},
        break_glass_id=3,
    )

    assert decision.rule_id == "auto-ticket"
    assert (decision.break_glass_used, decision.break_glass_id) == (False, None)
    assert decision.inputs["break_glass"]["session_id"] == 3
    assert not any("suspended" in reason for reason in decision.reasons)


def test_suspension_never_skips_the_safety_checks_of_the_next_rule() -> None:
    loaded = _loaded(GATE, AUTO)  # web-1 is not allowlisted

    decision = decide(_facts(), _asset(), loaded, suspended_rules={"prod-gate"}, break_glass_id=1)

    assert (decision.rule_id, decision.mode, decision.failed_closed) == (
        "auto-ticket",
        "in_the_loop",
        True,
    )
    assert decision.approvers == ["secops"]
    assert decision.break_glass_used


def test_when_every_matching_rule_is_suspended_nothing_is_done() -> None:
    loaded = _loaded(GATE)

    decision = decide(_facts(), _asset(), loaded, suspended_rules={"prod-gate"}, break_glass_id=2)

    assert (decision.rule_id, decision.action, decision.acts) == (None, "none", False)
    assert decision.skipped_rules == ("prod-gate",)
    assert "suspended by break glass #2" in decision.reasons[0]
    assert decision.reasons[1].startswith("no other enforcement rule matched")


def test_a_suspended_action_none_rule_falls_through_too() -> None:
    loaded = _loaded(RECORD, AUTO, allowlist=("web-1",))

    decision = decide(_facts(), _asset(), loaded, suspended_rules={"record"}, break_glass_id=4)

    assert (decision.rule_id, decision.action) == ("auto-ticket", "ticket")


# --- who may open it, for how long, and why -------------------------------------------------


POLICY = BreakGlassPolicy(who=["ciso", "group:incident"], max_minutes=45, suspends=["prod-gate"])


def test_opening_takes_the_maximum_unless_asked_for_less() -> None:
    assert check_open(POLICY, "ciso", "sev-1") == 45
    assert check_open(POLICY, "ciso", "sev-1", minutes=10) == 10
    assert check_open(POLICY, "dana", "sev-1", minutes=45, groups=["incident"]) == 45


@pytest.mark.parametrize(
    ("policy", "user", "reason", "minutes", "groups", "error"),
    [
        (POLICY, "mallory", "sev-1", None, (), "mallory may not open it"),
        (POLICY, "dana", "sev-1", None, ("ops",), "dana may not open it"),
        (POLICY, "CISO", "sev-1", None, (), "CISO may not open it"),
        (POLICY, "", "sev-1", None, (), "who opens it is required"),
        (POLICY, "ciso", "", None, (), "a reason is required"),
        (POLICY, "ciso", " \t", None, (), "a reason is required"),
        (POLICY, "ciso", "sev-1", 46, (), r"46 minutes is longer than break_glass.max_minutes"),
        (POLICY, "ciso", "sev-1", 0, (), "0 minutes is not a duration"),
        (POLICY, "ciso", "sev-1", -5, (), "not a duration"),
        (BreakGlassPolicy(suspends=["x"]), "ciso", "sev-1", None, (), "names nobody"),
        (BreakGlassPolicy(who=["ciso"]), "ciso", "sev-1", None, (), "nothing to suspend"),
    ],
)
def test_opening_is_refused(policy, user, reason, minutes, groups, error) -> None:
    with pytest.raises(BreakGlassRefused, match=error):
        check_open(policy, user, reason, minutes, groups)

"""Enforcement decisions: first match wins, every criterion, and every fail-closed branch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autosec.config.policy import LoadedPolicy, Policy, load_policy
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Severity
from autosec.policy.engine import Decision, FindingFacts, decide

POLICIES = Path(__file__).resolve().parents[3] / "include" / "policies"
HASH = "ab" * 32


def _asset(
    asset_id: str = "svc-1",
    environment: str = "development",
    criticality: str = "low",
    tags: tuple[str, ...] = (),
) -> Asset:
    return Asset(
        id=asset_id,
        name=asset_id,
        kind=AssetKind.SERVICE,
        source="test",
        owner="team-a",
        environment=Environment(environment),
        criticality=Criticality(criticality),
        addresses=("10.0.0.1",),
        tags=tags,
    )


def _facts(severity: str = "high", **overrides: Any) -> FindingFacts:
    fields: dict[str, Any] = {
        "fingerprint": "f" * 64,
        "rule_id": "tls-weak-cipher",
        "engine": "tls",
        "severity": severity,
        "kev": False,
        "cve_ids": ("CVE-2024-0001",),
    }
    fields.update(overrides)
    return FindingFacts(**fields)


def _loaded(rules: list[dict[str, Any]], **enforcement: Any) -> LoadedPolicy:
    data = {
        "version": "test-1",
        "enforcement": {"rules": rules, "fallback_approvers": ["secops"], **enforcement},
    }
    return LoadedPolicy(policy=Policy.model_validate(data), sha256=HASH, path=Path("p.yaml"))


def _rule(rule_id: str = "r", **fields: Any) -> dict[str, Any]:
    rule = {"id": rule_id, "action": "ticket", "mode": "in_the_loop", "approvers": ["alice"]}
    rule.update(fields)
    return rule


def _auto(rule_id: str = "auto", **fields: Any) -> dict[str, Any]:
    return _rule(rule_id, **{"mode": "out_of_loop", "requires": {"allowlisted": True}, **fields})


# --- matching -----------------------------------------------------------------------------------


def test_first_matching_rule_wins():
    loaded = _loaded(
        [
            _rule("only-critical", match={"severities": ["critical"]}),
            _rule("high-up", match={"min_severity": "high"}, approvers=["bob"]),
            _rule("everything", approvers=["carol"]),
        ]
    )
    decision = decide(_facts("high"), _asset(), loaded)
    assert decision.rule_id == "high-up"
    assert decision.approvers == ["bob"]
    assert decision.reasons[0] == "rule high-up matched: severity high >= high"
    assert decide(_facts("critical"), _asset(), loaded).rule_id == "only-critical"
    assert decide(_facts("low"), _asset(), loaded).rule_id == "everything"


@pytest.mark.parametrize(
    ("match", "facts", "asset", "matches"),
    [
        ({"severities": ["low", "high"]}, {"severity": "high"}, {}, True),
        ({"severities": ["low", "high"]}, {"severity": "medium"}, {}, False),
        ({"min_severity": "medium"}, {"severity": "medium"}, {}, True),
        ({"min_severity": "medium"}, {"severity": "low"}, {}, False),
        ({"environments": ["staging"]}, {}, {"environment": "staging"}, True),
        ({"environments": ["staging"]}, {}, {"environment": "test"}, False),
        ({"criticalities": ["high"]}, {}, {"criticality": "high"}, True),
        ({"criticalities": ["high"]}, {}, {"criticality": "medium"}, False),
        ({"tags_any": ["pci", "gdpr"]}, {}, {"tags": ("web", "pci")}, True),
        ({"tags_any": ["pci", "gdpr"]}, {}, {"tags": ("web",)}, False),
        ({"engines": ["tls", "http"]}, {"engine": "http"}, {}, True),
        ({"engines": ["tls", "http"]}, {"engine": "nmap"}, {}, False),
        ({"rule_ids": ["tls-weak-cipher"]}, {}, {}, True),
        ({"rule_ids": ["other"]}, {}, {}, False),
        ({"kev": True}, {"kev": True}, {}, True),
        ({"kev": True}, {"kev": False}, {}, False),
        ({"kev": False}, {"kev": False}, {}, True),
        ({"kev": False}, {"kev": True}, {}, False),
        ({"min_severity": "high", "environments": ["test"]}, {}, {"environment": "test"}, True),
        ({"min_severity": "high", "environments": ["test"]}, {}, {"environment": "staging"}, False),
    ],
)
def test_each_match_criterion(match, facts, asset, matches):
    loaded = _loaded([_rule("r", match=match)])
    decision = decide(_facts(**facts), _asset(**asset), loaded)
    assert (decision.rule_id == "r") is matches
    if not matches:
        assert decision.rule_id is None


def test_match_reasons_name_every_criterion_that_held():
    loaded = _loaded([_rule("r", match={"tags_any": ["pci"], "kev": True, "engines": ["tls"]})])
    decision = decide(_facts(kev=True), _asset(tags=("pci", "web")), loaded)
    assert decision.reasons[0] == (
        "rule r matched: tags ['pci'] among [pci]; engine tls in [tls]; known exploited is true"
    )


def test_no_matching_rule_records_only_with_a_reason():
    loaded = _loaded([_rule("r", match={"severities": ["critical"]})])
    decision = decide(_facts("medium"), _asset(environment="staging"), loaded)
    assert decision.rule_id is None
    assert decision.action == "none"
    assert decision.acts is False and decision.needs_approval is False
    assert decision.reasons == [
        "no enforcement rule matched (severity medium, environment staging, criticality low): "
        "recorded only"
    ]
    assert decision.policy_hash == HASH


def test_action_none_never_needs_approval_even_on_production():
    loaded = _loaded([{"id": "rec", "action": "none"}])
    decision = decide(_facts("critical"), _asset(environment="production"), loaded)
    assert (decision.rule_id, decision.action, decision.mode) == ("rec", "none", "out_of_loop")
    assert decision.needs_approval is False
    assert decision.approvers == []
    assert "nothing is acted on" in decision.reasons[-1]


# --- modes and approvers ------------------------------------------------------------------------


def test_in_the_loop_rule_gates_on_its_approvers_and_quorum():
    loaded = _loaded(
        [_rule("gate", approvers=["alice", "group:sec"], quorum=2, approval_expiry_hours=12)]
    )
    decision = decide(_facts(), _asset(), loaded)
    assert decision.mode == "in_the_loop"
    assert decision.needs_approval is True
    assert decision.approvers == ["alice", "group:sec"]
    assert decision.quorum == 2
    assert decision.expiry_hours == 12
    assert decision.failed_closed is False


def test_out_of_loop_acts_when_every_required_signal_is_present():
    loaded = _loaded(
        [
            _auto(
                requires={
                    "allowlisted": True,
                    "environments": ["development"],
                    "max_criticality": "medium",
                }
            )
        ],
        auto_action_allowlist=["svc-1"],
    )
    decision = decide(_facts(), _asset(criticality="medium"), loaded)
    assert decision.mode == "out_of_loop"
    assert decision.needs_approval is False
    assert decision.failed_closed is False
    assert decision.reasons[-1] == "mode out_of_loop: every required safety signal is present"


def test_on_the_loop_is_kept_when_signals_are_present():
    loaded = _loaded([_auto(mode="on_the_loop")], auto_action_allowlist=["svc-1"])
    decision = decide(_facts(), _asset(), loaded)
    assert decision.mode == "on_the_loop"
    assert decision.needs_approval is False


# --- fail closed --------------------------------------------------------------------------------


def test_fail_closed_when_the_asset_is_not_allowlisted():
    loaded = _loaded([_auto()], auto_action_allowlist=["someone-else"])
    decision = decide(_facts(), _asset(), loaded)
    assert decision.mode == "in_the_loop"
    assert decision.needs_approval is True
    assert decision.failed_closed is True
    assert decision.reasons[1] == (
        "fail closed: rule mode out_of_loop becomes in_the_loop because asset svc-1 is not in "
        "enforcement.auto_action_allowlist"
    )
    assert decision.approvers == ["alice"]


def test_fail_closed_when_the_environment_is_not_allowed():
    loaded = _loaded([_auto(requires={"environments": ["development", "test"]})])
    decision = decide(_facts(), _asset(environment="staging"), loaded)
    assert decision.mode == "in_the_loop"
    assert (
        "environment staging is not one the rule allows ([development, test])"
        in (decision.reasons[1])
    )


def test_fail_closed_when_criticality_is_above_the_maximum():
    loaded = _loaded([_auto(requires={"max_criticality": "medium"})])
    ok = decide(_facts(), _asset(criticality="medium"), loaded)
    assert ok.mode == "out_of_loop"
    decision = decide(_facts(), _asset(criticality="high"), loaded)
    assert decision.mode == "in_the_loop"
    assert "criticality high is above the rule's maximum medium" in decision.reasons[1]


def test_fail_closed_on_the_loop_too():
    loaded = _loaded([_auto(mode="on_the_loop")])
    decision = decide(_facts(), _asset(), loaded)
    assert decision.mode == "in_the_loop"
    assert decision.reasons[1].startswith("fail closed: rule mode on_the_loop becomes in_the_loop")


@pytest.mark.parametrize(
    ("environment", "criticality", "protected"),
    [
        ("production", "low", "production"),
        ("development", "business_critical", "business_critical"),
        ("production", "business_critical", "production and business_critical"),
    ],
)
def test_protected_assets_need_approval_unless_the_rule_names_them(
    environment, criticality, protected
):
    asset = _asset(environment=environment, criticality=criticality)
    loaded = _loaded([_auto()], auto_action_allowlist=["svc-1"])
    decision = decide(_facts(), asset, loaded)
    assert decision.mode == "in_the_loop"
    assert decision.reasons[1] == (
        "fail closed: rule mode out_of_loop becomes in_the_loop because asset svc-1 is "
        f"{protected} and the rule does not set names_protected_assets"
    )
    named = _loaded([_auto(names_protected_assets=True)], auto_action_allowlist=["svc-1"])
    assert decide(_facts(), asset, named).mode == "out_of_loop"


def test_naming_protected_assets_does_not_waive_the_other_signals():
    loaded = _loaded([_auto(names_protected_assets=True)], auto_action_allowlist=[])
    decision = decide(_facts(), _asset(environment="production"), loaded)
    assert decision.mode == "in_the_loop"
    assert "not in enforcement.auto_action_allowlist" in decision.reasons[1]
    assert "names_protected_assets" not in decision.reasons[1]


def test_every_missing_signal_is_listed():
    loaded = _loaded(
        [_auto(requires={"allowlisted": True, "environments": ["test"], "max_criticality": "low"})]
    )
    decision = decide(
        _facts(), _asset(environment="production", criticality="business_critical"), loaded
    )
    reason = decision.reasons[1]
    assert reason.count(";") == 3
    for part in (
        "auto_action_allowlist",
        "environment production",
        "criticality business_",
        "names_protected_assets",
    ):
        assert part in reason


def test_fail_closed_rule_without_approvers_uses_the_fallback_approvers():
    rule = _auto()
    del rule["approvers"]
    loaded = _loaded([rule], fallback_quorum=1)
    decision = decide(_facts(), _asset(), loaded)
    assert decision.mode == "in_the_loop"
    assert decision.approvers == ["secops"]
    assert decision.quorum == 1
    assert decision.reasons[-1] == (
        "approvers ['secops'] (enforcement.fallback_approvers), quorum 1"
    )


# --- dry run, inputs, hash ------------------------------------------------------------------------


def test_dry_run_from_the_policy_or_the_rule():
    assert decide(_facts(), _asset(), _loaded([_rule()])).dry_run is False
    by_policy = decide(_facts(), _asset(), _loaded([_rule()], dry_run=True))
    assert by_policy.dry_run is True
    assert by_policy.reasons[-1] == "dry run (policy): planned and recorded, nothing applied"
    by_rule = decide(_facts(), _asset(), _loaded([_rule(dry_run=True)]))
    assert by_rule.dry_run is True
    assert by_rule.reasons[-1] == "dry run (rule r): planned and recorded, nothing applied"


def test_inputs_hold_exactly_the_facts_used_and_the_policy_identity():
    loaded = _loaded([_rule()], auto_action_allowlist=["svc-1"])
    decision = decide(_facts(kev=True), _asset(tags=("web", "pci")), loaded)
    assert decision.inputs == {
        "finding": {
            "fingerprint": "f" * 64,
            "rule_id": "tls-weak-cipher",
            "engine": "tls",
            "severity": "high",
            "kev": True,
        },
        "asset": {
            "id": "svc-1",
            "environment": "development",
            "criticality": "low",
            "tags": ["pci", "web"],
            "allowlisted": True,
        },
        "policy_dry_run": False,
    }
    assert decision.policy_hash == HASH
    assert decision.policy_version == "test-1"
    record = decision.as_record()
    assert record["inputs"] == decision.inputs
    assert record["rule_id"] == "r" and record["policy_hash"] == HASH


def test_same_inputs_same_decision():
    loaded = _loaded([_auto()], auto_action_allowlist=["svc-1"])
    assert decide(_facts(), _asset(), loaded) == decide(_facts(), _asset(), loaded)


def test_decision_is_immutable():
    decision = decide(_facts(), _asset(), _loaded([_rule()]))
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.mode = "out_of_loop"  # type: ignore[misc]


# --- facts --------------------------------------------------------------------------------------


def test_facts_parse_a_severity_string_and_refuse_an_unknown_one():
    assert _facts(severity="HIGH").severity is Severity.HIGH
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        _facts(severity="urgent")


def test_facts_from_a_store_row():
    row = {
        "fingerprint": "a" * 64,
        "rule_id": "x",
        "engine": "nmap",
        "severity": "low",
        "cve_ids": ["CVE-1"],
        "title": "ignored",
    }
    facts = FindingFacts.from_row(row, kev=True)
    assert facts == FindingFacts("a" * 64, "x", "nmap", Severity.LOW, True, ("CVE-1",))
    with pytest.raises(ValueError, match="finding row is missing engine, severity"):
        FindingFacts.from_row({"fingerprint": "a", "rule_id": "x"})


# --- the shipped default policy on the demo estate ------------------------------------------------


@pytest.fixture(scope="module")
def default_policy() -> LoadedPolicy:
    return load_policy(POLICIES / "default.yaml")


def test_default_policy_gates_high_findings_on_production(default_policy):
    web = _asset("web-frontend", "production", "high", ("internet-facing", "pci"))
    decision = decide(_facts("critical"), web, default_policy)
    assert decision.rule_id == "prod-high-ticket-approval"
    assert (decision.action, decision.mode) == ("ticket", "in_the_loop")
    assert decision.approvers == ["secops-lead", "ciso"] and decision.quorum == 1
    assert decision.expiry_hours == 72


def test_default_policy_fails_closed_for_medium_on_business_critical(default_policy):
    db = _asset("orders-db", "production", "business_critical")
    decision = decide(_facts("medium"), db, default_policy)
    assert decision.rule_id == "ticket-medium-up"
    assert decision.mode == "in_the_loop" and decision.failed_closed is True
    assert decision.approvers == ["secops-lead", "group:secops"]


def test_default_policy_acts_on_allowlisted_development_assets(default_policy):
    runner = _asset("build-runner", "development", "low")
    medium = decide(_facts("medium"), runner, default_policy)
    assert (medium.rule_id, medium.mode) == ("ticket-medium-up", "out_of_loop")
    low = decide(_facts("low"), runner, default_policy)
    assert (low.rule_id, low.mode) == ("low-ticket", "out_of_loop")
    info = decide(_facts("info"), runner, default_policy)
    assert (info.rule_id, info.action) == ("info-record-only", "none")
    other = decide(_facts("low"), _asset("laptop-7"), default_policy)
    assert (other.rule_id, other.mode) == ("low-ticket", "in_the_loop")


def test_a_decision_needs_a_fingerprint():
    with pytest.raises(ValueError, match="empty fingerprint"):
        decide(_facts(fingerprint=""), _asset(), _loaded([_rule()]))

"""Safety properties of ``decide()`` over generated policies, assets and findings.

The oracle below restates the policy's safety rules on its own (it does not call the engine's
helpers), so a regression in the engine cannot hide behind the same mistake in the test:

- an action without approval (out of / on the loop) only when every safety signal the matched
  rule requires is explicitly present;
- never without approval on production or business-critical assets unless the rule sets
  ``names_protected_assets``;
- a missing signal means in the loop, with someone to approve;
- the first matching rule decides, and a suspended rule never does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autosec.config.policy import (
    MODES,
    NO_ACTION,
    EnforcementRule,
    LoadedPolicy,
    Policy,
    load_policy,
)
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Severity
from autosec.policy.engine import Decision, FindingFacts, decide

POLICIES = Path(__file__).resolve().parents[3] / "include" / "policies"
HASH = "cd" * 32
ASSET_IDS = ("a1", "a2", "a3", "a4")
USERS = ("alice", "bob", "carol", "group:secops")
ENGINES = ("nmap", "tls")
FINDING_RULES = ("r.one", "r.two")
TAGS = ("internet-facing", "pci", "internal")
ACTIONS = ("ticket", "notify", "quarantine", "patch_request", NO_ACTION)
RANK = {c: i for i, c in enumerate(Criticality)}
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no example database written into the repository
    suppress_health_check=[HealthCheck.too_slow],
)


def _subset(values: tuple[Any, ...]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def rules(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    match = {
        "severities": draw(_optional(_subset(tuple(s.value for s in Severity)))),
        "min_severity": draw(_optional(st.sampled_from([s.value for s in Severity]))),
        "environments": draw(_optional(_subset(tuple(e.value for e in Environment)))),
        "criticalities": draw(_optional(_subset(tuple(c.value for c in Criticality)))),
        "tags_any": draw(_optional(_subset(TAGS))),
        "engines": draw(_optional(_subset(ENGINES))),
        "rule_ids": draw(_optional(_subset(FINDING_RULES))),
        "kev": draw(_optional(st.booleans())),
    }
    action = draw(st.sampled_from(ACTIONS))
    mode = draw(st.sampled_from(MODES))
    requires = {
        "allowlisted": draw(st.booleans()),
        "environments": draw(_optional(_subset(tuple(e.value for e in Environment)))),
        "max_criticality": draw(_optional(st.sampled_from([c.value for c in Criticality]))),
    }
    automatic = action != NO_ACTION and mode != "in_the_loop"
    named = requires["allowlisted"] or requires["environments"] or requires["max_criticality"]
    if automatic and not named:
        # The policy file refuses an automatic rule that names no signal; name one.
        signal = draw(st.sampled_from(["allowlisted", "environments", "max_criticality"]))
        requires[signal] = {
            "allowlisted": True,
            "environments": [draw(st.sampled_from([e.value for e in Environment]))],
            "max_criticality": draw(st.sampled_from([c.value for c in Criticality])),
        }[signal]
    gated = action != NO_ACTION and mode == "in_the_loop"
    approvers = draw(st.lists(st.sampled_from(USERS), min_size=int(gated), unique=True))
    return {
        "id": rule_id,
        "match": {k: v for k, v in match.items() if v is not None},
        "action": action,
        "mode": mode,
        "approvers": approvers,
        "quorum": draw(st.integers(1, max(1, len(approvers)))),
        "requires": {k: v for k, v in requires.items() if v not in (None, False)},
        "names_protected_assets": draw(st.booleans()),
        "dry_run": draw(st.booleans()),
    }


@st.composite
def permissive_rules(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    """Automatic rules whose every signal an allowlisted asset meets: only the protection of
    production and business-critical assets stands between them and acting."""
    return {
        "id": rule_id,
        "match": {"severities": draw(_subset(tuple(s.value for s in Severity)))},
        "action": draw(st.sampled_from(ACTIONS[:-1])),
        "mode": draw(st.sampled_from(["out_of_loop", "on_the_loop"])),
        "requires": {"allowlisted": True, "max_criticality": "business_critical"},
        "names_protected_assets": draw(st.booleans()),
    }


@st.composite
def policies(draw: st.DrawFn, permissive: bool = False) -> LoadedPolicy:
    count = draw(st.integers(1, 5))
    make = permissive_rules if permissive else rules
    allowlist = st.just(list(ASSET_IDS)) if permissive else st.lists(st.sampled_from(ASSET_IDS))
    data = {
        "version": "generated",
        "enforcement": {
            "rules": [draw(make(f"rule-{i}")) for i in range(count)],
            "auto_action_allowlist": draw(allowlist.map(lambda ids: sorted(set(ids)))),
            "fallback_approvers": ["secops-lead"],
            "dry_run": draw(st.booleans()),
        },
    }
    return LoadedPolicy(Policy.model_validate(data), HASH, Path("generated.yaml"))


assets = st.builds(
    Asset,
    id=st.sampled_from(ASSET_IDS),
    name=st.just("generated"),
    kind=st.sampled_from(AssetKind),
    source=st.just("generated"),
    owner=st.just("team"),
    environment=st.sampled_from(Environment),
    criticality=st.sampled_from(Criticality),
    addresses=st.just(("10.0.0.1",)),
    tags=st.lists(st.sampled_from(TAGS), unique=True).map(tuple),
)
findings = st.builds(
    FindingFacts,
    fingerprint=st.just("f" * 64),
    rule_id=st.sampled_from(FINDING_RULES),
    engine=st.sampled_from(ENGINES),
    severity=st.sampled_from(Severity),
    kev=st.booleans(),
)


# --- the oracle --------------------------------------------------------------------------------


def _matches(rule: EnforcementRule, facts: FindingFacts, asset: Asset) -> bool:
    m = rule.match
    rank = list(Severity).index
    return (
        (m.severities is None or facts.severity in m.severities)
        and (m.min_severity is None or rank(facts.severity) >= rank(m.min_severity))
        and (m.environments is None or asset.environment in m.environments)
        and (m.criticalities is None or asset.criticality in m.criticalities)
        and (m.tags_any is None or bool(set(m.tags_any) & set(asset.tags)))
        and (m.engines is None or facts.engine in m.engines)
        and (m.rule_ids is None or facts.rule_id in m.rule_ids)
        and (m.kev is None or facts.kev is m.kev)
    )


def _first_match(
    loaded: LoadedPolicy, facts: FindingFacts, asset: Asset, suspended: frozenset[str]
) -> EnforcementRule | None:
    for rule in loaded.policy.enforcement.rules:
        if rule.id not in suspended and _matches(rule, facts, asset):
            return rule
    return None


def _protected(asset: Asset) -> bool:
    return (
        asset.environment is Environment.PRODUCTION
        or asset.criticality is Criticality.BUSINESS_CRITICAL
    )


def _every_signal_present(rule: EnforcementRule, asset: Asset, allowlist: list[str]) -> bool:
    """Explicitly present: named by the rule and satisfied by the asset; nothing assumed."""
    requires = rule.requires
    named = [
        requires.allowlisted,
        requires.environments is not None,
        requires.max_criticality is not None,
    ]
    if not any(named):
        return False
    if requires.allowlisted and asset.id not in allowlist:
        return False
    if requires.environments is not None and asset.environment not in requires.environments:
        return False
    if (
        requires.max_criticality is not None
        and RANK[asset.criticality] > RANK[requires.max_criticality]
    ):
        return False
    return not (_protected(asset) and not rule.names_protected_assets)


def _rule(loaded: LoadedPolicy, decision: Decision) -> EnforcementRule:
    return next(r for r in loaded.policy.enforcement.rules if r.id == decision.rule_id)


# --- properties ---------------------------------------------------------------------------------
# Each example is checked against every property (generation is the slow part).


def _check_acts_without_approval_only_with_every_signal(loaded, asset, decision) -> None:
    if decision.acts and decision.mode != "in_the_loop":
        rule = _rule(loaded, decision)
        assert rule.mode == decision.mode
        assert _every_signal_present(rule, asset, loaded.policy.enforcement.auto_action_allowlist)
        assert not decision.failed_closed


def _check_protected_assets_need_a_rule_that_names_them(loaded, asset, decision) -> None:
    if _protected(asset) and decision.acts and decision.mode != "in_the_loop":
        assert _rule(loaded, decision).names_protected_assets


def _check_a_missing_signal_means_in_the_loop(loaded, asset, rule, decision) -> None:
    if rule is None or not rule.acts:
        assert not decision.acts and not decision.needs_approval
        return
    allowlist = loaded.policy.enforcement.auto_action_allowlist
    if rule.mode == "in_the_loop" or not _every_signal_present(rule, asset, allowlist):
        assert decision.mode == "in_the_loop" and decision.needs_approval
        assert decision.failed_closed is (rule.mode != "in_the_loop")
        assert decision.approvers == (rule.approvers or ["secops-lead"])
        assert 1 <= decision.quorum <= len(decision.approvers)
        assert any("fail closed" in r for r in decision.reasons) is decision.failed_closed
    else:
        # Not stricter than the policy either: every signal present, the rule's mode stands.
        assert decision.mode == rule.mode and not decision.needs_approval


@SETTINGS
@given(policies(), assets, findings)
def test_decisions_keep_the_safety_rules(loaded, asset, facts) -> None:
    decision = decide(facts, asset, loaded)
    rule = _first_match(loaded, facts, asset, frozenset())

    assert decision.rule_id == (rule.id if rule else None)  # the first match decides
    _check_acts_without_approval_only_with_every_signal(loaded, asset, decision)
    _check_protected_assets_need_a_rule_that_names_them(loaded, asset, decision)
    _check_a_missing_signal_means_in_the_loop(loaded, asset, rule, decision)
    # Replayable: the record names the policy and the inputs, and deciding again agrees.
    assert decision.policy_hash == HASH
    assert decision.inputs["asset"]["allowlisted"] is (
        asset.id in loaded.policy.enforcement.auto_action_allowlist
    )
    assert decide(facts, asset, loaded) == decision


@SETTINGS
@given(policies(permissive=True), assets, findings)
def test_protected_assets_stay_gated_when_every_other_signal_says_act(loaded, asset, facts) -> None:
    decision = decide(facts, asset, loaded)

    _check_protected_assets_need_a_rule_that_names_them(loaded, asset, decision)
    _check_a_missing_signal_means_in_the_loop(
        loaded, asset, _first_match(loaded, facts, asset, frozenset()), decision
    )


@SETTINGS
@given(policies(), assets, findings, st.data())
def test_a_suspended_rule_never_decides_and_the_next_one_keeps_the_rules(
    loaded, asset, facts, data
) -> None:
    ids = [r.id for r in loaded.policy.enforcement.rules]
    suspended = frozenset(data.draw(st.lists(st.sampled_from(ids), unique=True)))

    decision = decide(facts, asset, loaded, suspended_rules=suspended, break_glass_id=7)

    rule = _first_match(loaded, facts, asset, suspended)
    assert decision.rule_id == (rule.id if rule else None)
    assert decision.rule_id not in suspended
    decided_at = ids.index(rule.id) if rule else len(ids)
    skipped = [
        r.id
        for r in loaded.policy.enforcement.rules[:decided_at]
        if r.id in suspended and _matches(r, facts, asset)
    ]
    assert list(decision.skipped_rules) == skipped
    assert decision.break_glass_id == (7 if skipped else None)
    _check_acts_without_approval_only_with_every_signal(loaded, asset, decision)
    _check_protected_assets_need_a_rule_that_names_them(loaded, asset, decision)
    _check_a_missing_signal_means_in_the_loop(loaded, asset, rule, decision)


def _shipped_policies() -> list[LoadedPolicy]:
    paths = sorted(POLICIES.glob("*.yaml")) + sorted(POLICIES.glob("examples/*.yaml"))
    assert paths, f"no policy files under {POLICIES}"
    return [load_policy(p) for p in paths]


SHIPPED = _shipped_policies()


@SETTINGS
@given(st.sampled_from(SHIPPED), assets, findings)
def test_the_shipped_policies_keep_the_safety_rules(loaded, asset, facts) -> None:
    # The allowlisted ids of the shipped files, as generated asset ids, reach every branch.
    allowlist = loaded.policy.enforcement.auto_action_allowlist
    if allowlist:
        asset = Asset(**{**asset.__dict__, "id": allowlist[hash(asset.id) % len(allowlist)]})

    decision = decide(facts, asset, loaded)

    if decision.acts and decision.mode != "in_the_loop":
        assert _every_signal_present(_rule(loaded, decision), asset, allowlist)
    if decision.needs_approval:
        assert decision.approvers and 1 <= decision.quorum <= len(decision.approvers)

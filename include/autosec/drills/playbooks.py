"""The drill playbooks as pure data: synthetic inputs, the outcome the policy dictates, a budget.

Each playbook names what it feeds the loop (a synthetic asset and finding on documentation
addresses, 192.0.2.0/24, which route nowhere), what the policy in force says must come of it,
and how many seconds it may take. ``autosec.stages.drills`` runs them; nothing here touches a
store, a clock or the network, so a playbook can be read, reviewed and tested as plain data.

Expectations are computed from the loaded policy: the approval expiry is the deciding rule's,
the break glass rules are the policy's own. The safety invariants are not: a black swan is never
acted on without a human, a production asset is never acted on without an approval gate, and
an expired request is never approved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autosec.config.policy import GROUP_PREFIX, EnforcementRule, LoadedPolicy, Policy
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.policy.engine import FindingFacts, decide

DRILL_SOURCE = "drill"
DRILL_OWNER = "drill"
DRILL_ENGINE = "nmap"
# A synthetic break glass opener, used when break_glass.who names only groups.
DRILL_BREAKER = "drill-breaker"
BLACK_SWAN_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"

BLACK_SWAN = "black_swan"
APPROVAL_EXPIRY = "approval_expiry"
ACTION_FAILURE_ROLLBACK = "action_failure_rollback"
BREAK_GLASS = "break_glass"


@dataclass(frozen=True)
class SyntheticFinding:
    """One synthetic finding on one synthetic asset, with the intelligence the drill asserts."""

    asset: Asset
    observation: Observation
    kev: bool = False
    automatable: bool | None = None
    total_impact: bool | None = None

    def facts(self, fingerprint: str = "drill") -> FindingFacts:
        """Facts for the pure engine (the stored finding gets its real fingerprint)."""
        return FindingFacts(
            fingerprint=fingerprint,
            rule_id=self.observation.rule_id,
            engine=self.observation.engine,
            severity=self.observation.severity,
            kev=self.kev,
            cve_ids=self.observation.cve_ids,
        )


@dataclass(frozen=True)
class Expectation:
    """What the policy dictates: a sentence for people, and the values the run must observe."""

    statement: str
    outcome: dict[str, Any]


@dataclass(frozen=True)
class Playbook:
    name: str
    summary: str
    budget_seconds: float
    inputs: Callable[[LoadedPolicy], tuple[SyntheticFinding, ...]]
    expect: Callable[[LoadedPolicy], Expectation]


def _asset(
    asset_id: str,
    environment: Environment,
    criticality: Criticality,
    address: str,
    tags: tuple[str, ...] = (),
    kind: AssetKind = AssetKind.HOST,
) -> Asset:
    return Asset(
        id=asset_id,
        name=asset_id,
        kind=kind,
        source=DRILL_SOURCE,
        owner=DRILL_OWNER,
        environment=environment,
        criticality=criticality,
        addresses=(address,),
        tags=tags,
    )


def _observation(
    asset: Asset,
    rule_id: str,
    title: str,
    severity: Severity,
    port: int,
    engine: str = DRILL_ENGINE,
    **extra: Any,
) -> Observation:
    return Observation(
        asset_id=asset.id,
        engine=engine,
        rule_id=rule_id,
        title=title,
        severity=severity,
        location=Location(host=asset.addresses[0], port=port, protocol="tcp"),
        description="Synthetic finding raised by an autosec drill; it describes nothing real.",
        **extra,
    )


# --- black swan -------------------------------------------------------------------------------

EDGE_GATEWAY = _asset(
    "drill-edge-gateway",
    Environment.PRODUCTION,
    Criticality.BUSINESS_CRITICAL,
    "192.0.2.10",
    tags=("internet-facing",),
    kind=AssetKind.WEB_APP,
)


def _black_swan_inputs(loaded: LoadedPolicy) -> tuple[SyntheticFinding, ...]:
    return (
        SyntheticFinding(
            asset=EDGE_GATEWAY,
            observation=_observation(
                EDGE_GATEWAY,
                "drill.black-swan-rce",
                "Synthetic black swan: unauthenticated remote code execution",
                Severity.CRITICAL,
                443,
                cvss_vector=BLACK_SWAN_VECTOR,
                cvss_score=9.8,
                cve_ids=("CVE-2099-0001",),
            ),
            kev=True,
            automatable=True,
            total_impact=True,
        ),
    )


def _black_swan_expect(loaded: LoadedPolicy) -> Expectation:
    triggers = sorted(loaded.policy.black_swan.triggers)
    return Expectation(
        statement=(
            "a known-exploited, automatable, total-impact finding on an internet-facing "
            "production asset is a black swan: finding.black_swan is recorded with the "
            f"policy's triggers ({', '.join(triggers) or 'none'}) and containment is requested "
            "from a human (in the loop), never applied"
        ),
        outcome={
            "black_swan": True,
            "black_swan_event": True,
            "triggers": triggers,
            "decision_acts": True,
            "decision_mode": "in_the_loop",
            "approval": "pending",
            "applied": 0,
            "requests_sent": 0,
        },
    )


# --- approval expiry --------------------------------------------------------------------------

PROD_APP = _asset(
    "drill-prod-app",
    Environment.PRODUCTION,
    Criticality.BUSINESS_CRITICAL,
    "192.0.2.20",
    kind=AssetKind.WEB_APP,
)


def _approval_expiry_inputs(loaded: LoadedPolicy) -> tuple[SyntheticFinding, ...]:
    return (
        SyntheticFinding(
            asset=PROD_APP,
            observation=_observation(
                PROD_APP,
                "drill.approval-expiry",
                "Synthetic high finding awaiting an approval that never comes",
                Severity.HIGH,
                8443,
            ),
        ),
    )


def _approval_expiry_expect(loaded: LoadedPolicy) -> Expectation:
    [synthetic] = _approval_expiry_inputs(loaded)
    decision = decide(synthetic.facts(), synthetic.asset, loaded)
    return Expectation(
        statement=(
            "a high finding on a production, business-critical asset waits at an approval gate; "
            f"nobody decides within the rule's {decision.expiry_hours:g} hours, so the request "
            "expires (not a second early), is escalated, cannot be approved late, and the "
            "action is rejected without anything being sent"
        ),
        outcome={
            "gated": True,
            "expiry_hours": decision.expiry_hours,
            "expired_early": False,
            "approval": "expired",
            "escalated": True,
            "late_approval_refused": True,
            "action_status": "rejected",
            "applied": 0,
            "requests_sent": 0,
        },
    )


# --- action failure and rollback --------------------------------------------------------------

CI_RUNNER = _asset("drill-ci-runner", Environment.DEVELOPMENT, Criticality.LOW, "192.0.2.30")


def _failure_inputs(loaded: LoadedPolicy) -> tuple[SyntheticFinding, ...]:
    return (
        SyntheticFinding(
            asset=CI_RUNNER,
            observation=_observation(
                CI_RUNNER,
                "drill.action-failure",
                "Synthetic medium finding whose action endpoint is down",
                Severity.MEDIUM,
                8080,
            ),
        ),
    )


def _failure_expect(loaded: LoadedPolicy) -> Expectation:
    return Expectation(
        statement=(
            "the action's endpoint answers 500: the ledger records the action as failed; the "
            "retry applies it exactly once and a further retry sends nothing; a rollback closes "
            "it and is recorded as rolled_back, and a second rollback changes nothing"
        ),
        outcome={
            "acts": True,
            "first_attempt": "failed",
            "retry": "applied",
            "remote_records": 1,
            "second_retry_requests": 0,
            "rollback": "rolled_back",
            "ledger_status": "rolled_back",
            "remote_closed": True,
            "rollback_again": "already_rolled_back",
        },
    )


# --- break glass ------------------------------------------------------------------------------


def finding_matching(rule: EnforcementRule, port: int) -> SyntheticFinding | None:
    """A synthetic finding that ``rule``'s match criteria select, or None when none can be made
    (a rule that needs known exploitation: stored findings do not carry KEV into decisions)."""
    match = rule.match
    if match.kev:
        return None
    severities = list(match.severities or Severity)
    if match.min_severity is not None:
        severities = [s for s in severities if s.rank >= match.min_severity.rank]
    if not severities:
        return None
    severity = max(severities, key=lambda s: s.rank)
    environment = (match.environments or [Environment.PRODUCTION])[0]
    criticality = (match.criticalities or [Criticality.HIGH])[0]
    tags = (match.tags_any[0],) if match.tags_any else ()
    engine = (match.engines or [DRILL_ENGINE])[0]
    rule_id = (match.rule_ids or ["drill.break-glass"])[0]
    asset = _asset("drill-break-glass-target", environment, criticality, "192.0.2.40", tags)
    observation = _observation(
        asset,
        rule_id,
        f"Synthetic finding for break glass on rule {rule.id}",
        severity,
        port,
        engine=engine,
    )
    return SyntheticFinding(asset=asset, observation=observation)


def break_glass_configured(policy: Policy) -> bool:
    """Someone may open break glass and it suspends something."""
    return bool(policy.break_glass.who and policy.break_glass.suspends)


def break_glass_opener(policy: Policy) -> tuple[str, tuple[str, ...]]:
    """Who opens the session in the drill: the first named user, else a synthetic member of the
    first named group. With nobody named, a synthetic user the policy does not know."""
    for entry in policy.break_glass.who:
        if not entry.startswith(GROUP_PREFIX):
            return entry, ()
    for entry in policy.break_glass.who:
        return DRILL_BREAKER, (entry[len(GROUP_PREFIX) :],)
    return DRILL_BREAKER, ()


def break_glass_target(
    loaded: LoadedPolicy,
) -> tuple[str | None, tuple[SyntheticFinding, ...], str]:
    """(rule, findings, why): the first suspendable rule that decides a synthetic finding of
    its own (no earlier rule shadows it), with two findings on one asset: one decided while the
    session is open, one after it is closed. Without one, (None, (), why not)."""
    rules = {r.id: r for r in loaded.policy.enforcement.rules}
    problems: list[str] = []
    for rule_id in loaded.policy.break_glass.suspends:
        during = finding_matching(rules[rule_id], port=9443)
        after = finding_matching(rules[rule_id], port=9444)
        if during is None or after is None:
            problems.append(f"rule {rule_id}: no synthetic finding matches it")
            continue
        decided_by = decide(during.facts(), during.asset, loaded).rule_id
        if decided_by != rule_id:
            problems.append(f"rule {rule_id}: its synthetic finding is decided by {decided_by}")
            continue
        return rule_id, (during, after), ""
    return None, (), "; ".join(problems) or "break_glass.suspends names no rule"


def _break_glass_inputs(loaded: LoadedPolicy) -> tuple[SyntheticFinding, ...]:
    return break_glass_target(loaded)[1] if break_glass_configured(loaded.policy) else ()


def _break_glass_expect(loaded: LoadedPolicy) -> Expectation:
    policy = loaded.policy
    if not break_glass_configured(policy):
        return Expectation(
            statement=(
                "the policy lets nobody suspend anything (break_glass.who or suspends is "
                "empty): an attempt to open break glass is refused and recorded"
            ),
            outcome={"opened": False, "refused": True},
        )
    rule_id = break_glass_target(loaded)[0]
    suspended = sorted(policy.break_glass.suspends)
    return Expectation(
        statement=(
            f"break glass opened by an allowed user suspends {', '.join(suspended)} for at most "
            f"{policy.break_glass.max_minutes} minutes: a finding rule {rule_id} would decide is "
            "decided without it, and the decision names the session; once closed, the rule "
            "decides again"
        ),
        outcome={
            "opened": True,
            "suspended_rules": suspended,
            "within_max_minutes": True,
            "skipped_rules": [rule_id] if rule_id else ["(a suspendable rule)"],
            "decision_names_session": True,
            "uses_recorded": 1,
            "closed": True,
            "suspended_after_close": False,
            "restored_rule": rule_id or "(a suspendable rule)",
        },
    )


# --- the registry -----------------------------------------------------------------------------

PLAYBOOKS: dict[str, Playbook] = {
    p.name: p
    for p in (
        Playbook(
            BLACK_SWAN,
            "a KEV, automatable, total-impact finding on an internet-facing production asset",
            60,
            _black_swan_inputs,
            _black_swan_expect,
        ),
        Playbook(
            APPROVAL_EXPIRY,
            "an approval gate on production that nobody decides before it expires",
            60,
            _approval_expiry_inputs,
            _approval_expiry_expect,
        ),
        Playbook(
            ACTION_FAILURE_ROLLBACK,
            "an action whose endpoint fails, its retry, and its rollback",
            120,
            _failure_inputs,
            _failure_expect,
        ),
        Playbook(
            BREAK_GLASS,
            "break glass opened, used on a finding, and closed",
            60,
            _break_glass_inputs,
            _break_glass_expect,
        ),
    )
}


def playbook_names() -> list[str]:
    return list(PLAYBOOKS)


class UnknownDrill(KeyError):
    def __str__(self) -> str:
        return f"unknown drill {self.args[0]!r}: drills are {', '.join(PLAYBOOKS)}"


def get_playbook(name: str) -> Playbook:
    try:
        return PLAYBOOKS[name]
    except KeyError:
        raise UnknownDrill(name) from None

"""The enforcement decision: which rule applies to a finding, what it does, and who decides.

Pure: facts and a loaded policy in, a ``Decision`` out. The first matching rule wins. The
policy fails closed: a rule that would act without approval does so only when every safety
signal it requires is present, and never on production or business-critical assets unless it
names them explicitly; otherwise the decision is "in the loop" and the reasons say why.

Break glass suspends named rules for a while: a suspended rule that matches is skipped (the
next matching rule decides, with every safety check as usual), and the decision says which
session suspended what, so the exception is visible in the log and the reports.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autosec.config.policy import NO_ACTION, EnforcementRule, LoadedPolicy, RuleMatch
from autosec.domain.models import Asset, Criticality, Environment, Severity

_CRITICALITY_RANK = {c: i for i, c in enumerate(Criticality)}
PROTECTED_ENVIRONMENTS = frozenset({Environment.PRODUCTION})
PROTECTED_CRITICALITIES = frozenset({Criticality.BUSINESS_CRITICAL})


@dataclass(frozen=True)
class FindingFacts:
    """What the policy may know about a finding; nothing volatile, nothing free-text."""

    fingerprint: str
    rule_id: str
    engine: str
    severity: Severity
    kev: bool = False
    cve_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity.parse(self.severity))
        object.__setattr__(self, "cve_ids", tuple(self.cve_ids))

    @classmethod
    def from_row(cls, row: Mapping[str, Any], kev: bool = False) -> FindingFacts:
        """Facts from a findings row (store dict); ``kev`` comes from intelligence, not the row."""
        missing = [k for k in ("fingerprint", "rule_id", "engine", "severity") if not row.get(k)]
        if missing:
            raise ValueError(f"finding row is missing {', '.join(missing)}")
        return cls(
            fingerprint=str(row["fingerprint"]).strip(),
            rule_id=str(row["rule_id"]),
            engine=str(row["engine"]),
            severity=Severity.parse(row["severity"]),
            kev=bool(kev),
            cve_ids=tuple(row.get("cve_ids") or ()),
        )


@dataclass(frozen=True)
class Decision:
    """One finding's decision, with everything needed to explain and replay it."""

    rule_id: str | None
    action: str
    mode: str
    approvers: list[str]
    quorum: int
    expiry_hours: float
    dry_run: bool
    reasons: list[str]
    inputs: dict[str, Any]
    policy_hash: str
    policy_version: str = ""
    failed_closed: bool = field(default=False)
    # Rules that matched but were skipped because break glass suspended them, and the session.
    skipped_rules: tuple[str, ...] = ()
    break_glass_id: int | None = None

    @property
    def acts(self) -> bool:
        """False for action "none": the finding is recorded and nothing is done."""
        return self.action != NO_ACTION

    @property
    def break_glass_used(self) -> bool:
        """True when a break glass suspension changed this decision."""
        return bool(self.skipped_rules)

    @property
    def needs_approval(self) -> bool:
        """True when an approval gate must pass before the action is applied."""
        return self.acts and self.mode == "in_the_loop"

    def as_record(self) -> dict[str, Any]:
        """JSON-ready fields for the decision log (policy_decisions)."""
        return {
            "rule_id": self.rule_id,
            "action": self.action,
            "mode": self.mode,
            "approvers": list(self.approvers),
            "quorum": self.quorum,
            "expiry_hours": self.expiry_hours,
            "dry_run": self.dry_run,
            "reasons": list(self.reasons),
            "inputs": self.inputs,
            "policy_hash": self.policy_hash,
            "policy_version": self.policy_version,
            "failed_closed": self.failed_closed,
            "skipped_rules": list(self.skipped_rules),
            "break_glass_id": self.break_glass_id,
        }


def _inputs(facts: FindingFacts, asset: Asset, allowlisted: bool, dry_run: bool) -> dict[str, Any]:
    return {
        "finding": {
            "fingerprint": facts.fingerprint,
            "rule_id": facts.rule_id,
            "engine": facts.engine,
            "severity": facts.severity.value,
            "kev": facts.kev,
        },
        "asset": {
            "id": asset.id,
            "environment": asset.environment.value,
            "criticality": asset.criticality.value,
            "tags": sorted(asset.tags),
            "allowlisted": allowlisted,
        },
        "policy_dry_run": dry_run,
    }


def _values(items: Sequence[Any]) -> str:
    return ", ".join(str(getattr(i, "value", i)) for i in items)


def match_rule(match: RuleMatch, facts: FindingFacts, asset: Asset) -> list[str] | None:
    """Why ``match`` holds for this finding (one line per criterion), or None when it does not."""
    why: list[str] = []
    if match.severities is not None:
        if facts.severity not in match.severities:
            return None
        why.append(f"severity {facts.severity.value} in [{_values(match.severities)}]")
    if match.min_severity is not None:
        if facts.severity.rank < match.min_severity.rank:
            return None
        why.append(f"severity {facts.severity.value} >= {match.min_severity.value}")
    if match.environments is not None:
        if asset.environment not in match.environments:
            return None
        why.append(f"environment {asset.environment.value} in [{_values(match.environments)}]")
    if match.criticalities is not None:
        if asset.criticality not in match.criticalities:
            return None
        why.append(f"criticality {asset.criticality.value} in [{_values(match.criticalities)}]")
    if match.tags_any is not None:
        shared = sorted(set(asset.tags) & set(match.tags_any))
        if not shared:
            return None
        why.append(f"tags {shared} among [{_values(match.tags_any)}]")
    if match.engines is not None:
        if facts.engine not in match.engines:
            return None
        why.append(f"engine {facts.engine} in [{_values(match.engines)}]")
    if match.rule_ids is not None:
        if facts.rule_id not in match.rule_ids:
            return None
        why.append(f"finding rule {facts.rule_id} in [{_values(match.rule_ids)}]")
    if match.kev is not None:
        if facts.kev is not match.kev:
            return None
        why.append(f"known exploited is {str(facts.kev).lower()}")
    return why or ["the rule matches every finding"]


def missing_safety_signals(
    rule: EnforcementRule, asset: Asset, allowlist: Sequence[str]
) -> list[str]:
    """Each signal that stops ``rule`` from acting without approval on ``asset``."""
    missing: list[str] = []
    requires = rule.requires
    if requires.allowlisted and asset.id not in allowlist:
        missing.append(f"asset {asset.id} is not in enforcement.auto_action_allowlist")
    if requires.environments is not None and asset.environment not in requires.environments:
        missing.append(
            f"environment {asset.environment.value} is not one the rule allows "
            f"([{_values(requires.environments)}])"
        )
    if (
        requires.max_criticality is not None
        and _CRITICALITY_RANK[asset.criticality] > _CRITICALITY_RANK[requires.max_criticality]
    ):
        missing.append(
            f"criticality {asset.criticality.value} is above the rule's maximum "
            f"{requires.max_criticality.value}"
        )
    if not rule.names_protected_assets:
        protected = [
            v.value
            for v in (asset.environment, asset.criticality)
            if v in PROTECTED_ENVIRONMENTS or v in PROTECTED_CRITICALITIES
        ]
        if protected:
            missing.append(
                f"asset {asset.id} is {' and '.join(protected)} and the rule does not set "
                "names_protected_assets"
            )
    return missing


def decide(
    finding_facts: FindingFacts,
    asset: Asset,
    loaded: LoadedPolicy,
    suspended_rules: Collection[str] = frozenset(),
    break_glass_id: int | None = None,
) -> Decision:
    """The decision for one finding on one asset under ``loaded``; first matching rule wins.

    ``suspended_rules`` are rule ids an open break glass session (``break_glass_id``) suspends
    right now: when one matches it is skipped and the reasons say so.
    """
    if finding_facts.fingerprint == "":
        raise ValueError("finding facts have an empty fingerprint")
    suspended = frozenset(suspended_rules)
    enforcement = loaded.policy.enforcement
    allowlisted = asset.id in enforcement.auto_action_allowlist
    inputs = _inputs(finding_facts, asset, allowlisted, enforcement.dry_run)
    if suspended:
        inputs["break_glass"] = {
            "session_id": break_glass_id,
            "suspended_rules": sorted(suspended),
        }
    by = f"break glass #{break_glass_id}" if break_glass_id is not None else "break glass"
    skipped: list[str] = []
    skip_reasons: list[str] = []
    common: dict[str, Any] = {
        "inputs": inputs,
        "policy_hash": loaded.sha256,
        "policy_version": loaded.policy.version,
    }

    for rule in enforcement.rules:
        why = match_rule(rule.match, finding_facts, asset)
        if why is None:
            continue
        if rule.id in suspended:
            skipped.append(rule.id)
            skip_reasons.append(
                f"rule {rule.id} matched ({'; '.join(why)}) but is suspended by {by}: skipped"
            )
            continue
        if skipped:
            common["skipped_rules"] = tuple(skipped)
            common["break_glass_id"] = break_glass_id
        reasons = [*skip_reasons, f"rule {rule.id} matched: {'; '.join(why)}"]
        approvers, quorum = enforcement.approvers_for(rule)
        if not rule.acts:
            reasons.append("action none: the finding is recorded and nothing is acted on")
            return Decision(
                rule_id=rule.id,
                action=NO_ACTION,
                mode="out_of_loop",
                approvers=[],
                quorum=1,
                expiry_hours=rule.approval_expiry_hours,
                dry_run=False,
                reasons=reasons,
                **common,
            )
        mode = rule.mode
        failed_closed = False
        if mode != "in_the_loop":
            missing = missing_safety_signals(rule, asset, enforcement.auto_action_allowlist)
            if missing:
                failed_closed = True
                mode = "in_the_loop"
                reasons.append(
                    f"fail closed: rule mode {rule.mode} becomes in_the_loop because "
                    + "; ".join(missing)
                )
            else:
                reasons.append(f"mode {rule.mode}: every required safety signal is present")
        else:
            reasons.append("mode in_the_loop: an approval is required before acting")
        if mode == "in_the_loop":
            source = "" if rule.approvers else " (enforcement.fallback_approvers)"
            reasons.append(f"approvers {approvers}{source}, quorum {quorum}")
        dry_run = enforcement.dry_run or rule.dry_run
        if dry_run:
            scope = "policy" if enforcement.dry_run else f"rule {rule.id}"
            reasons.append(f"dry run ({scope}): planned and recorded, nothing applied")
        return Decision(
            rule_id=rule.id,
            action=rule.action,
            mode=mode,
            approvers=approvers,
            quorum=quorum,
            expiry_hours=rule.approval_expiry_hours,
            dry_run=dry_run,
            reasons=reasons,
            failed_closed=failed_closed,
            **common,
        )

    if skipped:
        common["skipped_rules"] = tuple(skipped)
        common["break_glass_id"] = break_glass_id
    no_match = "no enforcement rule matched" if not skipped else "no other enforcement rule matched"
    return Decision(
        rule_id=None,
        action=NO_ACTION,
        mode="out_of_loop",
        approvers=[],
        quorum=1,
        expiry_hours=0,
        dry_run=False,
        reasons=[
            *skip_reasons,
            f"{no_match} (severity {finding_facts.severity.value}, environment "
            f"{asset.environment.value}, criticality {asset.criticality.value}): recorded only",
        ],
        **common,
    )

"""Turn engine observations into findings ready for the store: identity, enrichment, priority,
due date, black swan verdict and owner. Pure: the stage hands in the assets, the intelligence
and the policy it read, and stores what comes out.

Due dates: the patching policy's days for the severity, counted from the day triage first sees
the finding; the KEV due date when it is earlier (and the policy lets KEV win); and for a black
swan the policy's shortest deadline (its critical days) when that is earlier still, whatever
severity the engine gave. The store keeps the earliest due date a finding ever had while it
stays open, so a later rescan never pushes a deadline back.

Owner: the asset's owner; when the asset names none, the first blind-spot assignment rule
(``discovery.assignment``) that matches the finding's host or the asset's addresses. The
``owner_source`` says which (``asset`` or ``rule:<id>``); None when nobody owns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from autosec.config.policy import BlackSwanCriteria
from autosec.discovery.assignment import AssignmentRule, assign
from autosec.domain.due_dates import due_date as policy_due_date
from autosec.domain.fingerprint import FINGERPRINT_VERSION, fingerprint
from autosec.domain.models import Asset, Observation
from autosec.policy.black_swan import BlackSwanFacts, evaluate
from autosec.triage.enrich import NO_ENRICHMENT, NO_INTEL, Enrichment, Intel, enrich
from autosec.triage.priority import PriorityDecision, PriorityTable, load_table, prioritise

DEFAULT_CRITERIA = BlackSwanCriteria()


@dataclass(frozen=True)
class TriageSettings:
    """What the policy and the estate say about triage (defaults: the policy's defaults)."""

    kev_due_date_wins: bool = True
    black_swan: BlackSwanCriteria | None = DEFAULT_CRITERIA
    black_swan_triggers: tuple[str, ...] = ()
    assignment_rules: tuple[AssignmentRule, ...] = ()
    table: PriorityTable | None = None


DEFAULT_SETTINGS = TriageSettings()


@dataclass(frozen=True)
class TriagedFinding:
    fingerprint: str
    fingerprint_version: int
    observation: Observation
    priority: str
    priority_points: dict[str, object]
    due_date: date | None
    owner: str | None
    owner_source: str | None = None
    enrichment: Enrichment = NO_ENRICHMENT
    decision: PriorityDecision | None = None
    black_swan: dict[str, Any] | None = None

    @property
    def cvss_score(self) -> float | None:
        """The engine's score, or the one computed from the vector when the engine gave none."""
        score = self.enrichment.cvss_score
        return score if score is not None else self.observation.cvss_score


def owner_for(
    observation: Observation, asset: Asset | None, rules: Sequence[AssignmentRule]
) -> tuple[str | None, str | None]:
    """(owner, where it came from): the asset's owner, else the first matching rule."""
    if asset is not None and asset.owner and asset.owner.strip():
        return asset.owner.strip(), "asset"
    if not rules:
        return None, None
    evidence = {"names": [asset.name] if asset is not None else []}
    for address in _addresses(observation, asset):
        found = assign(address, evidence, rules)
        if found is not None:
            return found.owner, f"rule:{found.rule_id}"
    return None, None


def _addresses(observation: Observation, asset: Asset | None) -> list[str]:
    location = observation.location
    addresses = [location.host] if location.host else []
    if location.url:
        try:
            hostname = urlsplit(location.url.strip()).hostname
        except ValueError:
            hostname = None
        if hostname:
            addresses.append(hostname)
    if asset is not None:
        addresses.extend(asset.addresses)
    return [a.strip() for a in addresses if a and a.strip()]


def shortest_deadline(days_by_severity: Mapping[str, int | None]) -> int | None:
    days = [d for d in days_by_severity.values() if d is not None]
    return min(days) if days else None


def triage_observations(
    observations: Iterable[Observation],
    assets: Mapping[str, Asset],
    days_by_severity: Mapping[str, int | None],
    now: datetime,
    *,
    intel: Intel = NO_INTEL,
    settings: TriageSettings = DEFAULT_SETTINGS,
) -> list[TriagedFinding]:
    """Fingerprint, dedupe within the batch, enrich, prioritise, date and own each observation.

    Findings that agree on everything the assessment reads (asset, severity, CVSS, CVE ids)
    share one assessment, and so one ``priority_points`` dict: treat it as read-only.
    """
    table = settings.table or load_table()
    today = now.date()
    black_swan_days = shortest_deadline(days_by_severity)
    assessed: dict[tuple, _Assessment] = {}
    by_fingerprint: dict[str, TriagedFinding] = {}
    for observation in observations:
        key = fingerprint(observation)
        if key in by_fingerprint:
            continue
        asset = assets.get(observation.asset_id)
        memo = (
            observation.asset_id,
            observation.severity,
            observation.cvss_vector,
            observation.cvss_score,
            observation.cve_ids,
        )
        assessment = assessed.get(memo)
        if assessment is None:
            assessment = _assess(
                observation, asset, intel, table, days_by_severity, today, black_swan_days, settings
            )
            assessed[memo] = assessment
        owner, owner_source = owner_for(observation, asset, settings.assignment_rules)
        by_fingerprint[key] = TriagedFinding(
            fingerprint=key,
            fingerprint_version=FINGERPRINT_VERSION,
            observation=observation,
            priority=assessment.decision.priority,
            priority_points=assessment.points,
            due_date=assessment.due_date,
            owner=owner,
            owner_source=owner_source,
            enrichment=assessment.enrichment,
            decision=assessment.decision,
            black_swan=assessment.black_swan,
        )
    return list(by_fingerprint.values())


@dataclass(frozen=True)
class _Assessment:
    enrichment: Enrichment
    decision: PriorityDecision
    points: dict[str, object]
    due_date: date | None
    black_swan: dict[str, Any] | None


def _assess(
    observation: Observation,
    asset: Asset | None,
    intel: Intel,
    table: PriorityTable,
    days_by_severity: Mapping[str, int | None],
    today: date,
    black_swan_days: int | None,
    settings: TriageSettings,
) -> _Assessment:
    enrichment = enrich(observation, asset, intel)
    decision = prioritise(enrichment, observation.severity, asset, table)
    due = policy_due_date(
        observation.severity,
        today,
        days_by_severity,
        kev_due=enrichment.kev_due_date if settings.kev_due_date_wins else None,
    )
    verdict = None
    criteria = settings.black_swan
    if (
        criteria is not None
        and asset is not None
        and (enrichment.known_exploited or not criteria.known_exploited)
    ):
        verdict = _black_swan(enrichment, decision, asset, criteria, settings)
        if verdict is not None and black_swan_days is not None:
            swan_due = today + timedelta(days=black_swan_days)
            due = swan_due if due is None or swan_due < due else due
    return _Assessment(enrichment, decision, decision.as_dict(), due, verdict)


def _black_swan(
    enrichment: Enrichment,
    decision: PriorityDecision,
    asset: Asset,
    criteria: BlackSwanCriteria,
    settings: TriageSettings,
) -> dict[str, Any] | None:
    """The verdict record when the finding is a black swan under the policy, else None.

    Automatable and total impact are the decision points' own values when a CVSS vector gave
    them (flagged inferred, as the verdict says), and unknown otherwise: an assumption never
    makes a black swan.
    """
    cvss = enrichment.cvss
    usable = cvss is not None and cvss.problem is None
    facts = BlackSwanFacts(
        known_exploited=enrichment.known_exploited,
        automatable=cvss.automatable if usable else None,
        total_impact=cvss.total_impact if usable else None,
        inferred=("automatable", "total_impact") if usable else (),
    )
    verdict = evaluate(facts, asset, criteria)
    if not verdict.is_black_swan:
        return None
    return {
        **verdict.as_record(),
        "triggers": list(settings.black_swan_triggers),
        "priority": decision.priority,
        "enrichment": enrichment.as_dict(),
    }

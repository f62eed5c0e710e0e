"""Black swan: the rare finding that pages people, opens an incident and asks for containment.

Pure: what is known about a finding and its asset, and the policy's criteria, in; a verdict out
that names every required criterion, whether it was met, and why not. A fact nobody knows is
*not met*: a black swan wakes people up, so it is declared on evidence, never on a guess. A fact
inferred from the CVSS vector counts, and the verdict says it was inferred so a reader can weigh
it.

The four criteria (each can be switched off in the policy's ``black_swan.criteria``):

- known_exploited: the vulnerability is in a known-exploited list (CISA KEV);
- automatable: an attacker can run the attack end to end without a human (SSVC "automatable");
- total_impact: a successful attack gives total control (SSVC technical impact "total");
- exposed_or_mission_critical: the asset is internet-facing (tag ``internet-facing``), or it is
  a production asset of high or business-critical criticality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autosec.config.policy import BlackSwanCriteria
from autosec.domain.models import Asset, Criticality, Environment
from autosec.policy.engine import FindingFacts

CRITERIA: tuple[str, ...] = (
    "known_exploited",
    "automatable",
    "total_impact",
    "exposed_or_mission_critical",
)
EXPOSED_TAG = "internet-facing"
MISSION_CRITICALITIES = frozenset({Criticality.HIGH, Criticality.BUSINESS_CRITICAL})


@dataclass(frozen=True)
class BlackSwanFacts:
    """Finding facts the criteria need. None means nobody knows; ``inferred`` names the facts
    that were derived (from the CVSS vector) rather than stated by intelligence."""

    known_exploited: bool | None = None
    automatable: bool | None = None
    total_impact: bool | None = None
    inferred: tuple[str, ...] = ()

    @classmethod
    def from_finding(
        cls,
        facts: FindingFacts,
        *,
        automatable: bool | None = None,
        total_impact: bool | None = None,
        cvss_vector: str | None = None,
    ) -> BlackSwanFacts:
        """Facts for ``facts``: KEV membership from the finding, the SSVC points as given, and
        where one is not given, inferred from ``cvss_vector`` when the vector says enough."""
        inferred: list[str] = []
        metrics = parse_cvss_vector(cvss_vector)
        if automatable is None:
            automatable = _automatable_from(metrics)
            if automatable is not None:
                inferred.append("automatable")
        if total_impact is None:
            total_impact = _total_impact_from(metrics)
            if total_impact is not None:
                inferred.append("total_impact")
        return cls(
            known_exploited=bool(facts.kev),
            automatable=automatable,
            total_impact=total_impact,
            inferred=tuple(inferred),
        )


@dataclass(frozen=True)
class BlackSwanVerdict:
    """Whether a finding is a black swan, criterion by criterion.

    ``met`` holds each criterion the policy requires; ``missing`` says why each unmet one is
    not met; ``inferred`` and ``unknown`` name the facts that were derived or not known.
    """

    is_black_swan: bool
    met: dict[str, bool]
    missing: list[str]
    inferred: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready fields for an event payload or a report."""
        return {
            "is_black_swan": self.is_black_swan,
            "met": dict(self.met),
            "missing": list(self.missing),
            "inferred": list(self.inferred),
            "unknown": list(self.unknown),
        }


def parse_cvss_vector(vector: str | None) -> dict[str, str]:
    """Metric -> value of a CVSS v3/v4 vector ("CVSS:3.1/AV:N/..."); empty when there is none.

    Tolerant: a part that is not ``KEY:VALUE`` is skipped, so a malformed vector yields fewer
    metrics (and so more unknown facts), never a wrong one.
    """
    metrics: dict[str, str] = {}
    for part in str(vector or "").strip().split("/"):
        key, sep, value = part.partition(":")
        if sep and key and value and key != "CVSS":
            metrics[key.strip().upper()] = value.strip().upper()
    return metrics


def _automatable_from(metrics: dict[str, str]) -> bool | None:
    """Network reachable, low complexity, no privileges, no user interaction: automatable.

    Any one of them saying otherwise means not automatable; not all known means unknown.
    """
    wanted = {"AV": "N", "AC": "L", "PR": "N", "UI": "N"}
    if "AT" in metrics:  # CVSS 4.0: attack requirements present means not automatable
        wanted["AT"] = "N"
    known = [k for k in wanted if k in metrics]
    if any(metrics[k] != wanted[k] for k in known):
        return False
    return True if len(known) == len(wanted) else None


def _total_impact_from(metrics: dict[str, str]) -> bool | None:
    """High confidentiality and integrity impact on the vulnerable system: total control."""
    keys = ("VC", "VI") if "VC" in metrics or "VI" in metrics else ("C", "I")
    if not all(k in metrics for k in keys):
        return None
    return all(metrics[k] == "H" for k in keys)


def _exposure(asset: Asset) -> tuple[bool, str]:
    exposed = EXPOSED_TAG in asset.tags
    mission_critical = (
        asset.environment is Environment.PRODUCTION and asset.criticality in MISSION_CRITICALITIES
    )
    if exposed or mission_critical:
        return True, ""
    return False, (
        f"asset {asset.id} is neither tagged {EXPOSED_TAG!r} nor a production asset of high or "
        f"business_critical criticality ({asset.environment.value}, {asset.criticality.value})"
    )


def evaluate(
    facts: BlackSwanFacts | FindingFacts, asset: Asset, criteria: BlackSwanCriteria
) -> BlackSwanVerdict:
    """The verdict for one finding on one asset under the policy's ``criteria``.

    Every required criterion must be met. A policy that requires none declares nothing: a
    black swan is meant to be rare, so an empty criteria set never matches every finding.
    """
    if isinstance(facts, FindingFacts):
        facts = BlackSwanFacts.from_finding(facts)
    required = [name for name in CRITERIA if getattr(criteria, name)]
    if not required:
        return BlackSwanVerdict(
            is_black_swan=False,
            met={},
            missing=["black_swan.criteria requires no criterion, so nothing is a black swan"],
        )
    met: dict[str, bool] = {}
    missing: list[str] = []
    unknown: list[str] = []
    inferred: list[str] = []
    for name in required:
        if name == "exposed_or_mission_critical":
            met[name], why = _exposure(asset)
            if why:
                missing.append(why)
            continue
        value = getattr(facts, name)
        if value is None:
            met[name] = False
            unknown.append(name)
            missing.append(f"{name} is unknown (an unknown fact is not met)")
            continue
        met[name] = bool(value)
        if name in facts.inferred:
            inferred.append(name)
        if not value:
            how = " (inferred from the CVSS vector)" if name in facts.inferred else ""
            missing.append(f"{name} is false{how}")
    return BlackSwanVerdict(
        is_black_swan=all(met.values()),
        met=met,
        missing=missing,
        inferred=inferred,
        unknown=unknown,
    )

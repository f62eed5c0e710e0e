"""An SSVC-style priority: decision points in, one of four outcomes out, kept as data.

The decision points are stored with each finding so anyone can see why it has its priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from autosec.domain.models import Asset, Criticality, Environment, Severity

# (exploitation, impact, mission) -> priority; first match wins, "*" matches anything.
DECISION_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("active", "*", "high", "immediate"),
    ("active", "*", "*", "act"),
    ("none", "total", "high", "act"),
    ("none", "total", "*", "attend"),
    ("none", "partial", "high", "attend"),
    ("none", "partial", "*", "track*"),
    ("*", "*", "*", "track"),
)


@dataclass(frozen=True)
class PriorityDecision:
    priority: str
    exploitation: str
    technical_impact: str
    mission: str
    inferred: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "priority": self.priority,
            "exploitation": self.exploitation,
            "technical_impact": self.technical_impact,
            "mission": self.mission,
            "inferred": list(self.inferred),
        }


def prioritise(severity: Severity, asset: Asset | None, known_exploited: bool) -> PriorityDecision:
    inferred = []
    exploitation = "active" if known_exploited else "none"
    if severity in (Severity.CRITICAL, Severity.HIGH):
        impact = "total"
        inferred.append("technical_impact from severity")
    elif severity is Severity.MEDIUM:
        impact = "partial"
        inferred.append("technical_impact from severity")
    else:
        impact = "none"
    mission = "high" if asset is not None and _mission_high(asset) else "normal"
    for rule_exploitation, rule_impact, rule_mission, priority in DECISION_TABLE:
        if (
            rule_exploitation in ("*", exploitation)
            and rule_impact in ("*", impact)
            and rule_mission in ("*", mission)
        ):
            return PriorityDecision(priority, exploitation, impact, mission, tuple(inferred))
    raise AssertionError("the decision table ends with a catch-all row")


def _mission_high(asset: Asset) -> bool:
    return (
        asset.environment is Environment.PRODUCTION
        or asset.criticality in (Criticality.HIGH, Criticality.BUSINESS_CRITICAL)
        or "internet-facing" in asset.tags
    )

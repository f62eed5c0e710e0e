"""An SSVC-style priority: decision points in, one outcome out, by a decision table kept as data.

The table is ``priority_table.yaml`` beside this module (its header explains every point and
where it comes from). The decision points are stored with each finding
(``findings.priority_points``) with the table version and the row that matched, and every point
that was inferred rather than known is named with how it was inferred, so anyone can see why a
finding has its priority and how much of that rests on a guess.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from autosec.domain.models import Asset, Criticality, Environment, Severity
from autosec.triage.enrich import Enrichment

TABLE_PATH = Path(__file__).with_name("priority_table.yaml")
POINTS: dict[str, tuple[str, ...]] = {
    "exploitation": ("none", "poc", "active"),
    "automatable": ("no", "yes"),
    "technical_impact": ("partial", "total"),
    "mission_wellbeing": ("low", "medium", "high"),
    "exposure": ("controlled", "open"),
}
MISSIONS = POINTS["mission_wellbeing"]
COLUMNS = (*POINTS, "priority")
ANY = "*"


class PriorityTableError(ValueError):
    """The decision table cannot be used; the message names the file, the row and the problem."""


@dataclass(frozen=True)
class PriorityTable:
    version: str
    epss_poc_threshold: float
    exposure_raises_mission: Mapping[str, int]
    outcomes: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    _lookup: dict[tuple[str, ...], tuple[str, int]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # Every combination of points, decided once: lookups are a dict access per finding.
        for combination in itertools.product(*POINTS.values()):
            for number, row in enumerate(self.rows, start=1):
                if all(want in (ANY, have) for want, have in zip(row, combination, strict=False)):
                    self._lookup[combination] = (row[-1], number)
                    break

    def decide(self, points: tuple[str, ...]) -> tuple[str, int]:
        """(priority, 1-based row number) for the points in ``POINTS`` order."""
        return self._lookup[points]

    def unreachable(self) -> list[tuple[str, ...]]:
        """Combinations of points no row decides (a complete table has none)."""
        return [c for c in itertools.product(*POINTS.values()) if c not in self._lookup]


def table_from_data(data: Any, source: str) -> PriorityTable:
    """Validate a decision table's data; raise ``PriorityTableError`` naming what is wrong."""
    if not isinstance(data, Mapping):
        raise PriorityTableError(f"{source}: expected a mapping at the top level")
    missing = [
        k for k in ("version", "epss_poc_threshold", "outcomes", "columns", "rows") if k not in data
    ]
    if missing:
        raise PriorityTableError(f"{source}: missing {', '.join(missing)}")
    if list(data["columns"]) != list(COLUMNS):
        raise PriorityTableError(
            f"{source}: columns must be {list(COLUMNS)}, got {data['columns']}"
        )
    threshold = data["epss_poc_threshold"]
    if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise PriorityTableError(
            f"{source}: epss_poc_threshold must be in (0, 1], got {threshold!r}"
        )
    outcomes = tuple(str(o) for o in data["outcomes"])
    raises = dict(data.get("exposure_raises_mission") or {})
    if set(raises) != set(POINTS["exposure"]) or not all(
        isinstance(v, int) and v >= 0 for v in raises.values()
    ):
        raise PriorityTableError(
            f"{source}: exposure_raises_mission must give a whole number of steps (0 or more) "
            f"for each of {list(POINTS['exposure'])}, got {raises}"
        )
    rows: list[tuple[str, ...]] = []
    for number, row in enumerate(data["rows"], start=1):
        values = tuple(str(v) for v in row)
        if len(values) != len(COLUMNS):
            raise PriorityTableError(
                f"{source}: row {number} has {len(values)} values, expected {len(COLUMNS)}"
            )
        for column, value in zip(COLUMNS, values, strict=True):
            allowed = outcomes if column == "priority" else (*POINTS[column], ANY)
            if value not in allowed:
                raise PriorityTableError(
                    f"{source}: row {number}: {column} {value!r} is not one of {list(allowed)}"
                )
        rows.append(values)
    table = PriorityTable(str(data["version"]), float(threshold), raises, outcomes, tuple(rows))
    gaps = table.unreachable()
    if gaps:
        raise PriorityTableError(
            f"{source}: {len(gaps)} combination(s) of decision points match no row, e.g. "
            f"{dict(zip(POINTS, gaps[0], strict=True))}"
        )
    return table


def load_table(path: Path | str | None = None) -> PriorityTable:
    """The decision table at ``path``, or the one shipped beside this module (cached)."""
    if path is None:
        return _default_table()
    return _read_table(Path(path))


@cache
def _default_table() -> PriorityTable:
    return _read_table(TABLE_PATH)


def _read_table(path: Path) -> PriorityTable:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PriorityTableError(f"cannot read the priority table {path}: {exc}") from exc
    return table_from_data(data, str(path))


@dataclass(frozen=True)
class DecisionPoints:
    """The SSVC decision points of one finding; ``inferred`` names each guessed point and how."""

    exploitation: str
    automatable: str
    technical_impact: str
    mission: str
    exposure: str
    mission_wellbeing: str
    inferred: tuple[tuple[str, str], ...] = ()

    def key(self) -> tuple[str, ...]:
        return (
            self.exploitation,
            self.automatable,
            self.technical_impact,
            self.mission_wellbeing,
            self.exposure,
        )


@dataclass(frozen=True)
class PriorityDecision:
    priority: str
    points: DecisionPoints
    table_version: str
    row: int

    @property
    def inferred(self) -> tuple[str, ...]:
        return tuple(point for point, _ in self.points.inferred)

    def as_dict(self) -> dict[str, object]:
        """What ``findings.priority_points`` holds: the outcome and everything behind it."""
        p = self.points
        return {
            "priority": self.priority,
            "table": self.table_version,
            "row": self.row,
            "exploitation": p.exploitation,
            "automatable": p.automatable,
            "technical_impact": p.technical_impact,
            "mission": p.mission,
            "exposure": p.exposure,
            "mission_wellbeing": p.mission_wellbeing,
            "inferred": dict(p.inferred),
        }


@lru_cache(maxsize=4096)
def points_json(decision: PriorityDecision) -> str:
    """``as_dict`` as JSON; decisions repeat a lot, so a batch encodes each one once."""
    return json.dumps(decision.as_dict(), sort_keys=True)


def mission_of(asset: Asset) -> str:
    """How much the organisation's mission depends on the asset (before exposure)."""
    if asset.criticality is Criticality.BUSINESS_CRITICAL or (
        asset.environment is Environment.PRODUCTION and asset.criticality is Criticality.HIGH
    ):
        return "high"
    if asset.environment is Environment.PRODUCTION or asset.criticality is Criticality.HIGH:
        return "medium"
    return "low"


def decision_points(
    enrichment: Enrichment, severity: Severity, asset: Asset | None, table: PriorityTable
) -> DecisionPoints:
    inferred: list[tuple[str, str]] = []
    if enrichment.known_exploited:
        exploitation = "active"
    elif enrichment.epss_score is not None and enrichment.epss_score >= table.epss_poc_threshold:
        exploitation = "poc"
        inferred.append(("exploitation", f"from EPSS at or above {table.epss_poc_threshold}"))
    else:
        exploitation = "none"

    cvss = enrichment.cvss
    usable = cvss is not None and cvss.problem is None
    if usable:
        how = f"from the CVSS {cvss.version} vector"
        automatable = "yes" if cvss.automatable else "no"
        impact = "total" if cvss.total_impact else "partial"
        inferred += [("automatable", how), ("technical_impact", how)]
    else:
        automatable = "no"
        impact = "total" if severity is Severity.CRITICAL else "partial"
        inferred += [
            ("automatable", "assumed no: no usable CVSS vector"),
            ("technical_impact", f"from severity {severity.value}: no usable CVSS vector"),
        ]

    if asset is None:
        mission = "medium"
        inferred.append(("mission", "assumed medium: the asset is not in the inventory"))
    else:
        mission = mission_of(asset)
    exposure = "open" if enrichment.internet_facing else "controlled"
    raised = MISSIONS.index(mission) + table.exposure_raises_mission[exposure]
    wellbeing = MISSIONS[min(raised, len(MISSIONS) - 1)]
    return DecisionPoints(
        exploitation, automatable, impact, mission, exposure, wellbeing, tuple(inferred)
    )


def prioritise(
    enrichment: Enrichment,
    severity: Severity,
    asset: Asset | None,
    table: PriorityTable | None = None,
) -> PriorityDecision:
    """The priority of one finding, with the decision points and the table row behind it."""
    table = table or load_table()
    points = decision_points(enrichment, severity, asset, table)
    priority, row = table.decide(points.key())
    return PriorityDecision(priority, points, table.version, row)

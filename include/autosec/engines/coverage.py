"""The coverage map: for each kind of asset and each detection, is it there (CHECK), only
partly (LIMITED) or missing (MISSING)? Built from the engines' declared capabilities and
which engines the estate enables, so a gap shows before an incident shows it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autosec.domain.models import AssetKind
from autosec.engines.base import Engine


class Coverage(enum.StrEnum):
    CHECK = "CHECK"
    LIMITED = "LIMITED"
    MISSING = "MISSING"


@dataclass(frozen=True)
class Cell:
    coverage: Coverage
    engines: tuple[str, ...]
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"coverage": self.coverage.value, "engines": list(self.engines), "note": self.note}


def detections(engines: Iterable[Engine]) -> list[str]:
    """Every detection some registered engine offers, in a stable order."""
    return sorted({c.detects for e in engines for c in e.capabilities})


def coverage_map(
    engines: Mapping[str, Engine], enabled: Iterable[str]
) -> dict[AssetKind, dict[str, Cell]]:
    """asset kind -> detection -> Cell.

    CHECK: an enabled engine covers it fully. LIMITED: enabled engines cover it only partly
    (the capability says so for that kind). MISSING: no enabled engine does; the note names
    a registered engine that could, when there is one.
    """
    enabled = set(enabled)
    result: dict[AssetKind, dict[str, Cell]] = {}
    for kind in AssetKind:
        row: dict[str, Cell] = {}
        for detection in detections(engines.values()):
            full, partial, idle = [], [], []
            for name, engine in sorted(engines.items()):
                for capability in engine.capabilities:
                    if capability.detects != detection or kind not in capability.asset_kinds:
                        continue
                    if name not in enabled:
                        idle.append(name)
                    elif kind in capability.limited_on:
                        partial.append(name)
                    else:
                        full.append(name)
            if full:
                row[detection] = Cell(Coverage.CHECK, tuple(dict.fromkeys(full + partial)))
            elif partial:
                row[detection] = Cell(
                    Coverage.LIMITED,
                    tuple(dict.fromkeys(partial)),
                    f"only partly seen by {', '.join(dict.fromkeys(partial))}",
                )
            else:
                note = f"not enabled: {', '.join(dict.fromkeys(idle))}" if idle else "no engine"
                row[detection] = Cell(Coverage.MISSING, (), note)
        result[kind] = row
    return result

"""Turn engine observations into findings ready for the store: identity, priority, due date."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from autosec.domain.due_dates import due_date
from autosec.domain.fingerprint import FINGERPRINT_VERSION, fingerprint
from autosec.domain.models import Asset, Observation
from autosec.triage.priority import prioritise


@dataclass(frozen=True)
class TriagedFinding:
    fingerprint: str
    fingerprint_version: int
    observation: Observation
    priority: str
    priority_points: dict[str, object]
    due_date: object
    owner: str | None


def triage_observations(
    observations: Iterable[Observation],
    assets: Mapping[str, Asset],
    days_by_severity: Mapping[str, int | None],
    now: datetime,
) -> list[TriagedFinding]:
    """Fingerprint, dedupe within the batch, prioritise and date each observation."""
    by_fingerprint: dict[str, TriagedFinding] = {}
    for observation in observations:
        key = fingerprint(observation)
        if key in by_fingerprint:
            continue
        asset = assets.get(observation.asset_id)
        decision = prioritise(observation.severity, asset, known_exploited=False)
        by_fingerprint[key] = TriagedFinding(
            fingerprint=key,
            fingerprint_version=FINGERPRINT_VERSION,
            observation=observation,
            priority=decision.priority,
            priority_points=decision.as_dict(),
            due_date=due_date(observation.severity, now.date(), days_by_severity),
            owner=asset.owner if asset else None,
        )
    return list(by_fingerprint.values())

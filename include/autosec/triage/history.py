"""Which open findings a finished scan run closes.

A finding is fixed only when the same asset was rescanned *successfully* by an engine that
covers it and the finding was absent. A failed or narrower scan closes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from autosec.domain.models import Location
from autosec.engines.base import ScanScope


class CoversFindings(Protocol):
    """An engine, or the importer of another tool's reports."""

    def covers(self, rule_id: str, location: Location, scope: ScanScope) -> bool: ...


@dataclass(frozen=True)
class OpenFinding:
    id: int
    fingerprint: str
    asset_id: str
    rule_id: str
    location: Location


def findings_to_close(
    open_findings: Iterable[OpenFinding],
    seen_fingerprints: set[str],
    engine: CoversFindings,
    scope: ScanScope,
    run_succeeded: bool,
    scanned_asset_ids: set[str],
) -> list[OpenFinding]:
    if not run_succeeded:
        return []
    return [
        finding
        for finding in open_findings
        if finding.asset_id in scanned_asset_ids
        and finding.fingerprint not in seen_fingerprints
        and engine.covers(finding.rule_id, finding.location, scope)
    ]

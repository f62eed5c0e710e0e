"""rollups: today's posture snapshot for the pages and the metrics, and the past days rebuilt.

Run after triage and reporting (the report DAG). Today's rollup is replaced on every run, so a
retry or a second run the same day is harmless; a past day without a rollup (the task did not
run that day, or the store is new) is rebuilt from history, as far back as ``backfill_days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from autosec.config.estate import ScanConfig
from autosec.stages.report import coverage_inputs
from autosec.store import discovery, rollups
from autosec.store.db import Connection

DEFAULT_BACKFILL_DAYS = 90


@dataclass(frozen=True)
class RollupOutcome:
    day: date
    assets_total: int
    assets_within_cadence: int
    rebuilt_days: list[date] = field(default_factory=list)

    def counts(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "assets_total": self.assets_total,
            "assets_within_cadence": self.assets_within_cadence,
            "rebuilt_days": len(self.rebuilt_days),
        }


def scan_coverage(
    conn: Connection, scan_config: ScanConfig, now: datetime
) -> tuple[int, list[rollups.OverdueAsset]]:
    """(active assets, those some enabled engine is overdue on by the asset's own cadence):
    the same reading of "overdue" as the posture report."""
    assets = coverage_inputs(conn, scan_config, now)["asset_coverage"]
    overdue = [
        rollups.OverdueAsset(a["asset_id"], a["kind"], a["owner"], tuple(a["overdue"]))
        for a in assets
        if a["overdue"]
    ]
    return len(assets), overdue


def refresh(
    conn: Connection,
    scan_config: ScanConfig,
    now: datetime,
    backfill_days: int = DEFAULT_BACKFILL_DAYS,
) -> RollupOutcome:
    """Snapshot today (and the assets overdue now), rebuild missing past days from history,
    record today's inventory completeness; commits once at the end, so a failure leaves the
    last figures intact."""
    if backfill_days < 0:
        raise ValueError(f"backfill_days must be 0 or more, not {backfill_days}")
    today = now.astimezone(UTC).date()
    total, overdue = scan_coverage(conn, scan_config, now)
    within = total - len(overdue)
    discovery.snapshot_completeness(conn, today)
    rollups.snapshot(conn, today, now, total, within)
    rollups.replace_overdue(conn, overdue, now)
    rebuilt: list[date] = []
    earliest = rollups.earliest_activity(conn)
    if earliest is not None and backfill_days:
        first = max(earliest, today - timedelta(days=backfill_days))
        rebuilt = rollups.missing_days(conn, first, today - timedelta(days=1))
        rollups.rebuild(
            conn,
            rebuilt,
            now,
            engines=scan_config.engines,
            scan_window=timedelta(days=scan_config.cadence_days),
        )
    conn.commit()
    return RollupOutcome(today, total, within, rebuilt)

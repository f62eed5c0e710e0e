"""GET /autosec/metrics: posture for Prometheus, in the text exposition format (0.0.4).

Read from the daily rollups like the pages, so a scrape costs the same at any number of
findings; the coverage map comes from the engines' declared capabilities (no database).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from autosec.airflow.pages_data import (
    LEADERBOARD_WINDOW,
    SEVERITIES,
    team_label,
    zeros_by_severity,
)
from autosec.store import rollups

if TYPE_CHECKING:
    import psycopg

    from autosec.config.estate import ScanConfig


def escape_label(value: str) -> str:
    """A label value as the text exposition format needs it: \\, " and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """Metric families in the Prometheus text format (version 0.0.4), in the order added."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._families: set[str] = set()

    def family(self, name: str, help_text: str, kind: str = "gauge") -> None:
        if name in self._families:
            raise ValueError(f"metric family {name} added twice")
        self._families.add(name)
        help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self._lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float | None, labels: Mapping[str, str] | None = None):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        if labels:
            text = ",".join(f'{k}="{escape_label(str(v))}"' for k, v in labels.items())
            name = f"{name}{{{text}}}"
        number = repr(float(value)) if isinstance(value, float) else str(int(value))
        self._lines.append(f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def metrics_text(conn: psycopg.Connection, scan_config: ScanConfig, now: datetime) -> str:
    from autosec.engines.coverage import coverage_map
    from autosec.engines.registry import ENGINES, get_engine

    out = Exposition()
    latest = rollups.latest(conn)
    out.family("autosec_rollup_available", "1 when a daily rollup exists, else 0.")
    out.sample("autosec_rollup_available", 1 if latest else 0)
    cells = coverage_map({n: get_engine(n) for n in ENGINES}, scan_config.engines)
    out.family(
        "autosec_coverage_map_cells",
        "Cells of the coverage map (asset kind x detection) by coverage, for the enabled engines.",
    )
    counts = {"CHECK": 0, "LIMITED": 0, "MISSING": 0}
    for row in cells.values():
        for cell in row.values():
            counts[cell.coverage.value] += 1
    for coverage, count in counts.items():
        out.sample("autosec_coverage_map_cells", count, {"coverage": coverage})
    if latest is None:
        return out.text()
    day: date = latest["day"]
    out.family(
        "autosec_rollup_timestamp_seconds", "When the latest daily rollup was computed (Unix time)."
    )
    out.sample("autosec_rollup_timestamp_seconds", latest["computed_at"].timestamp())
    teams = rollups.team_day(conn, day)
    open_by_severity, breached_by_severity, kev = zeros_by_severity(), zeros_by_severity(), 0
    for row in teams:
        open_by_severity[row["severity"]] += row["open_findings"]
        breached_by_severity[row["severity"]] += row["sla_breached"]
        kev += row["kev_open"]
    out.family("autosec_findings_open", "Open (or reopened) findings by severity.")
    for severity in SEVERITIES:
        out.sample("autosec_findings_open", open_by_severity[severity], {"severity": severity})
    out.family(
        "autosec_team_findings_open", "Open (or reopened) findings by owning team and severity."
    )
    for row in teams:
        if row["open_findings"]:
            out.sample(
                "autosec_team_findings_open",
                row["open_findings"],
                {"team": team_label(row["team"]), "severity": row["severity"]},
            )
    out.family("autosec_findings_known_exploited_open", "Open findings known to be exploited.")
    out.sample("autosec_findings_known_exploited_open", kev)
    out.family("autosec_sla_breaches", "Open findings past their due date, by severity.")
    for severity in SEVERITIES:
        out.sample("autosec_sla_breaches", breached_by_severity[severity], {"severity": severity})
    per_team: dict[str, int] = {}
    for row in teams:
        per_team[row["team"]] = per_team.get(row["team"], 0) + row["sla_breached"]
    out.family("autosec_team_sla_breaches", "Open findings past their due date, by owning team.")
    for team, breached in sorted(per_team.items()):
        out.sample("autosec_team_sla_breaches", breached, {"team": team_label(team)})
    window_start = day - timedelta(days=LEADERBOARD_WINDOW - 1)
    fixes = rollups.fixes_by_team(conn, window_start, day)
    fixed = sum(int(r["fixed"]) for r in fixes)
    seconds = sum(float(r["fix_seconds"]) for r in fixes)
    out.family(
        "autosec_findings_fixed_30d", "Findings fixed in the last 30 days (to the rollup day)."
    )
    out.sample("autosec_findings_fixed_30d", fixed)
    out.family(
        "autosec_mean_time_to_fix_seconds",
        "Mean time from first seen to fixed of the findings fixed in the last 30 days.",
    )
    out.sample("autosec_mean_time_to_fix_seconds", seconds / fixed if fixed else None)
    out.family(
        "autosec_team_mean_time_to_fix_seconds",
        "Mean time from first seen to fixed over the last 30 days, by owning team.",
    )
    for row in fixes:
        out.sample(
            "autosec_team_mean_time_to_fix_seconds",
            float(row["fix_seconds"]) / int(row["fixed"]),
            {"team": team_label(row["team"])},
        )
    out.family("autosec_assets_total", "Active assets in the inventory.")
    out.sample("autosec_assets_total", latest["assets_total"])
    out.family(
        "autosec_assets_scanned_within_cadence",
        "Active assets no enabled engine is overdue on, by each asset's scan cadence.",
    )
    out.sample("autosec_assets_scanned_within_cadence", latest["assets_within_cadence"])
    out.family(
        "autosec_scan_coverage_ratio", "Assets scanned within their cadence / active assets."
    )
    if latest["assets_total"]:
        out.sample(
            "autosec_scan_coverage_ratio",
            latest["assets_within_cadence"] / latest["assets_total"],
        )
    out.family("autosec_blind_spots_open", "Open blind spots: found but in no inventory.")
    out.sample("autosec_blind_spots_open", latest["blind_spots_open"])
    out.family(
        "autosec_inventory_completeness_ratio", "Inventoried / (inventoried + open blind spots)."
    )
    if latest["completeness"] is not None:
        out.sample("autosec_inventory_completeness_ratio", float(latest["completeness"]))
    out.family("autosec_approvals_waiting", "Approval and review requests waiting for a decision.")
    out.sample("autosec_approvals_waiting", latest["approvals_waiting"])
    return out.text()

"""What the autosec pages show, shaped from the store: the Posture figures and series, the
Coverage map and overdue assets, a page of Findings with why each is due when it is, and the
Reports list. The routes (``autosec.airflow.pages_app``) render these as HTML and return them
as JSON; the figures come from the daily rollups (``autosec.store.rollups``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from autosec.store import reports as report_store
from autosec.store import rollups

if TYPE_CHECKING:
    import psycopg

    from autosec.config.estate import ScanConfig

SEVERITIES = rollups.SEVERITIES  # most severe first
UNOWNED_LABEL = "(unowned)"
DEFAULT_DAYS = 90
FINDINGS_PAGE = 50
FINDINGS_COUNT_CAP = 10_000
LEADERBOARD_WINDOW = 30
MONTHS_SHOWN = 6
_BIGINT_MAX = 2**63 - 1
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


# --- shaping figures for the pages ------------------------------------------------------------


def team_label(team: str | None) -> str:
    return team if team else UNOWNED_LABEL


def mean_days(fix_seconds: float | None, fixed: int | None) -> float | None:
    if not fixed:
        return None
    return round(float(fix_seconds or 0) / fixed / 86400, 2)


def zeros_by_severity() -> dict[str, int]:
    return dict.fromkeys(SEVERITIES, 0)


def posture_data(conn: psycopg.Connection, days: int) -> dict[str, Any]:
    """Everything the Posture page shows, from the rollups only."""
    latest = rollups.latest(conn)
    if latest is None:
        return {"as_of": None, "computed_at": None, "days": days, "series": [], "teams": []}
    as_of: date = latest["day"]
    since = as_of - timedelta(days=days - 1)
    by_day: dict[date, dict[str, Any]] = {}
    for row in rollups.daily_series(conn, since):
        completeness = row["completeness"]
        if completeness is None and row["assets_total"] + row["blind_spots_open"]:
            completeness = row["assets_total"] / (row["assets_total"] + row["blind_spots_open"])
        by_day[row["day"]] = {
            "day": row["day"],
            "basis": row["basis"],
            "open": zeros_by_severity(),
            "sla_breached": 0,
            "kev_open": 0,
            "opened": 0,
            "fixed": 0,
            "assets_total": row["assets_total"],
            "assets_within_cadence": row["assets_within_cadence"],
            "blind_spots_open": row["blind_spots_open"],
            "approvals_waiting": row["approvals_waiting"],
            "inventory_completeness": None if completeness is None else float(completeness),
        }
    for row in rollups.severity_series(conn, since):
        point = by_day.get(row["day"])
        if point is None:
            continue  # findings figures for a day without an estate rollup are not shown
        point["open"][row["severity"]] = int(row["open_findings"])
        for name in ("sla_breached", "kev_open", "opened", "fixed"):
            point[name] += int(row[name])
    series = [by_day[d] for d in sorted(by_day)]
    current = by_day[as_of]

    teams: dict[str, dict[str, Any]] = {}

    def team(name: str) -> dict[str, Any]:
        return teams.setdefault(
            name,
            {
                "team": name,
                "label": team_label(name),
                "open": zeros_by_severity(),
                "open_total": 0,
                "sla_breached": 0,
                "kev_open": 0,
                "fixed_30d": 0,
                "mean_days_to_fix_30d": None,
            },
        )

    for row in rollups.team_day(conn, as_of):
        entry = team(row["team"])
        entry["open"][row["severity"]] = row["open_findings"]
        entry["open_total"] += row["open_findings"]
        entry["sla_breached"] += row["sla_breached"]
        entry["kev_open"] += row["kev_open"]
    window_start = as_of - timedelta(days=LEADERBOARD_WINDOW - 1)
    fixed_total, fix_seconds_total = 0, 0.0
    for row in rollups.fixes_by_team(conn, window_start, as_of):
        entry = team(row["team"])
        entry["fixed_30d"] = int(row["fixed"])
        entry["mean_days_to_fix_30d"] = mean_days(row["fix_seconds"], int(row["fixed"]))
        fixed_total += int(row["fixed"])
        fix_seconds_total += float(row["fix_seconds"])
    leaderboard = sorted(
        teams.values(),
        key=lambda t: (
            t["sla_breached"],
            t["open"]["critical"] + t["open"]["high"],
            -t["fixed_30d"],
            t["team"],
        ),
    )
    for rank, entry in enumerate(leaderboard, start=1):
        entry["rank"] = rank

    first_month = date(as_of.year, as_of.month, 1)
    for _ in range(MONTHS_SHOWN - 1):
        first_month = (first_month - timedelta(days=1)).replace(day=1)
    months: list[str] = []
    month = first_month
    while month <= as_of:
        months.append(month.strftime("%Y-%m"))
        month = (month + timedelta(days=32)).replace(day=1)
    time_to_fix = [
        {
            "team": row["team"],
            "label": team_label(row["team"]),
            "month": row["month"].strftime("%Y-%m"),
            "fixed": int(row["fixed"]),
            "mean_days": mean_days(row["fix_seconds"], int(row["fixed"])),
        }
        for row in rollups.fixes_by_team_and_month(conn, first_month)
    ]
    coverage_ratio = (
        current["assets_within_cadence"] / current["assets_total"]
        if current["assets_total"]
        else None
    )
    return {
        "as_of": as_of,
        "computed_at": latest["computed_at"],
        "basis": latest["basis"],
        "days": days,
        "totals": {
            "open": current["open"],
            "open_total": sum(current["open"].values()),
            "sla_breached": current["sla_breached"],
            "kev_open": current["kev_open"],
            "fixed_30d": fixed_total,
            "mean_days_to_fix_30d": mean_days(fix_seconds_total, fixed_total),
            "assets_total": current["assets_total"],
            "assets_within_cadence": current["assets_within_cadence"],
            "scan_coverage": coverage_ratio,
            "blind_spots_open": current["blind_spots_open"],
            "inventory_completeness": current["inventory_completeness"],
            "approvals_waiting": current["approvals_waiting"],
        },
        "series": series,
        "teams": leaderboard,
        "months": months,
        "time_to_fix": time_to_fix,
    }


def coverage_data(
    conn: psycopg.Connection, scan_config: ScanConfig, today: date, limit: int
) -> dict[str, Any]:
    """The coverage map of the enabled engines (from their declared capabilities) and the
    assets overdue by their cadence (from the latest rollup snapshot)."""
    from autosec.engines.coverage import coverage_map
    from autosec.engines.registry import ENGINES, get_engine

    cells_by_kind = coverage_map({n: get_engine(n) for n in ENGINES}, scan_config.engines)
    the_map = {
        kind.value: {d: cell.as_dict() for d, cell in row.items()}
        for kind, row in cells_by_kind.items()
    }
    detections = sorted({d for row in the_map.values() for d in row})
    cells: dict[str, int] = {"CHECK": 0, "LIMITED": 0, "MISSING": 0}
    for row in the_map.values():
        for cell in row.values():
            cells[cell["coverage"]] += 1
    latest = rollups.latest(conn)
    overdue_count, overdue = rollups.overdue_assets(conn, limit)
    trend = rollups.daily_series(conn, today - timedelta(days=DEFAULT_DAYS - 1))
    return {
        "as_of": latest["day"] if latest else None,
        "computed_at": latest["computed_at"] if latest else None,
        "engines": list(scan_config.engines),
        "detections": detections,
        "coverage_map": the_map,
        "cells": cells,
        "assets_total": latest["assets_total"] if latest else None,
        "assets_overdue": overdue_count,
        "overdue": [
            {
                "asset_id": a["asset_id"],
                "kind": a["kind"],
                "owner": a["owner"],
                "overdue_engines": list(a["overdue_engines"]),
                "engines": a["engines"],
            }
            for a in overdue
        ],
        "trend": [
            {
                "day": r["day"],
                "assets_total": r["assets_total"],
                "assets_within_cadence": r["assets_within_cadence"],
                "basis": r["basis"],
            }
            for r in trend
        ],
    }


def why_priority(points: Mapping[str, Any] | None) -> list[str]:
    """The decision points behind a priority, in words, inferred ones marked."""
    if not points:
        return []
    inferred = points.get("inferred") or {}
    said = []
    for name in (
        "exploitation",
        "automatable",
        "technical_impact",
        "mission",
        "exposure",
        "mission_wellbeing",
    ):
        if name in points and points[name] is not None:
            text = f"{name.replace('_', ' ')}: {points[name]}"
            if name in inferred:
                text += f" (inferred {inferred[name]})"
            said.append(text)
    if points.get("table") is not None and points.get("row") is not None:
        said.append(f"decision table {points['table']}, row {points['row']}")
    return said


def why_due(row: Mapping[str, Any], today: date) -> str:
    """Where the due date comes from, and how it stands today."""
    due: date | None = row["due_date"]
    if due is None:
        return "no due date: the patching policy sets none for this severity"
    kev_due = row.get("kev_due_date") or row.get("kev_catalog_due_date")
    if kev_due is not None and kev_due == due:
        source = "the CISA KEV due date, earlier than the severity deadline"
    else:
        days = (due - row["first_seen"].astimezone(UTC).date()).days
        source = f"{row['severity']} severity deadline of the patching policy"
        source += (
            " (set again when it reopened)"
            if row["status"] == "reopened"
            else f" ({days} days after first seen)"
        )
    if row["status"] in rollups.OPEN_STATUSES:
        if due < today:
            return f"{source}; overdue by {_days(due, today)}"
        return f"{source}; {_days(today, due)} left"
    return source


def _days(first: date, last: date) -> str:
    count = (last - first).days
    return f"{count} day" if count == 1 else f"{count} days"


def _finding_item(row: Mapping[str, Any], today: date) -> dict[str, Any]:
    kev = bool(row["known_exploited"] or row["kev_cve_ids"])
    return {
        "id": row["id"],
        "title": row["title"],
        "asset_id": row["asset_id"],
        "asset_name": row["asset_name"],
        "team": row["owner"] or "",
        "team_label": team_label(row["owner"]),
        "engine": row["engine"],
        "rule_id": row["rule_id"],
        "severity": row["severity"],
        "status": row["status"],
        "priority": row["priority"],
        "priority_points": row["priority_points"] or {},
        "why_priority": why_priority(row["priority_points"]),
        "due_date": row["due_date"],
        "why_due": why_due(row, today),
        "overdue": bool(
            row["due_date"] and row["due_date"] < today and row["status"] in rollups.OPEN_STATUSES
        ),
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "fixed_at": row["fixed_at"],
        "cve_ids": list(row["cve_ids"] or []),
        "known_exploited": kev,
        "kev_cve_ids": list(row["kev_cve_ids"] or []),
        "kev_ransomware": bool(row["kev_ransomware"]),
        "cvss_score": None if row["cvss_score"] is None else float(row["cvss_score"]),
        "epss_score": None if row["epss_score"] is None else float(row["epss_score"]),
        "exception_id": row["exception_id"],
    }


class BadPageKey(ValueError):
    """A page key that no page of findings ends with."""


def parse_after(value: str | None) -> rollups.PageKey | None:
    """``<due date or 'none'>~<id>``, as the previous page's ``next`` gave it."""
    if not value:
        return None
    due_text, sep, id_text = value.partition("~")
    try:
        if not sep or not id_text.isdigit() or not 1 <= int(id_text) <= _BIGINT_MAX:
            raise ValueError("expected <due date or 'none'>~<finding id>")
        due = None if due_text == "none" else date.fromisoformat(due_text)
    except ValueError as exc:
        raise BadPageKey(f"after={value!r} is not a page key: {exc}") from exc
    return rollups.PageKey(due, int(id_text))


def format_after(key: rollups.PageKey | None) -> str | None:
    if key is None:
        return None
    return f"{key.due_date.isoformat() if key.due_date else 'none'}~{key.finding_id}"


@dataclass(frozen=True)
class FindingQuery:
    team: str | None = None
    asset: str | None = None
    severity: str | None = None
    status: str = "active"
    kev: str | None = None
    after: str | None = None
    limit: int = FINDINGS_PAGE

    def to_filter(self) -> rollups.FindingFilter:
        team = rollups.UNOWNED if self.team == UNOWNED_LABEL else (self.team or None)
        return rollups.FindingFilter(
            team=team,
            asset_id=self.asset or None,
            severity=self.severity or None,
            status=None if self.status == "any" else self.status,
            known_exploited={"yes": True, "no": False}.get(self.kev or ""),
        )


def findings_data(conn: psycopg.Connection, query: FindingQuery, today: date) -> dict[str, Any]:
    wanted = query.to_filter()
    after = parse_after(query.after)
    rows, next_key = rollups.list_findings(conn, wanted, after, query.limit)
    matching = rollups.count_findings(conn, wanted, FINDINGS_COUNT_CAP)
    return {
        "filters": {
            "team": query.team,
            "asset": query.asset,
            "severity": query.severity,
            "status": query.status,
            "kev": query.kev,
        },
        "items": [_finding_item(r, today) for r in rows],
        "next": format_after(next_key),
        "matching": min(matching, FINDINGS_COUNT_CAP),
        "matching_capped": matching > FINDINGS_COUNT_CAP,
        "teams": [team_label(t) for t in rollups.teams(conn, today - timedelta(days=DEFAULT_DAYS))],
    }


def reports_data(conn: psycopg.Connection) -> dict[str, Any]:
    items = []
    for row in report_store.list_reports(conn):
        items.append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "framework": row.get("framework"),
                "pack_id": row.get("pack_id"),
                "media_type": row["media_type"],
                "period_start": row["period_start"],
                "period_end": row["period_end"],
                "created_at": row["created_at"],
                "sha256": row["sha256"].strip(),
                "size_bytes": row["size_bytes"],
                "policy_hash": (row["policy_hash"] or "").strip() or None,
                "filename": download_name(row),
                "download": f"reports/{row['id']}/download",
            }
        )
    return {"reports": items}


def download_name(row: Mapping[str, Any]) -> str:
    name = PurePosixPath(urlsplit(row["path"]).path).name or f"report-{row['id']}"
    return _SAFE_FILENAME.sub("_", name)[:120] or f"report-{row['id']}"

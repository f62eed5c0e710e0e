"""The posture report: a self-contained, reproducible HTML page built from plain data.

The builder is pure: it reads no clock, no database and no file other than its own template, so
the same ``ReportData`` always gives the same bytes and a report can be rebuilt and its hash
checked later. The page carries no script and loads nothing from elsewhere (a content security
policy says so too), and every value is escaped: asset names and titles come from inventories
and scanners, which are not trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import jinja2

from autosec.domain.models import FindingStatus, Severity

TEMPLATE_NAME = "posture.html.j2"

# Highest first: the order of the headline figures, the chart and the findings table.
SEVERITY_ORDER: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: s.rank, reverse=True))
SEVERITY_COLOURS: Mapping[Severity, str] = {
    Severity.CRITICAL: "#7b1fa2",
    Severity.HIGH: "#c62828",
    Severity.MEDIUM: "#ef6c00",
    Severity.LOW: "#f9a825",
    Severity.INFO: "#607d8b",
}


def _as_date(value: date | datetime | str | None, what: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise ValueError(f"{what}: not an ISO date: {value!r}") from None
    raise TypeError(f"{what}: expected a date, got {type(value).__name__}")


@dataclass(frozen=True)
class ReportFinding:
    """One finding as a report shows it (flattened from the store; no SQL here)."""

    fingerprint: str
    asset_id: str
    asset_name: str
    owner: str | None
    engine: str
    rule_id: str
    title: str
    severity: Severity
    status: FindingStatus
    first_seen: datetime | date | None
    last_seen: datetime | date | None
    due_date: date | None
    cve_ids: tuple[str, ...] = ()
    location: str = ""
    evidence_sha256: str | None = None
    known_exploited: bool = False
    kev_due_date: date | None = None

    def __post_init__(self) -> None:
        where = f"finding {self.fingerprint!r}"
        try:
            severity = Severity.parse(self.severity)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        try:
            status = FindingStatus(str(self.status).strip().lower())
        except ValueError:
            raise ValueError(
                f"{where}: unknown status {self.status!r}: expected one of "
                f"{', '.join(s.value for s in FindingStatus)}"
            ) from None
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "cve_ids", tuple(self.cve_ids or ()))
        object.__setattr__(self, "due_date", _as_date(self.due_date, f"{where} due_date"))
        object.__setattr__(
            self, "kev_due_date", _as_date(self.kev_due_date, f"{where} kev_due_date")
        )

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    def is_overdue(self, on: date) -> bool:
        return self.is_open and self.due_date is not None and self.due_date < on


@dataclass(frozen=True)
class ReportData:
    """Everything a posture or compliance report shows, gathered by the caller beforehand.

    ``blind_spots``: dicts with address, port, source, seen_at and an optional evidence dict.
    ``actions``: dicts with action, asset, status, external_ref, mode, rule_id, at.
    ``approvals``: dicts with id, action, asset, status, requester and ``decisions``, a list of
    dicts with approver, decision, reason, at.
    """

    generated_at: datetime
    period_start: date | datetime
    period_end: date | datetime
    policy_version: str
    policy_hash: str
    assets_total: int
    assets_scanned: int
    blind_spots: Sequence[Mapping[str, Any]] = field(default_factory=list)
    findings: Sequence[ReportFinding] = field(default_factory=list)
    actions: Sequence[Mapping[str, Any]] = field(default_factory=list)
    approvals: Sequence[Mapping[str, Any]] = field(default_factory=list)
    break_glass: Sequence[Mapping[str, Any]] = field(default_factory=list)
    drills: Sequence[Mapping[str, Any]] = field(default_factory=list)
    # asset kind -> detection -> {"coverage": CHECK|LIMITED|MISSING, "engines": [...], "note"}
    coverage_map: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    # per asset: asset_id, kind, owner, engines [{engine, last_success_at, last_status}], overdue
    asset_coverage: Sequence[Mapping[str, Any]] = field(default_factory=list)
    # per inventory source, as last recorded: day, source, active, with_owner, with_environment,
    # stale, quarantined, last_success_at, stale_after_days
    inventory_quality: Sequence[Mapping[str, Any]] = field(default_factory=list)
    # per day of the period: day, active, with_owner, with_environment, stale, quarantined,
    # inventoried, open_blind_spots, completeness (0..1; None where nothing was recorded)
    inventory_trend: Sequence[Mapping[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.assets_total < 0 or self.assets_scanned < 0:
            raise ValueError(
                f"report data: asset counts must not be negative "
                f"(assets_total={self.assets_total}, assets_scanned={self.assets_scanned})"
            )
        if self.assets_scanned > self.assets_total:
            raise ValueError(
                f"report data: assets_scanned ({self.assets_scanned}) is more than "
                f"assets_total ({self.assets_total})"
            )
        for finding in self.findings:
            if not isinstance(finding, ReportFinding):
                raise TypeError(
                    f"report data: findings must be ReportFinding, got {type(finding).__name__}"
                )

    @property
    def as_of(self) -> date:
        """The day overdue is measured against: the report's own date, never today's."""
        return _utc(self.generated_at).date()


# ------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class PostureSummary:
    """The headline figures, computed once and shown (and tested) as numbers."""

    assets_total: int
    assets_scanned: int
    coverage_percent: float | None
    open_by_severity: Mapping[Severity, int]
    open_total: int
    overdue: int
    blind_spots: int
    # open findings nobody owns (no asset owner, no assignment rule): a gap to close, shown
    unowned_open: int = 0


def posture_summary(data: ReportData) -> PostureSummary:
    open_by_severity = dict.fromkeys(SEVERITY_ORDER, 0)
    overdue = unowned = 0
    for finding in data.findings:
        if finding.is_open:
            open_by_severity[finding.severity] += 1
            overdue += finding.is_overdue(data.as_of)
            unowned += not (finding.owner or "").strip()
    coverage = (
        round(100.0 * data.assets_scanned / data.assets_total, 1) if data.assets_total else None
    )
    return PostureSummary(
        assets_total=data.assets_total,
        assets_scanned=data.assets_scanned,
        coverage_percent=coverage,
        open_by_severity=open_by_severity,
        open_total=sum(open_by_severity.values()),
        overdue=overdue,
        blind_spots=len(data.blind_spots),
        unowned_open=unowned,
    )


def finding_sort_key(finding: ReportFinding) -> tuple[Any, ...]:
    """Most severe first, then the earliest due date (none last); ties broken stably."""
    return (
        -finding.severity.rank,
        finding.due_date is None,
        finding.due_date or date.min,
        finding.asset_name,
        finding.rule_id,
        finding.location,
        finding.fingerprint,
    )


def sorted_findings(findings: Iterable[ReportFinding]) -> list[ReportFinding]:
    return sorted(findings, key=finding_sort_key)


# ------------------------------------------------------------------------------ formatting


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_when(value: Any) -> str:
    """Dates as YYYY-MM-DD, times as YYYY-MM-DD HH:MM UTC; anything else as text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _address_key(address: str) -> tuple[int, Any]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (2, address)
    return (ip.version - 4, int(ip))  # IPv4 before IPv6, numeric order; names last


def _port_key(port: Any) -> int:
    try:
        return int(port)
    except (TypeError, ValueError):
        return -1


def _evidence_summary(evidence: Any) -> str:
    if isinstance(evidence, Mapping):
        return "; ".join(f"{k}={_text(evidence[k])}" for k in sorted(evidence, key=str))
    return _text(evidence)


def blind_spot_rows(blind_spots: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = [
        {
            "address": _text(b.get("address")),
            "port": _text(b.get("port")),
            "source": _text(b.get("source")),
            "seen_at": format_when(b.get("seen_at")),
            "evidence": _evidence_summary(b.get("evidence")),
            "_sort": (_address_key(_text(b.get("address"))), _port_key(b.get("port"))),
        }
        for b in blind_spots
    ]
    rows.sort(key=lambda r: (r["_sort"], r["source"], r["seen_at"]))
    for row in rows:
        del row["_sort"]
    return rows


def coverage_map_rows(
    coverage_map: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, Any]:
    """The map as a table: one row per asset kind, one column per detection."""
    detections = sorted({d for cells in coverage_map.values() for d in cells})
    rows = []
    for kind in sorted(coverage_map):
        cells = coverage_map[kind]
        rows.append(
            {
                "kind": kind,
                "cells": [
                    {
                        "coverage": _text(cells.get(d, {}).get("coverage", "MISSING")),
                        "title": ", ".join(cells.get(d, {}).get("engines", ()))
                        or _text(cells.get(d, {}).get("note", "no engine")),
                    }
                    for d in detections
                ],
            }
        )
    return {"detections": detections, "rows": rows}


def asset_coverage_rows(assets: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Per asset: which engines last covered it and when, and which are overdue."""
    rows = []
    for a in assets:
        engines = sorted(a.get("engines", ()), key=lambda e: _text(e.get("engine")))
        rows.append(
            {
                "asset_id": _text(a.get("asset_id")),
                "kind": _text(a.get("kind")),
                "owner": _text(a.get("owner")),
                "covered_by": "; ".join(
                    f"{e['engine']} {format_when(e.get('last_success_at')) or 'never'}"
                    + (
                        ""
                        if e.get("last_status") in (None, "succeeded")
                        else f" (last run {e['last_status']})"
                    )
                    for e in engines
                )
                or "never scanned",
                "overdue": ", ".join(sorted(a.get("overdue", ()))),
            }
        )
    rows.sort(key=lambda r: (r["overdue"] == "", r["asset_id"]))
    return rows


def action_rows(actions: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    keys = ("at", "action", "asset", "mode", "status", "rule_id", "external_ref")
    rows = [{k: format_when(a.get(k)) for k in keys} for a in actions]
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


def _id_key(value: Any) -> tuple[int, Any]:
    text = _text(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def approval_rows(approvals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for approval in approvals:
        decisions = [
            {k: format_when(d.get(k)) for k in ("at", "approver", "decision", "reason")}
            for d in approval.get("decisions") or ()
        ]
        decisions.sort(key=lambda d: (d["at"], d["approver"], d["decision"]))
        rows.append(
            {
                "id": _text(approval.get("id")),
                "action": _text(approval.get("action")),
                "asset": _text(approval.get("asset")),
                "status": _text(approval.get("status")),
                "requester": _text(approval.get("requester")),
                "decisions": decisions,
                "_sort": _id_key(approval.get("id")),
            }
        )
    rows.sort(key=lambda r: r["_sort"])
    for row in rows:
        del row["_sort"]
    return rows


def break_glass_rows(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every break glass session in the period: who, why, how long, what it suspended, uses."""
    rows = [
        {
            "id": _text(s.get("id")),
            "opened_by": _text(s.get("opened_by")),
            "reason": _text(s.get("reason")),
            "opened_at": format_when(s.get("opened_at")),
            "ended_at": format_when(s.get("ended_at")),
            "closed_by": _text(s.get("closed_by")) or "(expired)",
            "suspended_rules": ", ".join(sorted(s.get("suspended_rules") or ())),
            "uses": _text(s.get("uses", 0)),
            "_sort": _id_key(s.get("id")),
        }
        for s in sessions
    ]
    rows.sort(key=lambda r: r["_sort"])
    for row in rows:
        del row["_sort"]
    return rows


def drill_rows(drills: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The latest result of each drill: rare playbooks are tested because they run rarely."""
    rows = [
        {
            "name": _text(d.get("name")),
            "result": "passed" if d.get("passed") else "FAILED",
            "seconds": f"{float(d.get('seconds') or 0):.1f} of {float(d.get('budget') or 0):.0f}",
            "at": format_when(d.get("at")),
            "detail": _text(d.get("detail")),
        }
        for d in drills
    ]
    return sorted(rows, key=lambda r: r["name"])


# ------------------------------------------------------------------- inventory quality

_QUALITY_COUNTS = ("active", "with_owner", "with_environment", "stale", "quarantined")


def _count(value: Any) -> int:
    return int(value or 0)


def _share(part: int, whole: int) -> str:
    return "n/a" if not whole else f"{100.0 * part / whole:.1f}%"


def inventory_quality_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per source and for the whole inventory: shares with an owner and an environment, stale
    assets, quarantined rows, and when each source last synced successfully."""
    rows = list(rows)
    sources = []
    for r in sorted(rows, key=lambda r: _text(r.get("source"))):
        active = _count(r.get("active"))
        sources.append(
            {
                "source": _text(r.get("source")),
                "active": active,
                "with_owner": _share(_count(r.get("with_owner")), active),
                "with_environment": _share(_count(r.get("with_environment")), active),
                "stale": _count(r.get("stale")),
                "stale_share": _share(_count(r.get("stale")), active),
                "quarantined": _count(r.get("quarantined")),
                "last_success_at": format_when(r.get("last_success_at")) or "never",
                "stale_after_days": _text(r.get("stale_after_days")),
            }
        )
    totals = {k: sum(_count(r.get(k)) for r in rows) for k in _QUALITY_COUNTS}
    days = sorted(d for d in (_as_date(r.get("day"), "inventory quality day") for r in rows) if d)
    return {
        "day": days[-1].isoformat() if days else "",
        "sources": sources,
        "overall": {
            "active": totals["active"],
            "with_owner": _share(totals["with_owner"], totals["active"]),
            "with_environment": _share(totals["with_environment"], totals["active"]),
            "stale": totals["stale"],
            "stale_share": _share(totals["stale"], totals["active"]),
            "quarantined": totals["quarantined"],
        },
    }


def _ratio(value: Any) -> float | None:
    return None if value is None else float(value)


def inventory_trend(
    days: Iterable[Mapping[str, Any]],
    start: date | datetime,
    end: date | datetime,
    *,
    width: int = 300,
    height: int = 40,
) -> dict[str, Any]:
    """The daily rows of the period and an inline sparkline of inventory completeness, each
    point placed by its date (a day with nothing recorded leaves a gap, not a squeeze)."""
    first = _as_date(start, "period start")
    last = _as_date(end, "period end")
    span = max(1, (last - first).days)
    rows, points = [], []
    for d in sorted(days, key=lambda d: _as_date(d.get("day"), "trend day")):
        day = _as_date(d.get("day"), "trend day")
        ratio = _ratio(d.get("completeness"))
        active = _count(d.get("active"))
        rows.append(
            {
                "day": day.isoformat(),
                "completeness": "n/a" if ratio is None else f"{100.0 * ratio:.1f}%",
                "inventoried": _text(d.get("inventoried")),
                "open_blind_spots": _text(d.get("open_blind_spots")),
                "with_owner": _share(_count(d.get("with_owner")), active),
                "with_environment": _share(_count(d.get("with_environment")), active),
                "stale": _text(d.get("stale")) if d.get("active") is not None else "",
            }
        )
        if ratio is not None and first <= day <= last:
            x = round(width * (day - first).days / span, 1)
            y = round(2 + (1.0 - min(max(ratio, 0.0), 1.0)) * (height - 4), 1)
            points.append(
                {"x": x, "y": y, "day": day.isoformat(), "ratio": rows[-1]["completeness"]}
            )
    return {
        "rows": rows,
        "sparkline": {
            "width": width,
            "height": height,
            "points": " ".join(f"{p['x']},{p['y']}" for p in points),
            "dots": points,
            "latest": points[-1]["ratio"] if points else "n/a",
        },
    }


def severity_chart(summary: PostureSummary, *, bar_max: int = 300) -> dict[str, Any]:
    """Geometry for the inline SVG bar chart of open findings by severity."""
    top = max(summary.open_by_severity.values(), default=0)
    bar_height, gap, label_width = 22, 8, 80
    bars = []
    for i, severity in enumerate(SEVERITY_ORDER):
        count = summary.open_by_severity[severity]
        width = round(bar_max * count / top) if top else 0
        if count and width < 2:
            width = 2  # a non-zero count stays visible
        y = i * (bar_height + gap)
        bars.append(
            {
                "severity": severity.value,
                "count": count,
                "x": label_width,
                "y": y,
                "width": width,
                "height": bar_height,
                "colour": SEVERITY_COLOURS[severity],
                "text_y": y + bar_height // 2 + 5,
                "count_x": label_width + width + 6,
            }
        )
    return {
        "width": label_width + bar_max + 60,
        "height": len(bars) * (bar_height + gap) - gap,
        "bars": bars,
    }


def _finding_row(finding: ReportFinding, as_of: date) -> dict[str, Any]:
    return {
        "severity": finding.severity.value,
        "title": finding.title,
        "asset_name": finding.asset_name,
        "asset_id": finding.asset_id,
        "owner": _text(finding.owner),
        "engine": finding.engine,
        "rule_id": finding.rule_id,
        "cve_ids": ", ".join(finding.cve_ids),
        "known_exploited": finding.known_exploited,
        "location": finding.location,
        "status": finding.status.value,
        "first_seen": format_when(finding.first_seen),
        "last_seen": format_when(finding.last_seen),
        "due_date": format_when(finding.due_date),
        "overdue": finding.is_overdue(as_of),
        "evidence_sha256": _text(finding.evidence_sha256),
        "fingerprint": finding.fingerprint,
    }


def posture_context(data: ReportData) -> dict[str, Any]:
    """Everything the template shows, already sorted and formatted (so it is testable)."""
    summary = posture_summary(data)
    return {
        "generated_at": format_when(data.generated_at),
        "period_start": format_when(data.period_start),
        "period_end": format_when(data.period_end),
        "policy_version": data.policy_version,
        "policy_hash": data.policy_hash,
        "summary": summary,
        "coverage": "n/a"
        if summary.coverage_percent is None
        else f"{summary.coverage_percent:.1f}%",
        "severities": [s.value for s in SEVERITY_ORDER],
        "open_by_severity": {s.value: n for s, n in summary.open_by_severity.items()},
        "chart": severity_chart(summary),
        "findings": [_finding_row(f, data.as_of) for f in sorted_findings(data.findings)],
        "actions": action_rows(data.actions),
        "approvals": approval_rows(data.approvals),
        "blind_spots": blind_spot_rows(data.blind_spots),
        "break_glass": break_glass_rows(data.break_glass),
        "drills": drill_rows(data.drills),
        "coverage_map": coverage_map_rows(data.coverage_map),
        "asset_coverage": asset_coverage_rows(data.asset_coverage),
        "inventory_quality": inventory_quality_rows(data.inventory_quality),
        "inventory_trend": inventory_trend(
            data.inventory_trend, data.period_start, data.period_end
        ),
    }


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # autoescape=True, not select_autoescape: the template is named *.html.j2, which
    # select_autoescape's extension check would not recognise as HTML.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("autosec.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_posture_html(data: ReportData) -> bytes:
    """The posture report as UTF-8 HTML; deterministic for a given ``data``."""
    template = _environment().get_template(TEMPLATE_NAME)
    return template.render(**posture_context(data)).encode("utf-8")


__all__ = [
    "SEVERITY_ORDER",
    "PostureSummary",
    "ReportData",
    "ReportFinding",
    "finding_sort_key",
    "format_when",
    "posture_context",
    "posture_summary",
    "render_posture_html",
    "sorted_findings",
]

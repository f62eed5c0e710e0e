"""The FedRAMP POA&M (plan of action and milestones) as CSV, built from plain report data.

One row per unique open vulnerability: open findings that share a CVE set (or, without CVEs,
a rule id) are one weakness however many assets carry it, with the assets listed together and the
earliest due date as the scheduled completion. Column names are those of the FedRAMP POA&M
template's open items worksheet. Pure and deterministic: no clock, no I/O, stable POAM IDs
derived from the weakness itself so the same weakness keeps its id from one month to the next.
Cells that a spreadsheet would read as a formula are defused.

Compliance packs pass their framework's controls for the Controls column, findings whose due
dates the framework set, and group closed items (fixed in the period) the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from autosec.domain.models import Severity
from autosec.reporting.posture import (
    ReportData,
    ReportFinding,
    finding_sort_key,
    format_when,
)

POAM_COLUMNS: tuple[str, ...] = (
    "POAM ID",
    "Controls",
    "Weakness Name",
    "Weakness Description",
    "Weakness Detector Source",
    "Weakness Source Identifier",
    "Asset Identifier",
    "Point of Contact",
    "Resources Required",
    "Overall Remediation Plan",
    "Original Detection Date",
    "Scheduled Completion Date",
    "Planned Milestones",
    "Milestone Changes",
    "Status Date",
    "Vendor Dependency",
    "Last Vendor Check-in Date",
    "Vendor Dependent Product Name",
    "Original Risk Rating",
    "Adjusted Risk Rating",
    "Risk Adjustment",
    "False Positive",
    "Operational Requirement",
    "Deviation Rationale",
    "Supporting Documents",
    "Comments",
    "Auto-Approve",
    "Binding Operational Directive 22-01 tracking",
    "Binding Operational Directive 22-01 Due Date",
    "CVE",
    "Service Name",
)

# FedRAMP rates weaknesses Low / Moderate / High; scanner "critical" counts as High.
RISK_RATING: Mapping[Severity, str] = {
    Severity.CRITICAL: "High",
    Severity.HIGH: "High",
    Severity.MEDIUM: "Moderate",
    Severity.LOW: "Low",
    Severity.INFO: "Low",
}
CONTROLS = "RA-5"  # vulnerability monitoring and scanning: where scanner findings belong
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def defuse_cell(value: str) -> str:
    """Prefix a cell a spreadsheet would evaluate as a formula with a quote (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


@dataclass(frozen=True)
class Weakness:
    """Open findings grouped into one POA&M item."""

    key: tuple[str, tuple[str, ...]]
    findings: tuple[ReportFinding, ...]

    @property
    def poam_id(self) -> str:
        kind, values = self.key
        digest = hashlib.sha256(f"{kind}:{'|'.join(values)}".encode()).hexdigest()
        return f"POAM-{digest[:10].upper()}"

    @property
    def lead(self) -> ReportFinding:
        """The most severe, earliest-due finding: its title names the weakness."""
        return self.findings[0]

    @property
    def severity(self) -> Severity:
        return self.lead.severity

    @property
    def scheduled_completion(self) -> date | None:
        dues = [f.due_date for f in self.findings if f.due_date is not None]
        return min(dues) if dues else None


def _cves(finding: ReportFinding) -> tuple[str, ...]:
    return tuple(sorted({c.strip().upper() for c in finding.cve_ids if c.strip()}))


def weakness_key(finding: ReportFinding) -> tuple[str, tuple[str, ...]]:
    """Same CVEs = same vulnerability across assets and detectors; no CVE: same rule id."""
    cves = _cves(finding)
    return ("cve", cves) if cves else ("rule", (finding.rule_id,))


def group_weaknesses(
    findings: Iterable[ReportFinding], *, open_only: bool = True
) -> list[Weakness]:
    """Findings grouped per vulnerability, most severe and earliest due first. ``open_only``
    keeps open findings only (the open items); closed items pass their fixed findings."""
    groups: dict[tuple[str, tuple[str, ...]], list[ReportFinding]] = {}
    for finding in findings:
        if finding.is_open or not open_only:
            groups.setdefault(weakness_key(finding), []).append(finding)
    weaknesses = [
        Weakness(key, tuple(sorted(members, key=finding_sort_key)))
        for key, members in groups.items()
    ]
    weaknesses.sort(
        key=lambda w: (
            -w.severity.rank,
            w.scheduled_completion is None,
            w.scheduled_completion or date.min,
            w.poam_id,
        )
    )
    return weaknesses


def _unique(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def _earliest(values: Iterable[object]) -> str:
    dated = sorted(format_when(v)[:10] for v in values if v is not None)
    return dated[0] if dated else ""


def poam_row(weakness: Weakness, data: ReportData, controls: str = CONTROLS) -> dict[str, str]:
    findings = weakness.findings
    lead = weakness.lead
    engines = _unique(f.engine for f in findings)
    rule_ids = _unique(f.rule_id for f in findings)
    cves = _unique(c for f in findings for c in _cves(f))
    asset_names = _unique(f.asset_name for f in findings)
    asset_identifiers = _unique(
        f"{f.asset_name} ({f.location})" if f.location else f.asset_name for f in findings
    )
    owners = _unique(f.owner for f in findings) or ["unassigned"]
    evidence = _unique(f"sha256:{f.evidence_sha256}" for f in findings if f.evidence_sha256)
    due = format_when(weakness.scheduled_completion)
    known_exploited = any(f.known_exploited for f in findings)
    kev_due = _earliest(f.kev_due_date for f in findings if f.known_exploited)
    description = (
        f"{lead.title}. Severity {weakness.severity.value}"
        + (f"; {', '.join(cves)}" if cves else "")
        + f". Open on {len(asset_names)} asset(s): {', '.join(asset_names)}."
    )
    row = {
        "POAM ID": weakness.poam_id,
        "Controls": controls,
        "Weakness Name": lead.title,
        "Weakness Description": description,
        "Weakness Detector Source": "; ".join(engines),
        "Weakness Source Identifier": "; ".join(rule_ids),
        "Asset Identifier": "\n".join(asset_identifiers),
        "Point of Contact": "; ".join(owners),
        "Resources Required": "",
        "Overall Remediation Plan": (
            f"Remediate under patching policy {data.policy_version}; the item closes when a "
            "verification rescan of every listed asset no longer reports it."
        ),
        "Original Detection Date": _earliest(f.first_seen for f in findings),
        "Scheduled Completion Date": due,
        "Planned Milestones": (
            f"{due}: remediate and verify by rescan" if due else "remediate and verify by rescan"
        ),
        "Milestone Changes": "",
        "Status Date": format_when(data.as_of),
        "Vendor Dependency": "No",
        "Last Vendor Check-in Date": "",
        "Vendor Dependent Product Name": "",
        "Original Risk Rating": RISK_RATING[weakness.severity],
        "Adjusted Risk Rating": "",
        "Risk Adjustment": "No",
        "False Positive": "No",
        "Operational Requirement": "No",
        "Deviation Rationale": "",
        "Supporting Documents": "\n".join(evidence),
        "Comments": (
            f"{len(findings)} open finding(s); policy {data.policy_version} "
            f"sha256 {data.policy_hash}"
        ),
        "Auto-Approve": "No",
        "Binding Operational Directive 22-01 tracking": "Yes" if known_exploited else "No",
        "Binding Operational Directive 22-01 Due Date": kev_due,
        "CVE": ", ".join(cves),
        "Service Name": "; ".join(asset_names),
    }
    return {column: defuse_cell(row[column]) for column in POAM_COLUMNS}


def poam_rows(data: ReportData, controls: str = CONTROLS) -> list[dict[str, str]]:
    return [poam_row(w, data, controls) for w in group_weaknesses(data.findings)]


def write_poam_csv(rows: Iterable[Mapping[str, str]]) -> bytes:
    """POA&M rows as UTF-8 CSV (RFC 4180 quoting, CRLF line ends), header first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=POAM_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def render_poam_csv(data: ReportData, controls: str = CONTROLS) -> bytes:
    """The POA&M open items as UTF-8 CSV (RFC 4180 quoting, CRLF line ends)."""
    return write_poam_csv(poam_rows(data, controls))


__all__ = [
    "CONTROLS",
    "POAM_COLUMNS",
    "RISK_RATING",
    "Weakness",
    "defuse_cell",
    "group_weaknesses",
    "poam_row",
    "poam_rows",
    "render_poam_csv",
    "weakness_key",
    "write_poam_csv",
]

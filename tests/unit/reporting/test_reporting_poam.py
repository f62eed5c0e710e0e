"""The POA&M CSV: columns, grouping per vulnerability, dates, CSV injection, determinism."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from autosec.reporting.poam import POAM_COLUMNS, defuse_cell, render_poam_csv
from autosec.reporting.posture import ReportData

FEDRAMP_COLUMNS = [
    "POAM ID", "Controls", "Weakness Name", "Weakness Description", "Weakness Detector Source",
    "Weakness Source Identifier", "Asset Identifier", "Point of Contact", "Resources Required",
    "Overall Remediation Plan", "Original Detection Date", "Scheduled Completion Date",
    "Planned Milestones", "Milestone Changes", "Status Date", "Vendor Dependency",
    "Last Vendor Check-in Date", "Vendor Dependent Product Name", "Original Risk Rating",
    "Adjusted Risk Rating", "Risk Adjustment", "False Positive", "Operational Requirement",
    "Deviation Rationale", "Supporting Documents", "Comments", "Auto-Approve",
    "Binding Operational Directive 22-01 tracking",
    "Binding Operational Directive 22-01 Due Date", "CVE", "Service Name",
]  # fmt: skip


def read(raw: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_header_is_the_fedramp_template(data: ReportData) -> None:
    header, _ = read(render_poam_csv(data))
    assert header == FEDRAMP_COLUMNS == list(POAM_COLUMNS)


def test_one_row_per_open_vulnerability(data: ReportData) -> None:
    _, rows = read(render_poam_csv(data))
    # Two Apache findings share a CVE (one row); the EOL database; the reopened low; the info.
    # Fixed and accepted findings are not open items.
    assert [r["Weakness Name"] for r in rows] == [
        "Apache httpd 2.4.49 path traversal",
        "MySQL 5.5.62 is end of life",
        "'-2+3 banner",
        "Service banner",
    ]
    assert all(r["POAM ID"].startswith("POAM-") for r in rows)
    assert len({r["POAM ID"] for r in rows}) == 4


def test_grouped_row_spans_assets_detectors_and_dates(data: ReportData) -> None:
    _, rows = read(render_poam_csv(data))
    apache = rows[0]
    assert apache["CVE"] == "CVE-2021-41773"
    assert apache["Asset Identifier"].splitlines() == [
        "web-backup (127.0.0.21:443/tcp)",
        "web-frontend (127.0.0.11:8080/tcp)",
    ]
    assert apache["Point of Contact"] == "team-ops; team-web"
    assert apache["Weakness Detector Source"] == "nmap; osv"
    assert apache["Weakness Source Identifier"] == "GHSA-xxxx-apache; nmap.vulnerable-version"
    assert apache["Scheduled Completion Date"] == "2026-03-20"  # the earliest due date
    assert apache["Original Detection Date"] == "2026-02-27"  # the earliest first seen
    assert apache["Status Date"] == "2026-03-31"
    assert apache["Original Risk Rating"] == "High"
    assert apache["Binding Operational Directive 22-01 tracking"] == "Yes"
    assert apache["Binding Operational Directive 22-01 Due Date"] == "2021-11-17"
    evidence = apache["Supporting Documents"].splitlines()
    assert evidence == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    assert "2 open finding(s)" in apache["Comments"]
    assert data.policy_hash in apache["Comments"]

    mysql = rows[1]
    assert mysql["CVE"] == ""
    assert mysql["Weakness Source Identifier"] == "nmap.eol-software"
    assert mysql["Binding Operational Directive 22-01 tracking"] == "No"
    assert mysql["Original Risk Rating"] == "High"
    assert rows[3]["Original Risk Rating"] == "Low"
    assert rows[3]["Scheduled Completion Date"] == ""


def test_cells_that_look_like_formulas_are_defused(data: ReportData) -> None:
    raw = render_poam_csv(data)
    _, rows = read(raw)
    hostile = rows[2]
    assert hostile["Point of Contact"] == '\'=HYPERLINK("http://evil.example","click")'
    assert hostile["Weakness Source Identifier"] == "'@SUM(1+1)"
    assert hostile["Weakness Name"] == "'-2+3 banner"
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@")), (column, cell)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("2026-03-20", "2026-03-20"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_defuse_cell(cell: str, expected: str) -> None:
    assert defuse_cell(cell) == expected


def test_poam_ids_are_stable_across_reports(
    data: ReportData, make_report: Callable[..., ReportData], make_finding: Callable[..., Any]
) -> None:
    _, rows = read(render_poam_csv(data))
    ids = {r["Weakness Name"]: r["POAM ID"] for r in rows}
    next_month = make_report(findings=[make_finding(fingerprint="other", asset_name="web-3")])
    _, later = read(render_poam_csv(next_month))
    assert later[0]["POAM ID"] == ids["Apache httpd 2.4.49 path traversal"]


def test_same_data_same_bytes_whatever_the_order(
    data: ReportData, make_report: Callable[..., ReportData]
) -> None:
    first = render_poam_csv(data)
    assert render_poam_csv(data) == first
    findings = list(data.findings)
    for reordered in (findings[::-1], findings[3:] + findings[:3]):
        assert render_poam_csv(make_report(findings=reordered)) == first


def test_no_open_findings_gives_the_header_only(make_report: Callable[..., ReportData]) -> None:
    raw = render_poam_csv(make_report(findings=[]))
    header, rows = read(raw)
    assert header == list(POAM_COLUMNS) and rows == []
    assert raw.endswith(b"\r\n")

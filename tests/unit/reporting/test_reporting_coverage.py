"""The coverage section of the posture report: the map as a table and per-asset coverage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from autosec.reporting.posture import (
    ReportData,
    asset_coverage_rows,
    coverage_map_rows,
    render_posture_html,
)

MAP = {
    "host": {
        "service versions": {"coverage": "CHECK", "engines": ["nmap"], "note": ""},
        "secrets in code": {"coverage": "MISSING", "engines": [], "note": "not enabled: secrets"},
    },
    "repository": {
        "secrets in code": {"coverage": "LIMITED", "engines": ["secrets"], "note": "partly"},
    },
}


def test_the_map_is_one_row_per_kind_and_one_column_per_detection() -> None:
    table = coverage_map_rows(MAP)
    assert table["detections"] == ["secrets in code", "service versions"]
    assert [r["kind"] for r in table["rows"]] == ["host", "repository"]
    host, repository = table["rows"]
    assert [c["coverage"] for c in host["cells"]] == ["MISSING", "CHECK"]
    assert host["cells"][0]["title"] == "not enabled: secrets"
    # a detection absent from a kind's row is missing there, never left blank
    assert [c["coverage"] for c in repository["cells"]] == ["LIMITED", "MISSING"]


def test_overdue_assets_come_first_with_their_engines_and_last_runs() -> None:
    rows = asset_coverage_rows(
        [
            {
                "asset_id": "b-ok",
                "kind": "host",
                "owner": "ops",
                "overdue": [],
                "engines": [
                    {
                        "engine": "nmap",
                        "last_success_at": datetime(2026, 11, 20, tzinfo=UTC),
                        "last_status": "succeeded",
                    }
                ],
            },
            {
                "asset_id": "c-never",
                "kind": "host",
                "owner": "ops",
                "overdue": ["nmap"],
                "engines": [],
            },
            {
                "asset_id": "a-failed",
                "kind": "web_app",
                "owner": "web",
                "overdue": ["http", "tls"],
                "engines": [{"engine": "tls", "last_success_at": None, "last_status": "failed"}],
            },
        ]
    )
    assert [r["asset_id"] for r in rows] == ["a-failed", "c-never", "b-ok"]
    assert rows[0]["overdue"] == "http, tls"
    assert rows[0]["covered_by"] == "tls never (last run failed)"
    assert rows[1]["covered_by"] == "never scanned"
    assert rows[2]["covered_by"].startswith("nmap 2026-11-20")


def test_the_rendered_report_shows_the_map(data: ReportData) -> None:
    html = render_posture_html(
        replace(
            data,
            coverage_map=MAP,
            asset_coverage=[
                {
                    "asset_id": "c-never",
                    "kind": "host",
                    "owner": "ops",
                    "overdue": ["nmap"],
                    "engines": [],
                }
            ],
        )
    ).decode()
    assert '<section id="coverage">' in html
    assert 'class="coverage-missing" title="not enabled: secrets">MISSING</td>' in html
    assert "<td>c-never</td>" in html and "<td>nmap</td>" in html
    empty = render_posture_html(data).decode()
    assert "No engine capabilities were available for the map." in empty

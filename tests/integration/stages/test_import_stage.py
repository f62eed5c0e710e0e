"""Importing reports other scanners wrote, on the real store: a reimport is a no-op, a report
without one finding closes exactly that finding, and a bad report changes nothing."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.stages.blobs import LocalBlobStore, sha256_hex
from autosec.stages.imports import (
    CLAIMED,
    DONE,
    FAILED,
    INCOMING,
    claim_dropped,
    file_away,
    import_report,
    target_keys,
    triage_now,
)
from autosec.store import inventory

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def vulnerability(cve: str, package: str, severity: str = "HIGH") -> dict:
    return {
        "VulnerabilityID": cve,
        "PkgName": package,
        "InstalledVersion": "1.0.0",
        "FixedVersion": "1.0.1",
        "Severity": severity,
        "Title": f"{package}: {cve} at {time.time()}",  # volatile wording on purpose
    }


def trivy_report(path: Path, vulnerabilities: list[dict], artifact: str = "payments-api") -> Path:
    path.write_text(
        json.dumps(
            {
                "SchemaVersion": 2,
                "ArtifactName": artifact,
                "ArtifactType": "filesystem",
                "Results": [
                    {
                        "Target": "requirements.txt",
                        "Class": "lang-pkgs",
                        "Type": "pip",
                        "Vulnerabilities": vulnerabilities,
                    }
                ],
            }
        )
    )
    return path


THREE = [
    vulnerability("CVE-2023-32681", "requests", "MEDIUM"),
    vulnerability("CVE-2024-37891", "urllib3"),
    vulnerability("CVE-2024-35195", "requests-toolbelt", "LOW"),
]


@pytest.fixture
def estate(conn):
    run = inventory.start_sync(conn, "cmdb", "file")
    assets = [
        Asset(
            "payments-api",
            "payments-api",
            AssetKind.REPOSITORY,
            "cmdb",
            "team-payments",
            Environment.PRODUCTION,
            Criticality.HIGH,
            ("https://git.example.com/payments",),
        ),
        Asset(
            "web",
            "web-frontend",
            AssetKind.WEB_APP,
            "cmdb",
            "team-web",
            Environment.STAGING,
            Criticality.MEDIUM,
            ("http://127.0.0.11:18080",),
        ),
    ]
    inventory.apply_source_snapshot(conn, run, "cmdb", assets, T0)
    conn.commit()
    return conn


def run_import(conn, tmp_path: Path, report: Path, **kwargs):
    clock = Clock()
    return import_report(
        conn,
        report,
        LocalBlobStore(tmp_path / "blobs"),
        triage_now(DAYS, clock),
        clock,
        **kwargs,
    )


def statuses(conn) -> dict[str, str]:
    rows = conn.execute("SELECT rule_id, status FROM findings ORDER BY rule_id").fetchall()
    return dict(rows)


def history_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM finding_history").fetchone()[0]


def test_import_then_reimport_is_a_no_op_and_one_removed_closes_exactly_one(estate, tmp_path):
    conn = estate
    report = trivy_report(tmp_path / "trivy.json", THREE)

    first = run_import(conn, tmp_path, report, asset_id="payments-api")
    assert first.errors == []
    assert (first.format, first.created, first.closed, first.findings_in_report) == (
        "trivy",
        3,
        0,
        3,
    )
    assert first.sha256 == sha256_hex(report.read_bytes())
    engine, evidence = conn.execute(
        "SELECT r.engine, e.sha256 FROM scan_runs r JOIN evidence e ON e.scan_run_id = r.id "
        "WHERE r.id = %s",
        (first.scan_run_id,),
    ).fetchone()
    assert (engine, evidence) == ("import:trivy", first.sha256)
    history = history_rows(conn)

    again = run_import(
        conn, tmp_path, trivy_report(tmp_path / "trivy.json", THREE), asset_id="payments-api"
    )
    assert (again.created, again.updated, again.unchanged, again.closed, again.reopened) == (
        0,
        0,
        3,
        0,
        0,
    )
    assert history_rows(conn) == history
    assert conn.execute("SELECT count(*) FROM findings").fetchone()[0] == 3

    fewer = run_import(
        conn, tmp_path, trivy_report(tmp_path / "trivy.json", THREE[:2]), asset_id="payments-api"
    )
    assert (fewer.created, fewer.unchanged, fewer.closed) == (0, 2, 1)
    assert statuses(conn) == {
        "CVE-2023-32681": "open",
        "CVE-2024-35195": "fixed",
        "CVE-2024-37891": "open",
    }

    back = run_import(
        conn, tmp_path, trivy_report(tmp_path / "trivy.json", THREE), asset_id="payments-api"
    )
    assert (back.created, back.reopened, back.unchanged, back.closed) == (0, 1, 2, 0)
    assert statuses(conn)["CVE-2024-35195"] == "reopened"


def test_a_changed_severity_counts_as_updated_not_unchanged(estate, tmp_path):
    conn = estate
    run_import(conn, tmp_path, trivy_report(tmp_path / "t.json", THREE), asset_id="payments-api")
    changed = [dict(v) for v in THREE]
    changed[0]["Severity"] = "CRITICAL"
    summary = run_import(
        conn, tmp_path, trivy_report(tmp_path / "t.json", changed), asset_id="payments-api"
    )
    assert (summary.created, summary.updated, summary.unchanged, summary.closed) == (0, 1, 2, 0)


def test_targets_map_to_assets_by_name_and_unknown_targets_are_named(estate, tmp_path):
    conn = estate
    named = run_import(conn, tmp_path, trivy_report(tmp_path / "a.json", THREE[:1]))
    assert named.errors == [] and named.created == 1
    assert conn.execute("SELECT asset_id FROM findings").fetchone()[0] == "payments-api"

    stranger = run_import(
        conn, tmp_path, trivy_report(tmp_path / "b.json", THREE, artifact="ghost-svc")
    )
    assert stranger.scan_run_id is None and stranger.created == 0
    assert len(stranger.errors) == 1
    assert "'ghost-svc'" in stranger.errors[0] and "--asset" in stranger.errors[0]


def test_a_malformed_report_stores_nothing_and_names_the_file(estate, tmp_path):
    conn = estate
    run_import(conn, tmp_path, trivy_report(tmp_path / "ok.json", THREE), asset_id="payments-api")
    before = conn.execute("SELECT count(*), max(id) FROM scan_runs").fetchone()
    broken = tmp_path / "broken.json"
    broken.write_text(trivy_report(tmp_path / "x.json", THREE).read_text()[:150])

    summary = run_import(conn, tmp_path, broken, format_name="trivy", asset_id="payments-api")

    assert summary.scan_run_id is None
    assert len(summary.errors) == 1 and str(broken) in summary.errors[0]
    assert conn.execute("SELECT count(*), max(id) FROM scan_runs").fetchone() == before
    assert set(statuses(conn).values()) == {"open"}


def test_an_unknown_format_or_asset_is_refused_with_a_clear_error(estate, tmp_path):
    conn = estate
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    assert "not a report format" in run_import(conn, tmp_path, text).errors[0]
    report = trivy_report(tmp_path / "t.json", THREE)
    missing = run_import(conn, tmp_path, report, asset_id="nope")
    assert missing.errors == [f"{report}: no active inventory asset 'nope'"]
    assert conn.execute("SELECT count(*) FROM scan_runs").fetchone()[0] == 0


def test_target_keys_cover_urls_host_ports_and_hosts() -> None:
    assert target_keys("http://127.0.0.11:18080/login") == [
        "http://127.0.0.11:18080/login",
        "127.0.0.11:18080",
        "127.0.0.11",
    ]
    assert target_keys("Web.Example.com") == ["web.example.com"]


def test_the_drop_folder_claims_settled_files_once_and_files_them_away(estate, tmp_path):
    conn = estate
    root = tmp_path / "drop"
    (root / INCOMING).mkdir(parents=True)
    settled = trivy_report(root / INCOMING / "payments-api.json", THREE)
    old = time.time() - 60
    os.utime(settled, (old, old))
    fresh = trivy_report(root / INCOMING / "still-writing.json", THREE)

    claimed = claim_dropped(root, min_age_seconds=5, now=time.time())
    assert [p.name for p in claimed] == ["payments-api.json"]
    assert fresh.exists() and not settled.exists()
    assert claim_dropped(root, min_age_seconds=5, now=time.time()) == []

    summary = run_import(conn, tmp_path, claimed[0])
    assert summary.created == 3
    assert file_away(root, claimed[0], summary) == root / DONE / "payments-api.json"

    garbage = root / CLAIMED / "garbage.json"
    garbage.write_text("{not json")
    bad = run_import(conn, tmp_path, garbage)
    filed = file_away(root, garbage, bad)
    assert filed == root / FAILED / "garbage.json"
    assert "garbage.json" in (root / FAILED / "garbage.json.error").read_text()


def sarif_log(path: Path, tool: str, rule_ids: list[str]) -> Path:
    results = [
        {
            "ruleId": rule,
            "level": "error",
            "message": {"text": f"{rule} found"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "src/app.py"},
                        "region": {"startLine": 10 + i},
                    }
                }
            ],
        }
        for i, rule in enumerate(rule_ids)
    ]
    path.write_text(
        json.dumps(
            {
                "version": "2.1.0",
                "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
                "runs": [{"tool": {"driver": {"name": tool, "rules": []}}, "results": results}],
            }
        )
    )
    return path


def test_a_sarif_log_closes_only_findings_of_the_tool_that_wrote_it(estate, tmp_path):
    conn = estate
    codeql = sarif_log(tmp_path / "codeql.sarif", "CodeQL", ["py/sql-injection", "py/xss"])
    semgrep = sarif_log(tmp_path / "semgrep.sarif", "Semgrep OSS", ["python.eval"])
    assert run_import(conn, tmp_path, codeql, asset_id="payments-api").created == 2
    assert run_import(conn, tmp_path, semgrep, asset_id="payments-api").created == 1

    empty_semgrep = sarif_log(tmp_path / "semgrep-clean.sarif", "Semgrep OSS", [])
    summary = run_import(conn, tmp_path, empty_semgrep, asset_id="payments-api")

    assert summary.closed == 1
    assert statuses(conn) == {"py/sql-injection": "open", "py/xss": "open", "python.eval": "fixed"}
    engines = {r[0] for r in conn.execute("SELECT DISTINCT engine FROM findings").fetchall()}
    assert engines == {"import:sarif:codeql", "import:sarif:semgrep-oss"}

"""The report stage: posture HTML and POA&M CSV built from the store, hashed and recorded."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from autosec.config.policy import LoadedPolicy, load_policy
from autosec.domain.models import (
    Asset,
    AssetKind,
    BlindSpot,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.remediate import decide_findings
from autosec.stages.report import build_reports
from autosec.stages.triage import triage_runs
from autosec.store import approvals, discovery, findings, inventory, scans

pytestmark = pytest.mark.integration
POLICY_PATH = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
CVE = "CVE-2021-41773"
TITLE = "Apache httpd 2.4.49 path traversal"
BLIND_ADDRESS = "10.9.8.7"
EVIDENCE = hashlib.sha256(b"nmap report for web").hexdigest()
APPROVER, REASON = "ciso", "patch window agreed with team-web"


def _asset(asset_id: str, environment: Environment, host: str) -> Asset:
    return Asset(
        asset_id,
        f"{asset_id}-name",
        AssetKind.WEB_APP,
        "cmdb",
        f"team-{asset_id}",
        environment,
        Criticality.HIGH,
        (host,),
    )


def _obs(asset_id: str, host: str, port: int, rule: str, title: str, severity, cves=()):
    return Observation(
        asset_id,
        "nmap",
        rule,
        title,
        severity,
        Location(host=host, port=port, protocol="tcp"),
        cve_ids=tuple(cves),
    )


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(POLICY_PATH)


@pytest.fixture
def seeded(conn, policy):
    """Two assets sharing one CVE, a rule-only finding, a fixed one, a blind spot, an approval."""
    sync = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(
        conn,
        sync,
        "cmdb",
        [
            _asset("web", Environment.PRODUCTION, "127.0.0.11"),
            _asset("portal", Environment.STAGING, "127.0.0.12"),
        ],
        T0,
    )
    conn.commit()
    observed = {
        "web": [
            _obs("web", "127.0.0.11", 443, "nmap.test-cve", TITLE, Severity.HIGH, [CVE]),
            _obs("web", "127.0.0.11", 8080, "nmap.test-gone", "Old admin page", Severity.LOW),
        ],
        "portal": [
            _obs("portal", "127.0.0.12", 443, "nmap.test-cve", TITLE, Severity.HIGH, [CVE]),
            _obs("portal", "127.0.0.12", 22, "nmap.test-ssh", "Weak SSH ciphers", Severity.MEDIUM),
        ],
    }
    for asset_id, observations in observed.items():
        run = scans.start_scan_run(conn, "nmap", [asset_id], {}, ["nmap"], T0)
        scans.add_observations(conn, run, observations)
        if asset_id == "web":
            scans.add_evidence(conn, run, EVIDENCE, "file:///evidence/web.xml", 19, "text/xml")
        scans.finish_scan_run(conn, run, "succeeded", T0)
    triage_runs(conn, policy.policy.patching.days_by_severity(), T0)
    [(gone_id, last_run)] = conn.execute(
        "SELECT id, last_scan_run_id FROM findings WHERE rule_id = 'nmap.test-gone'"
    ).fetchall()
    findings.close_findings(conn, [gone_id], last_run, T0 + timedelta(days=1))
    discovery.record_blind_spots(
        conn, [BlindSpot(BLIND_ADDRESS, 8443, "tcp_sweep", {"banner": "nginx"}, T0)]
    )
    conn.commit()
    plan = decide_findings(conn, policy, T0, requester="autosec-scheduler")
    web_gate = conn.execute(
        "SELECT x.approval_id FROM actions x JOIN findings f ON f.id = x.finding_id "
        "WHERE f.asset_id = 'web' AND f.rule_id = 'nmap.test-cve'"
    ).fetchone()[0]
    assert web_gate in plan.approval_ids
    approvals.decide(conn, web_gate, APPROVER, "approve", REASON, T0 + timedelta(hours=1))
    return conn


def _read(uri: str) -> bytes:
    """The stored bytes, read straight from the file the URI names."""
    parts = urlsplit(uri)
    assert parts.scheme == "file"
    return Path(unquote(parts.path)).read_bytes()


def test_reports_are_built_hashed_recorded_and_announced(seeded, policy, tmp_path) -> None:
    conn = seeded
    now = T0 + timedelta(days=2)
    blobs = LocalBlobStore(tmp_path)

    built = build_reports(conn, blobs, policy, now)

    assert sorted(r.kind for r in built) == ["poam", "posture"]
    rows = {
        r[0]: r
        for r in conn.execute(
            "SELECT kind, id, media_type, path, sha256, size_bytes, policy_hash, period_start, "
            "period_end FROM reports"
        ).fetchall()
    }
    assert set(rows) == {"poam", "posture"}
    content: dict[str, bytes] = {}
    for report in built:
        kind, report_id, _, path, sha, size, policy_hash, start, end = rows[report.kind]
        data = _read(path)
        content[kind] = data
        assert (report_id, path, sha) == (report.report_id, report.uri, report.sha256)
        assert sha == hashlib.sha256(data).hexdigest()
        assert size == len(data)
        assert policy_hash == policy.sha256
        assert (start, end) == ((now - timedelta(days=30)).date(), now.date())
        assert Path(unquote(urlsplit(path).path)).is_relative_to(tmp_path)
    assert rows["posture"][2] == "text/html" and rows["poam"][2] == "text/csv"
    assert "/2026/11/03/" in rows["posture"][3]

    html = content["posture"].decode()
    assert TITLE in html
    assert "Weak SSH ciphers" in html
    assert BLIND_ADDRESS in html
    assert APPROVER in html and REASON in html
    assert policy.sha256 in html

    table = list(csv.DictReader(io.StringIO(content["poam"].decode())))
    # The CVE on two assets is one weakness; the SSH finding another; the fixed one none.
    assert len(table) == 2
    assert len({r["POAM ID"] for r in table}) == 2
    by_name = {r["Weakness Name"]: r for r in table}
    assert set(by_name) == {TITLE, "Weak SSH ciphers"}
    assert by_name[TITLE]["CVE"] == CVE
    assert by_name[TITLE]["Service Name"] == "portal-name; web-name"
    assert by_name[TITLE]["Original Risk Rating"] == "High"
    assert by_name[TITLE]["Supporting Documents"] == f"sha256:{EVIDENCE}"
    assert EVIDENCE in html
    assert (
        by_name[TITLE]["Scheduled Completion Date"] == (T0 + timedelta(days=30)).date().isoformat()
    )
    assert by_name["Weak SSH ciphers"]["Point of Contact"] == "team-portal"
    assert "Old admin page" not in content["poam"].decode()

    events = conn.execute(
        "SELECT subject, payload->>'kind', payload->>'sha256', payload->>'uri' FROM events "
        "WHERE name = 'report.ready' ORDER BY id"
    ).fetchall()
    assert sorted(events) == sorted(
        (f"report:{r.report_id}", r.kind, r.sha256, r.uri) for r in built
    )


def test_a_second_build_is_a_new_dated_report(seeded, policy, tmp_path) -> None:
    conn = seeded
    blobs = LocalBlobStore(tmp_path)
    first = build_reports(conn, blobs, policy, T0 + timedelta(days=2))
    second = build_reports(conn, blobs, policy, T0 + timedelta(days=3))

    assert len({r.uri for r in first + second}) == 4
    assert all(_read(r.uri) for r in first)  # the earlier reports are kept, not overwritten
    assert conn.execute("SELECT count(*) FROM reports").fetchone() == (4,)
    assert conn.execute("SELECT count(*) FROM events WHERE name = 'report.ready'").fetchone() == (
        4,
    )


def test_break_glass_sessions_of_the_period_are_reported(seeded, policy, tmp_path) -> None:
    from autosec.stages.break_glass import open_session

    conn = seeded
    now = T0 + timedelta(days=2)
    session = open_session(
        conn, policy, "ciso", "P1 outage: <b>db</b> failover", now - timedelta(hours=2), minutes=30
    )
    conn.commit()
    built = build_reports(conn, LocalBlobStore(tmp_path), policy, now)
    posture = next(r for r in built if r.kind == "posture")
    html = _read(posture.uri).decode()
    section = html[html.index('<section id="break-glass">') :]
    assert "Break glass (1)" in section
    assert f"<td>{session['id']}</td><td>ciso</td>" in section
    assert "P1 outage: &lt;b&gt;db&lt;/b&gt; failover" in section
    assert "prod-high-ticket-approval" in section
    assert "(expired)" in section


def test_the_latest_result_of_each_drill_is_reported(seeded, policy, tmp_path) -> None:
    from autosec.store import events

    conn = seeded
    now = T0 + timedelta(days=2)
    for name, passed, detail in (
        ("approval_expiry", False, "old run"),
        ("approval_expiry", True, "expired and escalated"),
        ("black_swan", False, "containment was applied <b>without</b> approval"),
    ):
        events.emit(
            conn,
            "drill.completed",
            f"drill:{name}",
            {"name": name, "passed": passed, "seconds": 1.5, "budget": 60, "detail": detail},
        )
    conn.commit()
    built = build_reports(conn, LocalBlobStore(tmp_path), policy, now)
    html = _read(next(r for r in built if r.kind == "posture").uri).decode()
    section = html[html.index('<section id="drills">') : html.index("<footer>")]
    assert "Drills (2)" in section
    assert "<td>approval_expiry</td><td>passed</td>" in section and "old run" not in section
    assert "<td>black_swan</td><td>FAILED</td>" in section
    assert "&lt;b&gt;without&lt;/b&gt;" in section


def test_a_known_exploited_weakness_carries_the_bod_22_01_fields(seeded, policy, tmp_path) -> None:
    conn = seeded
    kev_due = (T0 + timedelta(days=14)).date()
    conn.execute(
        "UPDATE findings SET known_exploited = true, kev_due_date = %s "
        "WHERE rule_id = 'nmap.test-cve'",
        (kev_due,),
    )
    conn.commit()
    built = {r.kind: r for r in build_reports(conn, LocalBlobStore(tmp_path), policy, T0)}
    table = list(csv.DictReader(io.StringIO(_read(built["poam"].uri).decode())))
    by_name = {r["Weakness Name"]: r for r in table}
    assert by_name[TITLE]["Binding Operational Directive 22-01 tracking"] == "Yes"
    assert by_name[TITLE]["Binding Operational Directive 22-01 Due Date"] == kev_due.isoformat()
    assert by_name["Weak SSH ciphers"]["Binding Operational Directive 22-01 tracking"] == "No"

"""Compliance packs built from the real store: a FedRAMP pack for March 2026.

The store is seeded row by row (assets, scan runs and their evidence, findings with their
history, the KEV catalog, an exception, a decision with its approval and action) so every
figure the pack shows is known in advance, including what happened after the period, which the
pack must ignore.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import openpyxl
import pytest
from psycopg.types.json import Jsonb

from autosec.config.policy import LoadedPolicy, load_policy
from autosec.reporting.period import Period
from autosec.reporting.pieces import PIECES
from autosec.reporting.xlsx import CLOSED_SHEET, OPEN_SHEET
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.report import assemble_pack, build_compliance_pack

pytestmark = pytest.mark.integration
POLICY_PATH = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"
MARCH = Period.month(2026, 3)
KEV_CVE, OTHER_CVE, FIXED_CVE = "CVE-2021-41773", "CVE-2023-0001", "CVE-2022-2222"
KEV_DUE = date(2021, 11, 17)
APPROVER, REASON = "ciso", "patch window agreed with team-web"


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(POLICY_PATH)


def add_asset(conn, asset_id, kind, first_seen, retired_at=None):
    conn.execute(
        "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, status,"
        " first_seen, last_seen, retired_at) VALUES (%s, %s, %s, 'cmdb', %s, 'production',"
        " 'high', %s, %s, %s, %s)",
        (
            asset_id,
            f"{asset_id}-name",
            kind,
            f"team-{asset_id}",
            "retired" if retired_at else "active",
            first_seen,
            first_seen,
            retired_at,
        ),
    )


def add_run(conn, engine, asset_ids, status, finished_at, evidence=None):
    run_id = conn.execute(
        "INSERT INTO scan_runs (engine, asset_ids, status, started_at, finished_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (engine, asset_ids, status, finished_at, finished_at),
    ).fetchone()[0]
    if evidence:
        conn.execute(
            "INSERT INTO evidence (scan_run_id, sha256, path, size_bytes, media_type)"
            " VALUES (%s, %s, %s, 100, 'text/xml')",
            (run_id, evidence, f"file:///evidence/{run_id}.xml"),
        )
    return run_id


def add_finding(
    conn,
    name,
    asset_id,
    severity,
    first_seen,
    *,
    rule="nmap.test",
    cves=(),
    title=None,
    history=(),
    evidence=None,
    port=443,
):
    """A finding whose status is the last step of ``history`` ((to_status, at, run) after the
    first-seen step); ``name`` makes its fingerprint."""
    steps = [("open", first_seen, None), *history]
    status = steps[-1][0]
    finding_id = conn.execute(
        "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, title,"
        " severity, status, priority, cve_ids, location, evidence_sha256, first_seen, last_seen,"
        " fixed_at, due_date) VALUES (%s, 2, %s, 'nmap', %s, %s, %s, %s, 'scheduled', %s, %s, %s,"
        " %s, %s, %s, %s) RETURNING id",
        (
            sha(name),
            asset_id,
            rule,
            title or f"{name} title",
            severity,
            status,
            list(cves),
            Jsonb({"host": f"{asset_id}.example", "port": port, "protocol": "tcp"}),
            evidence,
            first_seen,
            steps[-1][1],
            steps[-1][1] if status == "fixed" else None,
            date(2026, 12, 31),
        ),
    ).fetchone()[0]
    previous = None
    for to_status, when, run in steps:
        conn.execute(
            "INSERT INTO finding_history (finding_id, from_status, to_status, scan_run_id,"
            " reason, at) VALUES (%s, %s, %s, %s, 'test', %s)",
            (finding_id, previous, to_status, run, when),
        )
        previous = to_status
    return finding_id


@pytest.fixture
def seeded(conn, policy):
    for asset_id, kind in (("web", "web_app"), ("db", "database"), ("host1", "host")):
        add_asset(conn, asset_id, kind, at(1, 1))
    add_asset(conn, "host2", "host", at(1, 1))
    add_asset(conn, "gone", "host", at(1, 1), retired_at=at(2, 10))
    add_asset(conn, "later", "host", at(4, 5))

    feb = add_run(conn, "nmap", ["web"], "succeeded", at(2, 5), evidence=sha("feb web"))
    add_run(conn, "nmap", ["web", "db"], "succeeded", at(3, 5), evidence=sha("march web db"))
    add_run(conn, "nmap", ["host1"], "succeeded", at(3, 6), evidence=sha("march host1"))
    add_run(conn, "nmap", ["host2"], "failed", at(3, 6))
    rescan = add_run(conn, "nmap", ["db"], "succeeded", at(3, 20), evidence=sha("march rescan"))
    add_run(conn, "nmap", ["gone"], "succeeded", at(3, 7))  # retired: outside the inventory

    conn.execute(
        "INSERT INTO intel_kev (cve_id, vendor_project, product, vulnerability_name, date_added,"
        " short_description, required_action, due_date, known_ransomware_campaign_use,"
        " loaded_at) VALUES (%s, 'Apache', 'HTTP Server', 'path traversal', '2021-11-03',"
        " 'path traversal', 'apply updates', %s, 'Known', %s)",
        (KEV_CVE, KEV_DUE, at(1, 2)),
    )
    # One vulnerability on two assets (critical counts as high); KEV makes it due 2021-11-17.
    add_finding(
        conn,
        "kev-web",
        "web",
        "high",
        at(2, 5),
        cves=[KEV_CVE],
        title="Apache path traversal",
        evidence=sha("feb web"),
    )
    add_finding(
        conn,
        "kev-db",
        "db",
        "critical",
        at(3, 5),
        cves=[KEV_CVE.lower()],
        title="Apache path traversal",
        evidence=sha("march web db"),
    )
    # One rule without a CVE on two assets: moderate, 90 days from each detection.
    add_finding(conn, "ssh-host1", "host1", "medium", at(3, 6), rule="nmap.weak-ssh", port=22)
    add_finding(conn, "ssh-web", "web", "medium", at(1, 10), rule="nmap.weak-ssh", port=22)
    # Low, 180 days from September: past due at the end of March.
    add_finding(conn, "old-low", "host1", "low", datetime(2025, 9, 1, tzinfo=UTC), cves=[OTHER_CVE])
    # High, fixed on 20 March by a successful rescan, 30 days from 1 February: late.
    add_finding(
        conn,
        "fixed-late",
        "db",
        "high",
        at(2, 1),
        cves=[FIXED_CVE],
        history=[("fixed", at(3, 20), rescan)],
    )
    # High, fixed on 10 March without a rescan (closed by an imported report): on time.
    add_finding(
        conn,
        "fixed-unconfirmed",
        "web",
        "high",
        at(3, 1),
        rule="nmap.old-admin",
        history=[("fixed", at(3, 10), None)],
    )
    # Fixed before the period: not in the pack.
    add_finding(
        conn,
        "fixed-before",
        "web",
        "medium",
        at(1, 3),
        rule="nmap.gone-before",
        history=[("fixed", at(2, 15), feb)],
    )
    # Open at the end of March, fixed on 2 April: open in the March pack, due 1 April.
    add_finding(
        conn,
        "fixed-after",
        "web",
        "high",
        at(3, 2),
        rule="nmap.fixed-in-april",
        history=[("fixed", at(4, 2), None)],
    )
    add_finding(conn, "banner", "web", "info", at(3, 2), rule="nmap.banner")
    add_finding(conn, "april", "host1", "high", at(4, 2), rule="nmap.april")  # after the period

    # A risk acceptance approved in March, covering one finding.
    exception_id = conn.execute(
        "INSERT INTO finding_exceptions (kind, scope, cve_id, reason, requested_by, requested_at,"
        " expires_at, status, approved_by, approved_at) VALUES ('risk_acceptance', 'cve',"
        " 'CVE-2020-9999', 'compensating WAF rule', 'alice', %s, %s, 'approved', %s, %s)"
        " RETURNING id",
        (at(3, 3), at(6, 30), APPROVER, at(3, 4)),
    ).fetchone()[0]
    accepted = add_finding(
        conn,
        "accepted",
        "db",
        "medium",
        at(3, 2),
        cves=["CVE-2020-9999"],
        history=[("accepted", at(3, 4), None)],
    )
    conn.execute(
        "UPDATE finding_history SET exception_id = %s WHERE finding_id = %s AND"
        " to_status = 'accepted'",
        (exception_id, accepted),
    )

    # A decision under the policy, its approval gate with one decision, and the action.
    finding_id = conn.execute("SELECT id FROM findings WHERE fingerprint = %s", (sha("kev-web"),))
    finding_id = finding_id.fetchone()[0]
    decision = conn.execute(
        "INSERT INTO policy_decisions (finding_id, policy_hash, policy_version, rule_id, action,"
        " mode, inputs, reasons, decided_at) VALUES (%s, %s, %s, 'prod-needs-approval',"
        " 'ticket', 'in_the_loop', '{}', '[]', %s) RETURNING id",
        (finding_id, policy.sha256, policy.version, at(3, 5, 10)),
    ).fetchone()[0]
    approval = conn.execute(
        "INSERT INTO approvals (requester, approvers, quorum, status, summary, rule_id,"
        " policy_hash, created_at, expires_at, decided_at) VALUES ('autosec', %s, 1,"
        " 'approved', 'ticket for Apache path traversal on web', 'prod-needs-approval', %s, %s,"
        " %s, %s) RETURNING id",
        ([APPROVER], policy.sha256, at(3, 5, 10), at(3, 8), at(3, 5, 11)),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO approval_decisions (approval_id, approver, decision, reason, policy_hash,"
        " decided_at) VALUES (%s, %s, 'approve', %s, %s, %s)",
        (approval, APPROVER, REASON, policy.sha256, at(3, 5, 11)),
    )
    conn.execute(
        "INSERT INTO actions (idempotency_key, decision_id, finding_id, action, mode, status,"
        " request, external_ref, approval_id, created_at, updated_at) VALUES (%s, %s, %s,"
        " 'ticket', 'in_the_loop', 'applied', '{}', 'SEC-42', %s, %s, %s)",
        (sha("action"), decision, finding_id, approval, at(3, 5, 10), at(3, 5, 12)),
    )
    conn.commit()
    return conn


def read(uri: str) -> bytes:
    parts = urlsplit(uri)
    assert parts.scheme == "file"
    return Path(unquote(parts.path)).read_bytes()


def test_the_pack_reads_the_period_as_of_its_end(seeded, policy) -> None:
    pack = assemble_pack(seeded, "fedramp", MARCH, policy)

    assert (pack.coverage.assets, pack.coverage.scanned) == (4, 3)
    assert pack.coverage.share == 0.75 and pack.coverage.target_met is False
    assert [a["asset_id"] for a in pack.coverage.unscanned] == ["host2"]
    nmap = next(e for e in pack.coverage.by_engine if e.engine == "nmap")
    assert (nmap.runs_succeeded, nmap.runs_failed) == (4, 1)  # the retired asset's run left out
    assert pack.coverage_map  # from the engines' capabilities (coverage_inputs)

    by_name = {f.fingerprint: f for f in pack.findings}
    assert sha("fixed-before") not in by_name and sha("april") not in by_name
    assert by_name[sha("fixed-after")].status.value == "open"  # fixed only in April
    assert by_name[sha("accepted")].status.value == "accepted"

    kev_db = by_name[sha("kev-db")]  # lower-case CVE id in the finding, KEV listed upper-case
    assert (kev_db.due_date, kev_db.tier, kev_db.known_exploited) == (KEV_DUE, "KEV due date", True)
    assert by_name[sha("ssh-web")].due_date == date(2026, 4, 10)  # 90 days from 10 January
    assert by_name[sha("old-low")].due_date == date(2026, 2, 28)  # 180 days from 1 September
    late = by_name[sha("fixed-late")]
    assert (late.due_date, late.fix_confirmed) == (date(2026, 3, 3), True)
    assert by_name[sha("fixed-unconfirmed")].fix_confirmed is False

    sla = {r.tier: r for r in pack.sla}
    assert (sla["High"].fixed_on_time, sla["High"].fixed_late, sla["High"].open_within) == (1, 1, 1)
    assert sla["KEV due date"].open_overdue == 2
    assert sla["Moderate"].open_within == 2 and sla["Low"].open_overdue == 1
    assert [f.fingerprint for f in pack.fixes.unconfirmed] == [sha("fixed-unconfirmed")]

    [exception] = pack.exceptions
    assert (exception["approved_by"], exception["state_at_end"], exception["findings"]) == (
        APPROVER,
        "approved",
        1,
    )
    assert {e.sha256 for e in pack.evidence} == {
        sha("feb web"),  # before the period, cited by an open finding
        sha("march web db"),
        sha("march host1"),
        sha("march rescan"),
    }


def test_a_fedramp_pack_is_written_hashed_recorded_and_announced(seeded, policy, tmp_path):
    built = build_compliance_pack(
        seeded, LocalBlobStore(tmp_path), policy, "fedramp", MARCH, at(4, 1, 5)
    )

    rows = seeded.execute(
        "SELECT kind, path, sha256, size_bytes, framework, pack_id, period_start, period_end,"
        " policy_hash FROM reports ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == [
        "poam_csv",
        "poam_xlsx",
        "findings_csv",
        "findings_ocsf",
        "findings_sarif",
        "pack_html",
        "pack_pdf",
        "manifest",
    ]
    content = {}
    for kind, path, digest, size, framework, pack_id, start, end, policy_hash in rows:
        data = read(path)
        content[kind] = data
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == size
        assert (framework, pack_id, start, end) == (
            "fedramp",
            built.pack_id,
            MARCH.start,
            MARCH.end,
        )
        assert policy_hash == policy.sha256
        assert "/reports/packs/fedramp/2026-03/" in path
    pack_row = seeded.execute(
        "SELECT framework, manifest_sha256, pieces FROM report_packs WHERE id = %s",
        (built.pack_id,),
    ).fetchone()
    assert pack_row == ("fedramp", built.manifest_sha256, len(PIECES))
    manifest = json.loads(content["manifest"])
    assert {p["name"]: p["sha256"] for p in manifest["pieces"]} == {
        r[0]: r[2] for r in rows if r[0] != "manifest"
    }
    event = seeded.execute(
        "SELECT subject, payload FROM events WHERE name = 'report.ready'"
    ).fetchall()
    assert event == [
        (
            f"report_pack:{built.pack_id}",
            {
                "kind": "compliance_pack",
                "framework": "fedramp",
                "period_start": "2026-03-01",
                "period_end": "2026-03-31",
                "uri": rows[-1][1],
                "sha256": built.manifest_sha256,
                "pieces": len(PIECES),
            },
        )
    ]

    # The POA&M: one item per unique vulnerability, due by tier, the KEV date where earlier.
    items = {
        r["Weakness Name"]: r for r in csv.DictReader(io.StringIO(content["poam_csv"].decode()))
    }
    assert len(items) == 4
    apache = items["Apache path traversal"]
    assert apache["Asset Identifier"].splitlines() == [
        "db-name (db.example:443/tcp)",
        "web-name (web.example:443/tcp)",
    ]
    assert apache["Scheduled Completion Date"] == "2021-11-17"
    assert apache["Binding Operational Directive 22-01 tracking"] == "Yes"
    assert apache["Original Risk Rating"] == "High"
    assert apache["Controls"] == "RA-5, SI-2"
    assert items["ssh-web title"]["Scheduled Completion Date"] == "2026-04-10"
    assert items["old-low title"]["Scheduled Completion Date"] == "2026-02-28"
    assert items["fixed-after title"]["Scheduled Completion Date"] == "2026-04-01"
    assert items["ssh-web title"]["Status Date"] == "2026-03-31"
    assert "banner title" not in items  # informational findings are not POA&M items

    workbook = openpyxl.load_workbook(io.BytesIO(content["poam_xlsx"]), read_only=True)
    open_rows = list(workbook[OPEN_SHEET].iter_rows(values_only=True))
    assert len(open_rows) == 1 + 4
    closed = {r[2]: r for r in list(workbook[CLOSED_SHEET].iter_rows(values_only=True))[1:]}
    assert set(closed) == {"fixed-late title", "fixed-unconfirmed title"}
    findings_csv = list(csv.DictReader(io.StringIO(content["findings_csv"].decode())))
    assert len(findings_csv) == 10
    [apache_row] = [r for r in open_rows[1:] if r[2] == "Apache path traversal"]
    assert {r["POAM ID"] for r in findings_csv if r["Title"] == "Apache path traversal"} == {
        apache_row[0]
    }
    assert workbook.properties.created == datetime(2026, 3, 31, tzinfo=UTC).replace(tzinfo=None)

    ocsf = json.loads(content["findings_ocsf"])
    assert len(ocsf) == 10 and {e["class_uid"] for e in ocsf} == {2002}
    sarif = json.loads(content["findings_sarif"])
    assert sum(len(run["results"]) for run in sarif["runs"]) == 8  # the two fixed ones left out

    html = content["pack_html"].decode()
    assert APPROVER in html and REASON in html and policy.sha256 in html
    assert "compensating WAF rule" in html and "SEC-42" in html
    for digest in (sha("feb web"), sha("march rescan")):
        assert digest in html and digest in content["manifest"].decode()
    assert content["pack_pdf"].startswith(b"%PDF-")


def test_the_same_period_and_data_give_the_same_pack(seeded, policy, tmp_path) -> None:
    blobs = LocalBlobStore(tmp_path)
    first = build_compliance_pack(seeded, blobs, policy, "fedramp", MARCH, at(4, 1, 5))
    # What happens after the period changes nothing in the March pack.
    add_run(seeded, "nmap", ["host2"], "succeeded", at(4, 3), evidence=sha("april host2"))
    add_finding(seeded, "april-2", "host2", "critical", at(4, 3), rule="nmap.april-2")
    seeded.commit()
    again = build_compliance_pack(seeded, blobs, policy, "fedramp", MARCH, at(4, 9, 5))

    assert again.reused and again.pack_id == first.pack_id
    assert again.manifest_sha256 == first.manifest_sha256
    assert [p.sha256 for p in again.pieces] == [p.sha256 for p in first.pieces]
    assert seeded.execute("SELECT count(*) FROM reports").fetchone() == (len(PIECES),)
    assert seeded.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert all(read(p.uri) for p in first.pieces)


def test_a_dry_run_builds_and_hashes_but_writes_and_records_nothing(seeded, policy, tmp_path):
    dry = build_compliance_pack(
        seeded, LocalBlobStore(tmp_path), policy, "fedramp", MARCH, at(4, 1, 5), dry_run=True
    )
    assert dry.dry_run and dry.pack_id is None
    assert all(p.uri is None for p in dry.pieces) and len(dry.pieces) == len(PIECES)
    assert not any(tmp_path.iterdir())
    assert seeded.execute("SELECT count(*) FROM reports").fetchone() == (0,)
    real = build_compliance_pack(
        seeded, LocalBlobStore(tmp_path), policy, "fedramp", MARCH, at(4, 1, 5)
    )
    assert real.manifest_sha256 == dry.manifest_sha256


@pytest.mark.parametrize("framework", ["pci_dss", "soc2", "iso27001"])
def test_every_framework_builds_from_the_same_store(seeded, policy, tmp_path, framework):
    period = Period.quarter(2026, 1) if framework == "pci_dss" else MARCH
    built = build_compliance_pack(
        seeded, LocalBlobStore(tmp_path), policy, framework, period, at(4, 1, 5)
    )
    assert len(built.pieces) == len(PIECES) and not built.reused
    assert seeded.execute(
        "SELECT DISTINCT framework FROM reports WHERE pack_id = %s", (built.pack_id,)
    ).fetchall() == [(framework,)]
    html = read(next(p.uri for p in built.pieces if p.kind == "pack_html")).decode()
    control = {"pci_dss": "11.3.1", "soc2": "CC7.1", "iso27001": "A.8.8"}[framework]
    assert f'data-control="{control}"' in html


def test_a_pci_pack_wants_high_and_critical_fixes_confirmed_by_rescan(seeded, policy) -> None:
    pack = assemble_pack(seeded, "pci_dss", Period.quarter(2026, 1), policy)
    assert [f.fingerprint for f in pack.fixes.confirmed] == [sha("fixed-late")]
    assert [f.fingerprint for f in pack.fixes.unconfirmed] == [sha("fixed-unconfirmed")]
    # 6.3.3: critical and high within one month; medium keeps the policy's due date.
    by_name = {f.fingerprint: f for f in pack.findings}
    assert by_name[sha("ssh-web")].due_date == date(2026, 12, 31)
    assert by_name[sha("ssh-web")].tier == "Medium (patching policy)"

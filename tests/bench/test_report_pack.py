"""A FedRAMP pack over 100,000 open findings, against the plain SQL count it summarises.

The store is seeded by COPY: 5,000 assets, 100,000 open findings spread over 2,000 distinct
vulnerabilities (1,500 CVEs, 200 of them in the KEV catalog, and 500 rules without a CVE), one
history row per finding, scan runs in batches of 25 assets with their raw output. The pack is
March 2026's FedRAMP pack, timed step by step: the evidence queries and the coverage map, the
pure builder, then the PDF and the XLSX (what an assessor opens), then the other files. The
baseline, measured in the same run on the same database, is the query behind the pack's
headline figure: open findings by severity.

Timings are printed, never asserted; the assertions are about what the pack says.
"""

from __future__ import annotations

import hashlib
import io
import json
import resource
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openpyxl

from autosec.config.estate import ScanConfig
from autosec.config.policy import load_policy
from autosec.reporting.packs import build_pack
from autosec.reporting.pdf import render_pack_pdf
from autosec.reporting.period import Period
from autosec.reporting.pieces import render_pack
from autosec.reporting.xlsx import AFFECTED_SHEET, OPEN_SHEET, render_poam_xlsx
from autosec.stages.report import (
    EVIDENCE_QUERIES,
    gather_evidence,
    pack_framework,
    product_version,
)
from autosec.stages.report import coverage_inputs as coverage_map_inputs
from autosec.store import db
from autosec.store.reports import open_findings_by_severity

FINDINGS = 100_000
ASSETS = 5_000
VULNERABILITIES = 2_000
CVES = 1_500
KEV_LISTED = 200
BATCH = 25
PERIOD = Period.month(2026, 3)
KINDS = ("host", "web_app", "database", "service")
SEVERITIES = ("critical", "high", "high", "medium", "medium", "medium", "low", "low", "info")
POLICY = Path(__file__).resolve().parents[2] / "include" / "policies" / "default.yaml"
COUNT_SQL = (
    "SELECT severity, count(*) FROM findings WHERE status IN ('open','reopened') GROUP BY severity"
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _seed(conn) -> None:
    start = PERIOD.start_at
    with conn.cursor() as cur:
        with cur.copy(
            "COPY assets (id, name, kind, source, owner, environment, criticality, status,"
            " first_seen, last_seen) FROM STDIN"
        ) as copy:
            for n in range(ASSETS):
                first = start - timedelta(days=400)
                copy.write_row(
                    (
                        f"asset-{n:05d}",
                        f"asset {n}",
                        KINDS[n % len(KINDS)],
                        "bench",
                        f"team-{n % 40}",
                        "production",
                        "high",
                        "active",
                        first,
                        first,
                    )
                )
        # 95% of the inventory is scanned in March, in batches of 25; the rest is not.
        scanned = int(ASSETS * 0.95)
        with cur.copy(
            "COPY scan_runs (engine, asset_ids, status, started_at, finished_at) FROM STDIN"
        ) as copy:
            for b in range(0, scanned, BATCH):
                when = start + timedelta(hours=b // BATCH)
                ids = [f"asset-{n:05d}" for n in range(b, min(b + BATCH, scanned))]
                copy.write_row(("nmap", ids, "succeeded", when, when + timedelta(minutes=5)))
        conn.execute(
            "INSERT INTO evidence (scan_run_id, sha256, path, size_bytes, media_type) "
            "SELECT id, encode(sha256(id::text::bytea), 'hex'), 'file:///evidence/' || id || "
            "'.xml', 40000, 'text/xml' FROM scan_runs"
        )
        with cur.copy(
            "COPY findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, title,"
            " severity, status, priority, cve_ids, location, evidence_sha256, first_seen,"
            " last_seen, due_date) FROM STDIN"
        ) as copy:
            for i in range(FINDINGS):
                k = (i * 7919) % VULNERABILITIES
                asset = i % ASSETS
                cves = [f"CVE-2024-{10000 + k}"] if k < CVES else []
                first = start - timedelta(days=(i * 37) % 400, hours=i % 24)
                copy.write_row(
                    (
                        _sha(f"finding-{i}"),
                        2,
                        f"asset-{asset:05d}",
                        "nmap",
                        f"nmap.rule-{k}",
                        f"Weakness {k}",
                        SEVERITIES[k % len(SEVERITIES)],
                        "open",
                        "scheduled",
                        cves,
                        json.dumps(
                            {
                                "host": f"10.{asset // 250}.{asset % 250}.1",
                                "port": 443 + k % 50,
                                "protocol": "tcp",
                            }
                        ),
                        _sha(str(1 + min(asset, scanned - 1) // BATCH)),
                        first,
                        start + timedelta(days=20),
                        (first + timedelta(days=30)).date(),
                    )
                )
        conn.execute(
            "INSERT INTO finding_history (finding_id, from_status, to_status, reason, at) "
            "SELECT id, NULL, 'open', 'first seen', first_seen FROM findings"
        )
        with cur.copy(
            "COPY intel_kev (cve_id, vendor_project, product, vulnerability_name, date_added,"
            " short_description, required_action, due_date, known_ransomware_campaign_use,"
            " loaded_at) FROM STDIN"
        ) as copy:
            for k in range(0, CVES, CVES // KEV_LISTED):
                copy.write_row(
                    (
                        f"CVE-2024-{10000 + k}",
                        "vendor",
                        "product",
                        "name",
                        date(2025, 6, 1),
                        "desc",
                        "patch",
                        date(2025, 6, 22),
                        "Unknown",
                        start,
                    )
                )
    conn.execute("ANALYZE")
    conn.commit()


def _rows(sheet) -> int:
    return sum(1 for _ in sheet.iter_rows(values_only=True))


def _timed(label: str, timings: dict[str, float], func, *args, **kwargs):
    started = time.perf_counter()
    result = func(*args, **kwargs)
    timings[label] = time.perf_counter() - started
    return result


def test_a_fedramp_pack_over_100k_open_findings(bench_store_url: str) -> None:
    policy = load_policy(POLICY)
    loaded = pack_framework("fedramp")
    with db.connect(bench_store_url) as conn:
        seeding = time.perf_counter()
        _seed(conn)
        seeding = time.perf_counter() - seeding

        counts: list[float] = []
        for _ in range(3):
            started = time.perf_counter()
            by_severity = dict(conn.execute(COUNT_SQL).fetchall())
            counts.append(time.perf_counter() - started)
        assert sum(by_severity.values()) == FINDINGS
        assert open_findings_by_severity(conn) == by_severity

        timings: dict[str, float] = {}
        evidence = _timed("evidence queries", timings, gather_evidence, conn, PERIOD)
        covered = _timed(
            "coverage map", timings, coverage_map_inputs, conn, ScanConfig(), PERIOD.end_before
        )
        conn.rollback()
    pack = _timed(
        "build (pure)",
        timings,
        build_pack,
        loaded,
        PERIOD,
        policy.version,
        policy.sha256,
        evidence,
        covered["coverage_map"],
    )
    pdf = _timed("PDF", timings, render_pack_pdf, pack)
    xlsx = _timed("XLSX", timings, render_poam_xlsx, pack)
    pieces = _timed("every file (render_pack)", timings, render_pack, pack, product_version())

    open_findings = [f for f in pack.findings if f.is_open]
    assert len(open_findings) == FINDINGS
    assert pack.coverage.share == 0.95
    # one POA&M item per vulnerability; informational ones are not items
    assert len(pack.open_items) == sum(
        SEVERITIES[k % len(SEVERITIES)] != "info" for k in range(VULNERABILITIES)
    )
    assert pdf.startswith(b"%PDF-") and len(pdf) < 1_000_000
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    assert _rows(workbook[OPEN_SHEET]) == 1 + len(pack.open_items)
    assert _rows(workbook[AFFECTED_SHEET]) == 1  # no asset list had to be cut
    findings_csv = next(p for p in pieces if p.name == "findings_csv").content
    assert findings_csv.count(b"\r\n") == 1 + FINDINGS
    again = render_poam_xlsx(pack)
    assert again == xlsx and render_pack_pdf(pack) == pdf  # reproducible at this size too

    pack_seconds = sum(
        timings[k] for k in ("evidence queries", "coverage map", "build (pure)", "PDF", "XLSX")
    )
    count_seconds = min(counts)
    rows = {k: len(v) if v is not None else None for k, v in evidence.items()}
    print()
    print(
        f"report pack benchmark: {FINDINGS:,} open findings on {ASSETS:,} assets, "
        f"{VULNERABILITIES:,} distinct vulnerabilities (seeded by COPY in {seeding:.1f} s)"
    )
    print(f"  evidence rows: {rows}")
    print(
        f"  baseline  SELECT severity, count(*) ... GROUP BY severity: "
        f"{count_seconds * 1000:.1f} ms (best of 3; first {counts[0] * 1000:.1f} ms)"
    )
    for label, seconds in timings.items():
        print(f"  {label:<26} {seconds:8.2f} s")
    print(
        f"  FedRAMP pack (queries + build + PDF + XLSX): {pack_seconds:.2f} s = "
        f"{pack_seconds / count_seconds:,.0f} x the plain count"
    )
    sizes = ", ".join(f"{p.name} {p.size / 1e6:.2f} MB" for p in pieces)
    print(f"  files: {sizes}; PDF {len(pdf) / 1e3:.0f} kB")
    print(
        f"  POA&M: {len(pack.open_items):,} open items; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    assert set(rows) == set(EVIDENCE_QUERIES)
    assert pack.period.end == date(2026, 3, 31) and pack.as_of < datetime.now(UTC).date()

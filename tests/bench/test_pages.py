"""The autosec pages at a million findings: each page's data endpoint against the plain SQL
count it summarises, measured in the same run.

The store is seeded by COPY: 10,000 assets in 50 teams, ``AUTOSEC_BENCH_PAGE_FINDINGS``
findings (default 1,000,000) with 180 days of history (a 'first seen' row each, a 'fixed' row
for those fixed, and a reopen for some), KEV entries, scan runs, blind spots and approvals.
The rollup task then runs once (timed: today's snapshot and 90 days rebuilt from history).

Each endpoint is requested through FastAPI's TestClient with a real Airflow login (a JWT the
auth manager checks) and a new store connection per request, as in the api-server; each
figure is printed beside the same repeats of the SQL it stands for, run on an open
connection. Timings are printed, never asserted; the figures the endpoints return are.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from autosec.airflow.pages_app import create_app
from autosec.config.estate import ScanConfig
from autosec.stages.rollups import refresh
from autosec.store import db
from browser.pages_support import in_process_tokens

SIZE_VARIABLE = "AUTOSEC_BENCH_PAGE_FINDINGS"
DEFAULT_SIZE = 1_000_000
ASSETS = 10_000
TEAMS = 50
REPEATS = 30
WARM_UP = 3
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
SCAN = ScanConfig(engines=["nmap"])
KEV_CVES = [f"CVE-2024-{1000 + i}" for i in range(40)]
SEVERITIES = ("critical", "high", "medium", "low", "info")
SEVERITY_WEIGHTS = (2, 10, 30, 40, 18)
DAYS_BY_SEVERITY = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}


def bench_size() -> int:
    raw = os.environ.get(SIZE_VARIABLE, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{SIZE_VARIABLE}={raw!r} is not a whole number") from None
    if size < 1_000:
        raise pytest.UsageError(f"{SIZE_VARIABLE}={size} is too small: at least 1,000")
    return size


def _copy(conn, table: str, columns: str, rows) -> int:
    count = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def seed(conn, size: int) -> dict[str, float]:
    """The store at ``size`` findings; returns seconds per step."""
    rng = random.Random(20261120)  # noqa: S311 - a reproducible spread, not a secret
    timings: dict[str, float] = {}
    started = time.perf_counter()
    owners = [f"team-{i:02d}" for i in range(TEAMS)]
    asset_owner = {f"asset-{i:05d}": owners[i % TEAMS] for i in range(ASSETS)}
    first_seen_assets = NOW - timedelta(days=200)
    _copy(
        conn,
        "assets",
        "id, name, kind, source, owner, environment, criticality, addresses, first_seen, last_seen",
        (
            (
                asset_id,
                asset_id,
                "host",
                "cmdb",
                owner,
                "development",
                "medium",
                [f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"],
                first_seen_assets,
                first_seen_assets,
            )
            for i, (asset_id, owner) in enumerate(asset_owner.items())
        ),
    )
    for i, cve in enumerate(KEV_CVES):
        conn.execute(
            "INSERT INTO intel_kev (cve_id, vendor_project, product, vulnerability_name, "
            "date_added, short_description, required_action, due_date, "
            "known_ransomware_campaign_use, loaded_at) VALUES (%s, 'Example', 'Server', %s, "
            "%s, 'seeded', 'patch', %s, 'Unknown', now())",
            (cve, cve, TODAY - timedelta(days=60 + i), TODAY + timedelta(days=i - 20)),
        )
    asset_ids = list(asset_owner)
    history: list[tuple] = []

    def finding_rows():
        for n in range(size):
            asset_id = asset_ids[n % ASSETS]
            severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
            first = NOW - timedelta(seconds=rng.randrange(180 * 86400))
            roll = rng.random()
            days = DAYS_BY_SEVERITY[severity]
            due = (first + timedelta(days=days)).date() if days else None
            cves = [rng.choice(KEV_CVES)] if rng.random() < 0.01 else []
            fixed_at = None
            if roll < 0.60:
                status = "open"
                events = [(first, None, "open")]
            elif roll < 0.90:
                status = "fixed"
                fixed_at = first + (NOW - first) * rng.random()
                events = [(first, None, "open"), (fixed_at, "open", "fixed")]
            elif roll < 0.95:
                status = "reopened"
                fixed = first + (NOW - first) * rng.random() / 2
                back = fixed + (NOW - fixed) * rng.random()
                events = [
                    (first, None, "open"),
                    (fixed, "open", "fixed"),
                    (back, "fixed", "reopened"),
                ]
                due = (back + timedelta(days=days)).date() if days else None
            else:
                status = "accepted"
                accepted = first + (NOW - first) * rng.random()
                events = [(first, None, "open"), (accepted, "open", "accepted")]
            for at, before, after in events:
                history.append((n + 1, before, after, "seeded", at))
            owner = None if n % 97 == 3 else asset_owner[asset_id]
            yield (
                hashlib.sha256(f"bench-finding-{n}".encode()).hexdigest(),
                2,
                asset_id,
                "nmap",
                f"rule-{n % 400}",
                f"finding {n} on {asset_id}",
                severity,
                status,
                "scheduled",
                cves,
                f'{{"host": "{asset_id}", "port": {n % 65535}, "protocol": "tcp"}}',
                owner,
                due,
                first,
                events[-1][0],
                fixed_at if status == "fixed" else None,
                bool(cves) and rng.random() < 0.5,
            )

    _copy(
        conn,
        "findings",
        "fingerprint, fingerprint_version, asset_id, engine, rule_id, title, severity, status, "
        "priority, cve_ids, location, owner, due_date, first_seen, last_seen, fixed_at, "
        "known_exploited",
        finding_rows(),
    )
    timings["COPY findings"] = time.perf_counter() - started
    started = time.perf_counter()
    _copy(conn, "finding_history", "finding_id, from_status, to_status, reason, at", history)
    timings[f"COPY history ({len(history):,} rows)"] = time.perf_counter() - started
    started = time.perf_counter()
    for r in range(300):  # a run every ~7 hours over 90 days, 40 assets each
        at = NOW - timedelta(hours=7 * r)
        batch = [asset_ids[(r * 40 + k) % ASSETS] for k in range(40)]
        run = conn.execute(
            "INSERT INTO scan_runs (engine, asset_ids, status, started_at, finished_at) "
            "VALUES ('nmap', %s, 'succeeded', %s, %s) RETURNING id",
            (batch, at, at),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO asset_scan_state (asset_id, engine, last_scan_run_id, last_success_at) "
            "SELECT a, 'nmap', %s, %s FROM unnest(%s::text[]) AS a ON CONFLICT DO NOTHING",
            (run, at, batch),
        )
    for i in range(100):
        conn.execute(
            "INSERT INTO blind_spots (address, port, source, first_seen, last_seen) "
            "VALUES (%s, 0, 'tcp_sweep', %s, %s)",
            (f"10.200.0.{i}", NOW - timedelta(days=i), NOW),
        )
    for i in range(20):
        conn.execute(
            "INSERT INTO approvals (requester, approvers, quorum, status, summary, policy_hash, "
            "created_at, expires_at) VALUES ('autosec', '{secops}', 1, 'pending', 'quarantine', "
            "%s, %s, %s)",
            ("c" * 64, NOW - timedelta(hours=i), NOW + timedelta(days=2)),
        )
    conn.commit()
    conn.execute("ANALYZE")
    timings["scan runs, spots, approvals, ANALYZE"] = time.perf_counter() - started
    return timings


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def measure(call: Callable[[], object]) -> tuple[float, float]:
    for _ in range(WARM_UP):
        call()
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


@pytest.fixture(scope="module")
def store(bench_store_url: str):
    size = bench_size()
    with db.connect(bench_store_url) as conn:
        timings = seed(conn, size)
        started = time.perf_counter()
        outcome = refresh(conn, SCAN, NOW, backfill_days=90)
        timings[f"rollup task (today + {len(outcome.rebuilt_days)} days rebuilt)"] = (
            time.perf_counter() - started
        )
        started = time.perf_counter()
        refresh(conn, SCAN, NOW + timedelta(hours=1), backfill_days=90)
        timings["rollup task again the same day (today only)"] = time.perf_counter() - started
    print(f"\n{size:,} findings seeded; seconds per step:")
    for step, seconds in timings.items():
        print(f"  {step:<55} {seconds:8.2f}")
    return bench_store_url, size


def test_page_endpoints_beside_the_sql_they_summarise(store) -> None:
    url, size = store
    token = in_process_tokens({"bench": "viewer"})["bench"]
    client = TestClient(
        create_app(
            connect=lambda: db.connect(url),
            clock=lambda: NOW,
            scan_config=lambda: SCAN,
            csrf_secret=b"b" * 32,
        )
    )
    client.headers["Authorization"] = f"Bearer {token}"

    def get(path: str) -> Callable[[], dict | str]:
        def call():
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            return response

        return call

    with db.connect(url) as conn:
        active = "status IN ('open', 'reopened')"
        kev = (
            "(known_exploited OR EXISTS (SELECT 1 FROM intel_kev k "
            "WHERE k.cve_id = ANY(findings.cve_ids)))"
        )

        def sql(query: str, *params) -> Callable[[], object]:
            return lambda: conn.execute(query, params).fetchall()

        page_two = get("/api/findings")().json()["next"]
        cases = [
            (
                "/api/posture",
                sql(
                    "SELECT severity, count(*), count(*) FILTER (WHERE due_date < %s) "  # noqa: S608
                    f"FROM findings WHERE {active} GROUP BY severity",
                    TODAY,
                ),
                "open and breached by severity",
            ),
            ("/posture", None, "(HTML, with the SVG charts)"),
            (
                "/metrics",
                sql(
                    f"SELECT owner, severity, count(*) FROM findings WHERE {active} "  # noqa: S608
                    "GROUP BY 1, 2"
                ),
                "open by team and severity",
            ),
            (
                "/api/coverage",
                sql(
                    "SELECT count(*) FROM assets a WHERE NOT EXISTS (SELECT 1 FROM "
                    "asset_scan_state s WHERE s.asset_id = a.id AND s.last_success_at > %s)",
                    NOW - timedelta(days=7),
                ),
                "assets not scanned in 7 days",
            ),
            (
                "/api/findings",
                sql(f"SELECT count(*) FROM findings WHERE {active}"),  # noqa: S608
                "count of open findings",
            ),
            (f"/api/findings?after={page_two}", None, "(the second page)"),
            ("/findings", None, "(HTML)"),
            (
                "/api/findings?team=team-07",
                sql(f"SELECT count(*) FROM findings WHERE owner = 'team-07' AND {active}"),  # noqa: S608
                "count for one team",
            ),
            (
                "/api/findings?severity=critical&status=any",
                sql("SELECT count(*) FROM findings WHERE severity = 'critical'"),
                "count of critical",
            ),
            (
                "/api/findings?kev=yes",
                sql(f"SELECT count(*) FROM findings WHERE {active} AND {kev}"),  # noqa: S608
                "count known exploited",
            ),
            ("/api/reports", sql("SELECT count(*) FROM reports"), "count of reports"),
        ]
        print(
            f"\n{size:,} findings, {REPEATS} requests each after {WARM_UP} warm-up (milliseconds):"
        )
        print(f"  {'endpoint':<46} {'p50':>8} {'p95':>8}   {'SQL p50':>8} {'p95':>8}  SQL")
        for path, query, label in cases:
            p50, p95 = measure(get(path))
            if query is None:
                print(f"  {path:<46} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f}   {'':>8} {'':>8}  {label}")
                continue
            s50, s95 = measure(query)
            print(
                f"  {path:<46} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f}   {s50 * 1e3:8.1f} "
                f"{s95 * 1e3:8.1f}  {label}"
            )
        connect50, _ = measure(lambda: db.connect(url).close())
        print(f"  (a new store connection, made by every request: {connect50 * 1e3:.1f} ms)")

        # What the endpoints said is what the store holds.
        posture = client.get("/api/posture").json()
        open_total = conn.execute(f"SELECT count(*) FROM findings WHERE {active}").fetchone()[0]  # noqa: S608
        assert posture["totals"]["open_total"] == open_total
        findings = client.get("/api/findings?team=team-07").json()
        team_count = conn.execute(
            f"SELECT count(*) FROM findings WHERE owner = 'team-07' AND {active}"  # noqa: S608
        ).fetchone()[0]
        assert findings["matching"] == min(team_count, 10_000)
        assert findings["matching_capped"] == (team_count > 10_000)
        assert len(findings["items"]) == 50

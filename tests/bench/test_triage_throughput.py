"""Triage throughput: observations to stored findings, against a raw COPY upsert of the same rows.

The triage path is the one the triage stage runs: ``triage_observations`` (fingerprint, dedupe,
priority, due date), the batch's data contract (``triage.quality.validate_batch``, Great
Expectations) then ``store.findings.upsert_findings`` (COPY into a staging table, one
upsert, history rows for status changes only). The baseline, measured in the same run on a twin
of the ``findings`` table, COPYs the already-triaged rows into a temp table and runs one
``INSERT ... ON CONFLICT DO UPDATE``: no triage work, no RETURNING, no history. Batches of the
two alternate so both see the same server state.

Pass 1 writes every finding for the first time. Pass 2 is a rescan of the same size: of pass
1's findings 90% are seen again unchanged, 5% seen again in new scanner wording (same identity,
so no status change), 5% gone (absent, but without a covering scan they stay open); 5% are new.

Timings are printed, never asserted; the assertions are about what was written.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from autosec.config.policy import PatchingPolicy
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.store import db, findings, inventory, scans
from autosec.triage.normalise import TriagedFinding, triage_observations
from autosec.triage.quality import validate_batch

BATCH = 50_000
ASSETS = 300
T1 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)

_RAW_COLUMNS = findings._STAGE_COLUMNS  # the raw table mirrors the staging columns
_RAW_STAGE_DDL = (
    "CREATE TEMP TABLE raw_stage (fingerprint char(64) PRIMARY KEY, "
    "fingerprint_version smallint, asset_id text, engine text, rule_id text, title text, "
    "description text, severity text, priority text, cvss_vector text, cvss_score numeric, "
    "cve_ids text[], cwe text, location jsonb, evidence_sha256 char(64), owner text, "
    "due_date date) ON COMMIT DELETE ROWS"
)
# Column names are module constants, never input.
_RAW_UPSERT = (
    f"INSERT INTO raw_findings ({', '.join(_RAW_COLUMNS)}, status, first_seen, last_seen, "  # noqa: S608
    f"last_scan_run_id) SELECT {', '.join(_RAW_COLUMNS)}, 'open', %(now)s, %(now)s, %(run)s "
    "FROM raw_stage ON CONFLICT (fingerprint) DO UPDATE SET last_seen = EXCLUDED.last_seen, "
    "last_scan_run_id = EXCLUDED.last_scan_run_id, title = EXCLUDED.title, "
    "description = EXCLUDED.description"
)


# --- the estate and its observations --------------------------------------------------------------


def _assets() -> list[Asset]:
    kinds = list(AssetKind)
    environments = list(Environment)
    criticalities = list(Criticality)
    return [
        Asset(
            id=f"asset-{n:04d}",
            name=f"asset {n}",
            kind=kinds[n % len(kinds)],
            source="bench",
            owner=f"team-{n % 17}",
            environment=environments[n % len(environments)],
            criticality=criticalities[(n // 4) % len(criticalities)],
            addresses=(f"10.{n // 250}.{n % 250}.10",),
            tags=("internet-facing",) if n % 11 == 0 else (),
        )
        for n in range(ASSETS)
    ]


def _severity(i: int) -> Severity:
    bucket = (i * 7919) % 100
    if bucket < 2:
        return Severity.CRITICAL
    if bucket < 12:
        return Severity.HIGH
    if bucket < 40:
        return Severity.MEDIUM
    if bucket < 75:
        return Severity.LOW
    return Severity.INFO


def observation(i: int) -> Observation:
    """Observation number ``i``: the same ``i`` always has the same identity and content.

    A mix of what the engines report: ports (40%), URLs (25%), source lines (20%) and
    packages (15%), spread over every asset.
    """
    a, j = i % ASSETS, i // ASSETS
    asset_id = f"asset-{a:04d}"
    host = f"10.{a // 250}.{a % 250}.10"
    severity = _severity(i)
    kind = j % 20
    if kind < 8:
        return Observation(
            asset_id,
            "nmap",
            f"nmap.service-{j // 60000}",
            f"open port {1 + j % 60000}/tcp",
            severity,
            Location(host=host, port=1 + j % 60000, protocol="tcp"),
            description="A service answers on this port; check it is meant to be reachable.",
        )
    if kind < 13:
        return Observation(
            asset_id,
            "zap",
            f"zap.{10000 + j % 97}",
            "Missing security header",
            severity,
            Location(url=f"https://{asset_id}.example.test/app/page-{j}?session={i}"),
            description="The response lacks a header that limits what a browser may do with it.",
            cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N",
            cvss_score=4.3,
            cwe="CWE-693",
        )
    if kind < 17:
        return Observation(
            asset_id,
            "semgrep",
            f"python.lang.security.rule-{j % 41}",
            "Untrusted input reaches a sensitive call",
            severity,
            Location(file=f"./src/module_{j % 997}.py", line=j),
            description="Data from a request flows into a call that should only see trusted data.",
            cwe="CWE-78",
        )
    return Observation(
        asset_id,
        "osv",
        f"GHSA-{j % 9973:04d}-bench",
        f"Vulnerable dependency package-{j}",
        severity,
        Location(purl=f"pkg:pypi/package-{j}@1.{i % 10}.0"),
        description="A dependency has a published advisory with a fixed version.",
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        cvss_score=9.8,
        cve_ids=(f"CVE-2026-{10000 + j % 50000}",),
    )


def reworded(i: int) -> Observation:
    """Observation ``i`` as a newer engine words it: same identity, so the same finding."""
    o = observation(i)
    return dataclasses.replace(
        o, title=f"{o.title} (engine 2)", description=f"{o.description} Reworded upstream."
    )


def batches(indices: Sequence[int], rewording: range) -> Iterator[list[Observation]]:
    for start in range(0, len(indices), BATCH):
        yield [
            reworded(i) if i in rewording else observation(i)
            for i in indices[start : start + BATCH]
        ]


# --- the two paths --------------------------------------------------------------------------------


@dataclass
class PassResult:
    name: str
    rows: int = 0
    triage_s: float = 0.0
    validate_s: float = 0.0
    upsert_s: float = 0.0
    raw_s: float = 0.0
    new: int = 0
    reopened: int = 0
    seen_again: int = 0
    new_ids: list[int] = field(default_factory=list)

    @property
    def triage_path_rate(self) -> float:
        return self.rows / (self.triage_s + self.validate_s + self.upsert_s)

    @property
    def raw_rate(self) -> float:
        return self.rows / self.raw_s


def _raw_rows(triaged: Sequence[TriagedFinding]) -> list[tuple]:
    """The rows ``upsert_findings`` would write, computed before the baseline's clock starts."""
    rows = []
    for f in triaged:
        o = f.observation
        rows.append(
            (
                f.fingerprint,
                f.fingerprint_version,
                o.asset_id,
                o.engine,
                o.rule_id,
                o.title,
                o.description,
                o.severity.value,
                f.priority,
                o.cvss_vector,
                o.cvss_score,
                list(o.cve_ids),
                o.cwe,
                json.dumps(o.location.as_dict(), sort_keys=True),
                None,
                f.owner,
                f.due_date,
            )
        )
    return rows


def _raw_upsert(
    conn: psycopg.Connection, rows: Sequence[tuple], run_id: int, now: datetime
) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY raw_stage ({', '.join(_RAW_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    conn.execute(_RAW_UPSERT, {"now": now, "run": run_id})
    conn.commit()


def _create_raw_twin(conn: psycopg.Connection) -> None:
    """``raw_findings``: the findings table's columns, checks, indexes, storage and keys."""
    conn.execute("CREATE TABLE raw_findings (LIKE findings INCLUDING ALL)")
    conn.execute("CREATE SEQUENCE raw_findings_id_seq OWNED BY raw_findings.id")
    conn.execute(
        "ALTER TABLE raw_findings ALTER COLUMN id SET DEFAULT nextval('raw_findings_id_seq')"
    )
    options = conn.execute(
        "SELECT reloptions FROM pg_class WHERE oid = 'findings'::regclass"
    ).fetchone()[0]
    if options:
        conn.execute(
            sql.SQL("ALTER TABLE raw_findings SET ({})").format(
                sql.SQL(", ").join(sql.SQL(o) for o in options)
            )
        )
    for (definition,) in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'findings'::regclass AND contype = 'f'"
    ).fetchall():
        conn.execute(sql.SQL("ALTER TABLE raw_findings ADD {}").format(sql.SQL(definition)))
    conn.commit()


def _run_pass(
    name: str,
    indices: Sequence[int],
    store: psycopg.Connection,
    raw: psycopg.Connection,
    assets: dict[str, Asset],
    days: dict[str, int | None],
    run_id: int,
    now: datetime,
    rewording: range = range(0),
) -> PassResult:
    result = PassResult(name)
    for number, batch in enumerate(batches(indices, rewording)):
        raw_rows = _raw_rows(triage_observations(batch, assets, days, now))
        result.rows += len(batch)

        def triage_path(batch: list[Observation] = batch) -> None:
            t0 = time.perf_counter()
            triaged = triage_observations(batch, assets, days, now)
            t1 = time.perf_counter()
            assert validate_batch(triaged, days).passed
            t2 = time.perf_counter()
            counts = findings.upsert_findings(store, triaged, run_id, now)
            store.commit()
            t3 = time.perf_counter()
            result.triage_s += t1 - t0
            result.validate_s += t2 - t1
            result.upsert_s += t3 - t2
            result.new += counts.new
            result.reopened += counts.reopened
            result.seen_again += counts.seen_again
            result.new_ids.extend(counts.new_ids)

        def raw_path(rows: list[tuple] = raw_rows) -> None:
            t0 = time.perf_counter()
            _raw_upsert(raw, rows, run_id, now)
            result.raw_s += time.perf_counter() - t0

        # Alternate which goes first, so neither always meets a freshly checkpointed server.
        for step in (triage_path, raw_path) if number % 2 == 0 else (raw_path, triage_path):
            step()
    return result


def _settle(url: str) -> None:
    """Between passes: statistics fresh and dirty pages flushed, as a quiet server would be."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE findings, raw_findings, finding_history")
        conn.execute("CHECKPOINT")


def _count(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> int:
    return int(conn.execute(query, params).fetchone()[0])


def _report(result: PassResult) -> None:
    print(
        f"{result.name}: {result.rows:,} findings\n"
        f"  triage path   {result.triage_path_rate:>9,.0f} findings/s"
        f"  (triage_observations {result.triage_s:.2f} s,"
        f" validate_batch {result.validate_s:.2f} s,"
        f" upsert_findings {result.upsert_s:.2f} s)\n"
        f"  raw COPY upsert {result.raw_rate:>7,.0f} findings/s  ({result.raw_s:.2f} s)\n"
        f"  ratio triage/raw {result.triage_path_rate / result.raw_rate:.2f}"
    )


# --- the benchmark --------------------------------------------------------------------------------


def test_triage_throughput_against_raw_copy_upsert(
    bench_store_url: str, bench_findings: int
) -> None:
    size = bench_findings
    gone = new = changed = size * 5 // 100
    unchanged = size - gone - changed
    rewording = range(unchanged, unchanged + changed)
    days = PatchingPolicy().days_by_severity()

    with db.connect(bench_store_url) as store, db.connect(bench_store_url) as raw:
        sync = inventory.start_sync(store, "bench", "file")
        inventory.apply_source_snapshot(store, sync, "bench", _assets(), T1)
        store.commit()
        assets = {a.id: a for a in inventory.load_assets(store)}
        assert len(assets) == ASSETS
        _create_raw_twin(store)
        raw.execute(_RAW_STAGE_DDL)
        raw.commit()
        asset_ids = sorted(assets)
        run1 = scans.start_scan_run(store, "bench", asset_ids, {}, None, T1)
        run2 = scans.start_scan_run(store, "bench", asset_ids, {}, None, T2)

        versions = store.execute("SHOW server_version").fetchone()[0]
        print(
            f"\ntriage throughput: {size:,} findings, batches of {BATCH:,}, {ASSETS} assets"
            f" (PostgreSQL {versions}, psycopg {psycopg.__version__})"
        )

        # Pass 1: everything is new.
        first = _run_pass("pass 1 (all new)", range(size), store, raw, assets, days, run1, T1)
        _report(first)
        assert (first.new, first.reopened, first.seen_again) == (size, 0, 0)
        assert _count(store, "SELECT count(*) FROM findings") == size
        assert _count(store, "SELECT count(*) FROM raw_findings") == size
        assert _count(store, "SELECT count(*) FROM finding_history") == size
        _settle(bench_store_url)

        # Pass 2: pass 1's first `unchanged` as they were, the next `changed` reworded, the rest
        # of pass 1 gone; `new` never seen before.
        indices = list(range(unchanged + changed)) + list(range(size, size + new))
        random.Random(2026).shuffle(indices)  # noqa: S311 - only spreads the new ones
        history_before = _count(store, "SELECT count(*) FROM finding_history")
        second = _run_pass(
            "pass 2 (90% unchanged, 5% reworded, 5% gone, 5% new)",
            indices,
            store,
            raw,
            assets,
            days,
            run2,
            T2,
            rewording,
        )
        history_rows = _count(store, "SELECT count(*) FROM finding_history") - history_before
        still_open_gone = _count(
            store,
            "SELECT count(*) FROM findings WHERE last_scan_run_id = %s AND status = 'open'",
            (run1,),
        )
        _report(second)
        print(
            f"  history rows written {history_rows:,}"
            f" (status changes: {second.new:,} new, {second.reopened:,} reopened);"
            f" gone and still open {still_open_gone:,}"
        )

        assert (second.new, second.reopened, second.seen_again) == (
            new,
            0,
            unchanged + changed,
        )
        assert history_rows == second.new + second.reopened == new
        assert (
            _count(
                store,
                "SELECT count(*) FROM finding_history WHERE scan_run_id = %s"
                " AND from_status IS NULL AND to_status = 'open' AND finding_id = ANY(%s)",
                (run2, second.new_ids),
            )
            == new
        )
        assert still_open_gone == gone
        assert store.execute(
            "SELECT status, count(*) FROM findings GROUP BY status"
        ).fetchall() == [("open", size + new)]
        assert (
            _count(store, "SELECT count(*) FROM findings WHERE last_scan_run_id = %s", (run2,))
            == unchanged + changed + new
        )
        assert (
            _count(store, "SELECT count(*) FROM findings WHERE title LIKE %s", ("% (engine 2)",))
            == changed
        )
        assert _count(store, "SELECT count(*) FROM raw_findings") == size + new
        # Both paths hold exactly the same findings.
        assert (
            _count(
                store,
                "SELECT count(*) FROM findings f FULL JOIN raw_findings r USING (fingerprint) "
                "WHERE f.id IS NULL OR r.id IS NULL OR f.last_scan_run_id <> r.last_scan_run_id"
                " OR f.title <> r.title",
            )
            == 0
        )

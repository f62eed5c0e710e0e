"""Scan planning at scale: plan and fan out 10,000 assets for every registered engine.

The planner path is ``stages.scan.plan_batches`` (load the inventory, one schedule-state query
per engine, the adaptive cadence per asset, accepts() and the invasive gate, batching under
the mapped-task ceiling). The baseline, measured in the same run, is the plain SQL the plan
cannot do without: ``SELECT id FROM assets WHERE status = 'active'`` once per engine.

Half the assets were scanned recently (not due), a quarter long ago (due), a quarter never.
Timings are printed, never asserted; the number of mapped tasks is asserted to stay under
``max_map_length`` because that is a correctness limit, not a timing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg

from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.engines.registry import ENGINES
from autosec.stages.scan import MAX_BATCHES_PER_ENGINE, plan_batches
from autosec.store import db, inventory, scans

ASSETS = 10_000
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
KINDS = (AssetKind.HOST, AssetKind.WEB_APP, AssetKind.SERVICE, AssetKind.REPOSITORY)


def _asset(i: int) -> Asset:
    kind = KINDS[i % len(KINDS)]
    if kind is AssetKind.WEB_APP:
        address = f"https://app{i}.example.com"
    elif kind is AssetKind.REPOSITORY:
        address = f"/srv/repos/repo{i}"
    else:
        address = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    return Asset(
        f"asset-{i:05d}",
        f"asset-{i:05d}",
        kind,
        "cmdb",
        f"team-{i % 17}",
        (Environment.PRODUCTION, Environment.STAGING)[i % 2],
        Criticality.MEDIUM,
        (address,),
        ("internet-facing",) if i % 10 == 0 else (),
    )


def _seed(conn: psycopg.Connection) -> None:
    run = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, run, "cmdb", [_asset(i) for i in range(ASSETS)], NOW)
    conn.commit()
    for engine in ENGINES:
        recent = [f"asset-{i:05d}" for i in range(ASSETS // 2)]
        stale = [f"asset-{i:05d}" for i in range(ASSETS // 2, ASSETS * 3 // 4)]
        for ids, at in ((recent, NOW - timedelta(hours=6)), (stale, NOW - timedelta(days=60))):
            run_id = scans.start_scan_run(conn, engine, ids, {}, [engine], at)
            scans.finish_scan_run(conn, run_id, "succeeded", at)


def test_plan_and_fan_out_ten_thousand_assets(bench_store_url: str) -> None:
    config = ScanConfig(engines=list(ENGINES), batch_size=25)
    with db.connect(bench_store_url) as conn:
        _seed(conn)
        conn.execute("ANALYZE")
        plan_batches(conn, config, [], NOW)  # warm caches and engine imports once

        start = time.perf_counter()
        batches = plan_batches(conn, config, [], NOW)
        planning = time.perf_counter() - start

        start = time.perf_counter()
        for _ in ENGINES:
            conn.execute("SELECT id FROM assets WHERE status = 'active'").fetchall()
        baseline = time.perf_counter() - start

    per_engine: dict[str, tuple[int, int]] = {}
    for batch in batches:
        count, assets = per_engine.get(batch.engine, (0, 0))
        per_engine[batch.engine] = (count + 1, assets + len(batch.asset_ids))
    print()
    print(f"planning {ASSETS} assets x {len(ENGINES)} engines: {planning * 1000:.0f} ms")
    print(f"baseline (SELECT active ids once per engine): {baseline * 1000:.1f} ms")
    print(f"ratio planning / baseline: {planning / baseline:.1f}x")
    for engine, (count, assets) in sorted(per_engine.items()):
        print(f"  {engine}: {count} mapped tasks for {assets} assets")
    print(f"mapped tasks in all: {len(batches)}")
    assert all(count <= MAX_BATCHES_PER_ENGINE for count, _ in per_engine.values())
    assert per_engine, "nothing was planned"

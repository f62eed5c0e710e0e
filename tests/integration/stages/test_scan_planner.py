"""The planner on the real store: adaptive cadence, invasive engines only where allowed, and
never more mapped batches than dynamic task mapping takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.engines.registry import get_engine
from autosec.stages.scan import MAX_BATCHES_PER_ENGINE, plan_batches
from autosec.store import inventory, scans

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def asset(asset_id: str, address: str, env=Environment.STAGING, crit=Criticality.MEDIUM, tags=()):
    return Asset(
        asset_id, asset_id, AssetKind.HOST, "cmdb", "team-ops", env, crit, (address,), tags
    )


def sync(conn, assets: list[Asset], at: datetime) -> None:
    run = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, run, "cmdb", assets, at)
    conn.commit()


def scanned(conn, asset_ids: list[str], at: datetime, engine: str = "nmap") -> None:
    run = scans.start_scan_run(conn, engine, asset_ids, {}, [engine], at)
    scans.finish_scan_run(conn, run, "succeeded", at)


def planned(batches) -> list[str]:
    return sorted(a for b in batches for a in b.asset_ids)


def test_quiet_assets_wait_longer_critical_and_exposed_ones_less(conn) -> None:
    assets = [
        asset("quiet", "127.0.0.31"),
        asset("quiet-with-open", "127.0.0.32"),
        asset("prod", "127.0.0.33", env=Environment.PRODUCTION),
        asset("exposed", "127.0.0.34", tags=("internet-facing",)),
    ]
    sync(conn, assets, T0)  # every asset's last change is T0
    now = T0 + timedelta(days=200)
    scanned(conn, ["quiet", "quiet-with-open", "prod", "exposed"], now - timedelta(days=10))
    conn.execute(
        "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, title,"
        " severity, status, priority, location, first_seen, last_seen) VALUES "
        "(repeat('a', 64), 1, 'quiet-with-open', 'nmap', 'r', 't', 'high', 'open', 'act', '{}',"
        " %s, %s)",
        (now, now),
    )
    conn.commit()
    config = ScanConfig(batch_size=10)

    # ten days since the last scan: the quiet asset (28-day cadence) is not due, the one with
    # an open finding keeps the 7-day cadence, production 3 days x4 quiet = 12: not due.
    assert planned(plan_batches(conn, config, [], now)) == ["exposed", "quiet-with-open"]
    later = now + timedelta(days=5)  # 15 days since the scan: production's 12 days are over
    assert planned(plan_batches(conn, config, [], later)) == ["exposed", "prod", "quiet-with-open"]
    much_later = now + timedelta(days=19)  # 29 days: everything is due
    assert planned(plan_batches(conn, config, [], much_later)) == [
        a.id for a in sorted(assets, key=lambda a: a.id)
    ]


def test_a_changed_asset_is_planned_at_once_whatever_its_cadence(conn) -> None:
    sync(conn, [asset("web", "127.0.0.41"), asset("db", "127.0.0.42")], T0)
    scanned(conn, ["web", "db"], T0)
    assert planned(plan_batches(conn, ScanConfig(), ["db"], T0 + timedelta(hours=1))) == ["db"]


def test_invasive_engines_run_only_where_the_configuration_allows(conn, monkeypatch) -> None:
    sync(
        conn,
        [
            asset("staging", "127.0.0.51"),
            asset("prod", "127.0.0.52", env=Environment.PRODUCTION),
            asset(
                "prod-ok",
                "127.0.0.53",
                env=Environment.PRODUCTION,
                tags=("invasive-scans-allowed",),
            ),
        ],
        T0,
    )
    engine = get_engine("nmap")
    monkeypatch.setattr(type(engine), "invasive", True)
    config = ScanConfig()
    assert planned(plan_batches(conn, config, [], T0)) == ["prod-ok", "staging"]
    everywhere = ScanConfig(invasive_environments=list(Environment))
    assert planned(plan_batches(conn, everywhere, [], T0)) == ["prod", "prod-ok", "staging"]
    monkeypatch.setattr(type(engine), "invasive", False)
    assert planned(plan_batches(conn, config, [], T0)) == ["prod", "prod-ok", "staging"]


def test_many_assets_never_exceed_the_mapped_task_ceiling(conn) -> None:
    count = MAX_BATCHES_PER_ENGINE * 2 + 7
    sync(conn, [asset(f"h{i:05d}", f"10.1.{i // 250}.{i % 250 + 1}") for i in range(count)], T0)
    batches = plan_batches(conn, ScanConfig(batch_size=1), [], T0)
    assert len(batches) <= MAX_BATCHES_PER_ENGINE
    assert len(planned(batches)) == count

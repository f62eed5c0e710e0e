"""Quarantined rows reported to the source's owner, the daily inventory quality figures, and
one snapshot of a source at a time (real PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from autosec.config.estate import InventorySourceConfig
from autosec.config.policy import load_policy
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.reporting.posture import posture_context
from autosec.stages.inventory_sync import QUARANTINE_EVENT_ROWS, record_quality, sync_source
from autosec.stages.report import gather
from autosec.store import db, discovery, inventory
from autosec.store import inventory_quality as quality

pytestmark = pytest.mark.integration
HEADER = "id,name,kind,addresses,owner,environment,criticality,tags\n"
T0 = datetime(2026, 11, 2, 6, tzinfo=UTC)
POLICY_PATH = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"


def _source(path: Path, name: str = "cmdb", **settings) -> InventorySourceConfig:
    return InventorySourceConfig(name=name, kind="file", path=path, **settings)


def _sync(conn, path: Path, rows: list[str], now: datetime, name: str = "cmdb", **settings):
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return sync_source(conn, _source(path, name, **settings), str(path), now)


def _events(conn, name: str) -> list[tuple[str, dict]]:
    return conn.execute(
        "SELECT subject, payload FROM events WHERE name = %s ORDER BY id", (name,)
    ).fetchall()


def test_quarantined_rows_go_to_the_source_owner_with_their_reasons(conn, tmp_path) -> None:
    path = tmp_path / "inv.csv"
    rows = [
        "web,web,web_app,10.0.0.1,team-web,production,high,",
        "db,db,database,a;rm -rf /,team-data,production,high,",
        "new,new,host,10.0.0.9,team-x,nowhere,high,",
    ]
    outcome = _sync(conn, path, rows, T0, owner="team-inventory")
    assert outcome.status == "partial"
    ((subject, payload),) = _events(conn, "inventory.quarantined")
    assert subject == "inventory_source:cmdb"
    assert payload["owner"] == "team-inventory" and payload["source"] == "cmdb"
    assert payload["sync_run_id"] == outcome.sync_run_id and payload["rows_total"] == 2
    assert [r["position"] for r in payload["rows"]] == [f"{path}:3", f"{path}:4"]
    assert [r["asset_id"] for r in payload["rows"]] == ["db", "new"]
    assert "a;rm -rf /" in payload["rows"][0]["reason"]
    assert "environment" in payload["rows"][1]["reason"]
    assert "team-inventory" in payload["summary"] and "2 row(s)" in payload["summary"]

    # A clean sync reports nothing; a source without an owner still reports, and says so.
    _sync(conn, path, rows[:1], T0 + timedelta(hours=1), owner="team-inventory")
    assert len(_events(conn, "inventory.quarantined")) == 1
    _sync(conn, tmp_path / "b.csv", ["x,x,host,,,production,low,"], T0, name="other")
    (_, _), (_, unowned) = _events(conn, "inventory.quarantined")
    assert unowned["owner"] is None and "owner not configured" in unowned["summary"]


def test_a_long_quarantine_lists_a_bounded_number_of_rows(conn, tmp_path) -> None:
    rows = [f"h{i},h{i},host,10.0.1.{i % 250},team-a,nowhere,low," for i in range(60)]
    _sync(conn, tmp_path / "inv.csv", rows, T0, owner="team-a")
    ((_, payload),) = _events(conn, "inventory.quarantined")
    assert payload["rows_total"] == 60 and len(payload["rows"]) == QUARANTINE_EVENT_ROWS


def test_quality_figures_count_owners_environments_and_stale_assets(conn, tmp_path) -> None:
    # A sync's finish is the database's clock, so this test's clock is the wall clock.
    start = datetime.now(UTC)
    fresh = [
        "web,web,web_app,10.0.0.1,team-web,production,high,",
        "db,db,database,10.0.0.2,unknown,production,high,",
        "ci,ci,host,10.0.0.3,N/A,development,low,",
        "gw,gw,host,10.0.0.4,team-net,production,high,",
    ]
    cmdb = _source(tmp_path / "a.csv", "cmdb", schedule="@hourly")  # stale after 1 day
    assets = _source(tmp_path / "b.csv", "assets", schedule="@daily")  # stale after 2 days
    never = _source(tmp_path / "c.csv", "never-synced")
    _sync(conn, tmp_path / "a.csv", fresh, start, "cmdb")
    mail = ["mail,mail,host,10.0.2.1,team-mail,staging,low,"]
    _sync(conn, tmp_path / "b.csv", mail, start, "assets")

    # Almost two days later: cmdb is past its window, the assets source (2 days) within it.
    later = start + timedelta(days=2) - timedelta(minutes=5)
    figures = {f["source"]: f for f in record_quality(conn, [cmdb, assets, never], later)}
    assert figures["cmdb"] | {"last_success_at": None} == {
        "source": "cmdb",
        "active": 4,
        "with_owner": 2,  # "unknown" and "N/A" name nobody
        "with_environment": 4,
        "stale": 4,
        "quarantined": 0,
        "last_success_at": None,
        "stale_after_days": 1,
    }
    assert figures["assets"]["stale"] == 0 and figures["assets"]["stale_after_days"] == 2
    assert figures["never-synced"]["active"] == 0
    assert figures["never-synced"]["last_success_at"] is None

    # A failed sync confirms nothing; a good one confirms what it listed.
    broken = tmp_path / "a.csv"
    broken.write_text("")
    with pytest.raises(Exception, match=r"a\.csv"):
        sync_source(conn, cmdb, str(broken), later)
    assert quality.current_quality(conn, later, {"cmdb": 1})[1]["stale"] == 4
    good = _sync(conn, tmp_path / "a.csv", fresh, later, "cmdb")
    conn.execute("UPDATE sync_runs SET finished_at = %s WHERE id = %s", (later, good.sync_run_id))
    assert quality.current_quality(conn, later, {"cmdb": 1})[1]["stale"] == 0

    # Recorded once per day: a second snapshot that day rewrites the row.
    record_quality(conn, [cmdb, assets, never], later)
    rows = conn.execute(
        "SELECT day, source, stale FROM inventory_quality_daily ORDER BY source"
    ).fetchall()
    assert rows == [
        (later.date(), "assets", 0),
        (later.date(), "cmdb", 0),
        (later.date(), "never-synced", 0),
    ]


def test_assets_a_good_sync_did_not_confirm_are_stale(conn, tmp_path) -> None:
    rows = [
        "web,web,web_app,10.0.0.1,team-web,production,high,",
        "db,db,database,10.0.0.2,team-data,production,high,",
        "gw,gw,host,10.0.0.4,team-net,production,high,",
    ]
    path = tmp_path / "a.csv"
    start = datetime.now(UTC)
    _sync(conn, path, rows, start)
    # db's row is quarantined (kept as it was), gw is missing while an unidentifiable row stops
    # the sweep: neither is confirmed by this sync, though the source synced.
    outcome = _sync(
        conn,
        path,
        [rows[0], "db,db,database,$(id),team-data,production,high,", ",,host,10.0.0.8,t,x,low,"],
        start,
    )
    assert outcome.counts["kept"] == 1 and outcome.counts["unlisted"] == 1
    assert outcome.counts["retired"] == 0
    (figures,) = quality.current_quality(conn, start + timedelta(hours=2), {"cmdb": 1})
    assert (figures["active"], figures["stale"], figures["quarantined"]) == (3, 2, 2)


def test_the_report_shows_the_latest_figures_and_the_completeness_trend(conn, tmp_path) -> None:
    cmdb = _source(tmp_path / "a.csv", "cmdb", schedule="@hourly")
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    _sync(conn, tmp_path / "a.csv", ["web,web,web_app,10.0.0.1,unknown,production,high,"], now)
    for day in (yesterday, now):
        record_quality(conn, [cmdb], day)
        discovery.snapshot_completeness(conn, day.date())
    conn.commit()
    data = gather(conn, load_policy(POLICY_PATH), now)
    assert [(q["source"], q["stale"], q["with_owner"]) for q in data.inventory_quality] == [
        ("cmdb", 0, 0)
    ]
    context = posture_context(data)
    assert context["inventory_quality"]["day"] == now.date().isoformat()
    assert context["inventory_quality"]["overall"]["with_owner"] == "0.0%"
    assert [(r["day"], r["completeness"]) for r in context["inventory_trend"]["rows"]] == [
        (yesterday.date().isoformat(), "100.0%"),
        (now.date().isoformat(), "100.0%"),
    ]
    assert len(context["inventory_trend"]["sparkline"]["dots"]) == 2


def _asset(asset_id: str) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.HOST,
        "cmdb",
        "team-a",
        Environment.PRODUCTION,
        Criticality.LOW,
        ("10.0.0.1",),
    )


def test_two_syncs_of_one_source_apply_one_after_the_other(conn, store_url) -> None:
    """The source's own DAG and the all-sources DAG may sync it at once: the second snapshot
    waits for the first and sees its rows, instead of failing on the same new ids."""
    snapshot = [_asset(f"a{i}") for i in range(50)]
    first_run = inventory.start_sync(conn, "cmdb", "file")
    second: dict = {}

    with db.connect(store_url) as other:
        second_run = inventory.start_sync(other, "cmdb", "file")
        conn.execute("BEGIN")
        first = inventory.apply_source_snapshot(conn, first_run, "cmdb", snapshot, T0)

        def apply_second() -> None:
            try:
                second["changes"] = inventory.apply_source_snapshot(
                    other, second_run, "cmdb", snapshot, T0
                )
                other.commit()
            except psycopg.Error as exc:  # reported below, on the test's thread
                second["error"] = exc

        worker = threading.Thread(target=apply_second)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "the second snapshot must wait for the first"
        conn.commit()
        worker.join(timeout=30)
    assert "error" not in second, second.get("error")
    assert len(first.new) == 50
    assert second["changes"].new == [] and second["changes"].unchanged == 50

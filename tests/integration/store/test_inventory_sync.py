"""Mark-and-sweep per source, change history, and quarantine of malformed rows (real store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.config.estate import InventorySourceConfig
from autosec.inventory.file import SourceError
from autosec.stages.inventory_sync import sync_source
from autosec.store import inventory

pytestmark = pytest.mark.integration
HEADER = "id,name,kind,addresses,owner,environment,criticality,tags\n"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _write(path, rows: list[str]) -> str:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return str(path)


def _source(name: str, path) -> InventorySourceConfig:
    return InventorySourceConfig(name=name, kind="file", path=path)


def test_sync_sweeps_only_its_own_source_and_keeps_history(conn, tmp_path) -> None:
    a = _write(
        tmp_path / "a.csv",
        [
            "web,web,web_app,10.0.0.1,team-web,production,high,internet-facing",
            "db,db,database,10.0.0.2,team-data,production,business_critical,",
        ],
    )
    b = _write(tmp_path / "b.csv", ["runner,runner,host,10.0.1.1,team-ci,development,low,"])
    first = sync_source(conn, _source("cmdb-a", a), a, T0)
    sync_source(conn, _source("cmdb-b", b), b, T0)
    assert first.status == "succeeded" and sorted(first.changed_asset_ids) == ["db", "web"]

    # Source A drops db and changes web's owner; source B's runner must not be retired.
    a = _write(
        tmp_path / "a.csv",
        [
            "web,web,web_app,10.0.0.1,team-platform,production,high,internet-facing",
        ],
    )
    second = sync_source(conn, _source("cmdb-a", a), a, T0 + timedelta(hours=1))
    assert second.counts["retired"] == 1 and second.changed_asset_ids == ["web"]
    status = dict(conn.execute("SELECT id, status FROM assets").fetchall())
    assert status == {"web": "active", "db": "retired", "runner": "active"}
    changes = conn.execute("SELECT asset_id, change FROM asset_changes ORDER BY id").fetchall()
    assert ("web", "owner_changed") in changes and ("db", "retired") in changes
    owner_change = conn.execute(
        "SELECT before->>'owner', after->>'owner' FROM asset_changes WHERE change = 'owner_changed'"
    ).fetchone()
    assert owner_change == ("team-web", "team-platform")


def test_a_failed_source_retires_nothing(conn, tmp_path) -> None:
    a = _write(tmp_path / "a.csv", ["web,web,web_app,10.0.0.1,team-web,production,high,"])
    sync_source(conn, _source("cmdb-a", a), a, T0)
    broken = tmp_path / "a.csv"
    broken.write_text("")
    with pytest.raises(SourceError):
        sync_source(conn, _source("cmdb-a", broken), str(broken), T0 + timedelta(hours=1))
    assert conn.execute("SELECT status FROM assets WHERE id = 'web'").fetchone() == ("active",)
    runs = conn.execute("SELECT status, error FROM sync_runs ORDER BY id").fetchall()
    assert runs[-1][0] == "failed" and "a.csv" in runs[-1][1]


def test_malformed_and_hostile_rows_are_quarantined_and_do_not_retire(conn, tmp_path) -> None:
    path = _write(
        tmp_path / "inv.csv",
        [
            "web,web,web_app,10.0.0.1,team-web,production,high,",
            "db,db,database,10.0.0.2,team-data,production,high,",
        ],
    )
    sync_source(conn, _source("file", path), path, T0)
    path = _write(
        tmp_path / "inv.csv",
        [
            "web,web,web_app,10.0.0.1,team-web,production,high,",
            "db,db,database,a;rm -rf /,team-data,production,high,",
            "evil,evil,host,$(id),team-x,production,high,",
            "opt,opt,host,--script=x,team-x,production,high,",
            "new,new,host,10.0.0.9,team-x,nowhere,high,",
        ],
    )
    outcome = sync_source(conn, _source("file", path), path, T0 + timedelta(hours=1))
    assert outcome.status == "partial"
    assert outcome.counts["quarantined"] == 4 and outcome.counts["retired"] == 0
    assert conn.execute("SELECT status FROM assets WHERE id = 'db'").fetchone() == ("active",)
    assert conn.execute("SELECT addresses FROM assets WHERE id = 'db'").fetchone() == (
        ["10.0.0.2"],
    )
    rejected = conn.execute(
        "SELECT location, reason FROM input_rejections WHERE stage = 'inventory' ORDER BY id"
    ).fetchall()
    assert [loc.rsplit(":", 1)[1] for loc, _ in rejected] == ["3", "4", "5", "6"]
    assert all("inv.csv" in loc for loc, _ in rejected)
    assert "a;rm -rf /" in rejected[0][1] and "environment" in rejected[3][1]
    assert not inventory.load_assets(conn, ["evil", "opt", "new"])

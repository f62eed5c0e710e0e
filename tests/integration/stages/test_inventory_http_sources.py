"""A Backstage catalog synced through the inventory stage: assets, warnings, quarantine, and a
failing catalog that retires nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from autosec.demo.backstage import BackstageCatalogServer, Fault
from autosec.inventory.backstage import BackstageEndpoint, BackstageSourceConfig
from autosec.inventory.file import SourceError
from autosec.stages.inventory_sync import sync_source

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
TOKEN = "catalog-token"


@pytest.fixture
def catalog(corpus):
    folder = corpus / "backstage"
    if not folder.is_dir():
        pytest.skip("Backstage corpus not found")
    with BackstageCatalogServer(folder, token=TOKEN) as server:
        yield server


def _sync(conn, server, now, page_size=3):
    source = BackstageSourceConfig(name="backstage", kind="backstage", page_size=page_size)
    with requests.Session() as session:
        return sync_source(
            conn,
            source,
            None,
            now,
            endpoint=BackstageEndpoint(server.url, TOKEN),
            session=session,
        )


def test_the_catalog_syncs_with_warnings_and_quarantine(conn, catalog) -> None:
    outcome = _sync(conn, catalog, T0)
    assert outcome.status == "partial"  # the corpus has an invalid entity
    assets = dict(conn.execute("SELECT id, owner FROM assets WHERE source = 'backstage'"))
    assert assets["component:default/backstage-showcase"] == "group:default/janus-authors"
    assert outcome.counts["accepted"] == len(assets) and outcome.counts["warnings"] > 0
    rows = conn.execute(
        "SELECT stage, reason FROM input_rejections WHERE source = 'backstage'"
    ).fetchall()
    stages = {stage for stage, _ in rows}
    assert stages == {"inventory", "inventory_warning"}
    assert any("owner" in reason for stage, reason in rows if stage == "inventory_warning")

    again = _sync(conn, catalog, T0 + timedelta(hours=1), page_size=50)
    assert again.changed_asset_ids == [] and again.counts["retired"] == 0


def test_a_catalog_failing_mid_paging_retires_nothing(conn, catalog) -> None:
    _sync(conn, catalog, T0)
    before = conn.execute("SELECT count(*) FROM assets WHERE status = 'active'").fetchone()[0]
    catalog.faults.add(Fault(after=1, status=500))
    with pytest.raises(SourceError, match="backstage"):
        _sync(conn, catalog, T0 + timedelta(hours=1))
    after = conn.execute("SELECT count(*) FROM assets WHERE status = 'active'").fetchone()[0]
    assert after == before > 0
    assert conn.execute("SELECT status FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone() == (
        "failed",
    )

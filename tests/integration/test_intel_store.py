"""Intelligence in the real store: bulk loads, idempotent reloads, lookups, feed state, updates."""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autosec.intel.config import IntelConfig
from autosec.intel.epss import EpssReader, EpssScore
from autosec.intel.kev import parse_kev_json
from autosec.intel.matching import component_from_purl, match_components
from autosec.intel.osv import iter_osv, parse_osv_record
from autosec.stages import intel as stage
from autosec.store import db, events
from autosec.store import intel as store
from support.http import RecordingServer, serving
from tests_support import REPO_ROOT

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, tzinfo=UTC)
DEMO_INTEL = REPO_ROOT / "include" / "autosec" / "demo" / "intel"
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def record(advisory_id: str, modified: str, fixed: str = "2.0", **extra) -> dict:
    return {
        "id": advisory_id,
        "modified": modified,
        "aliases": ["CVE-2099-0001"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Lib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
        **extra,
    }


def advisories(*records: dict):
    return [parse_osv_record(r, r["id"]) for r in records]


def kev_catalog(*cves: str, released: str = "2025-08-25T17:04:19Z") -> bytes:
    entries = [
        {
            "cveID": cve,
            "vendorProject": "Vendor",
            "product": "Product",
            "vulnerabilityName": f"{cve} flaw",
            "dateAdded": "2025-08-01",
            "shortDescription": "A flaw.",
            "requiredAction": "Apply updates.",
            "dueDate": "2025-08-22",
            "knownRansomwareCampaignUse": "Unknown",
            "notes": "",
            "cwes": ["CWE-79"],
        }
        for cve in cves
    ]
    return json.dumps(
        {"catalogVersion": released[:10].replace("-", "."), "dateReleased": released,
         "count": len(entries), "vulnerabilities": entries}
    ).encode()  # fmt: skip


# --- advisories -----------------------------------------------------------------------------


def test_advisories_load_once_and_reload_idempotently(conn, corpus: Path) -> None:
    started = time.monotonic()
    first = store.load_advisories(conn, iter_osv(corpus / "osv"), "osv:corpus", NOW)
    conn.commit()
    elapsed = time.monotonic() - started
    assert (first.total, first.new, first.updated) == (202, 202, 0)
    again = store.load_advisories(conn, iter_osv(corpus / "osv"), "osv:corpus", NOW)
    conn.commit()
    assert (again.total, again.new, again.updated, again.unchanged) == (202, 0, 0, 202)
    rows = conn.execute("SELECT count(*) FROM intel_affected_packages").fetchone()[0]
    assert rows == sum(len(a.affected) for a in iter_osv(corpus / "osv"))
    assert store.advisory_count(conn) == 194  # 8 withdrawn are kept but not counted
    assert store.advisory_count(conn, include_withdrawn=True) == 202
    assert elapsed < 30, f"loading 202 advisories took {elapsed:.1f}s"


def test_lookups_find_advisories_by_normalised_package(conn, corpus: Path) -> None:
    store.load_advisories(conn, iter_osv(corpus / "osv"), "osv:corpus", NOW)
    conn.commit()
    found = store.advisories_for(conn, [("Maven", "org.apache.logging.log4j:log4j-core")])
    assert [a.id for a in found] == ["GHSA-jfh8-c2jp-5v3q"]
    assert len(found[0].affected) == 3
    requests_ids = [a.id for a in store.advisories_for(conn, [("PyPI", "requests")])]
    assert {"GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"} <= set(requests_ids)
    ansible = {a.id for a in store.advisories_for(conn, [("PyPI", "ansible")])}
    assert "PYSEC-2020-221" not in ansible  # withdrawn
    assert store.advisories_for(conn, []) == []
    matches = match_components(
        [component_from_purl("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1")],
        lambda keys: store.advisories_for(conn, keys),
    )
    assert [(m.advisory_ids, m.fixed_versions) for m in matches] == [
        (("GHSA-jfh8-c2jp-5v3q",), ("2.15.0",))
    ]


def test_a_changed_record_replaces_its_packages_and_an_older_one_does_not(conn) -> None:
    store.load_advisories(conn, advisories(record("GHSA-1", "2024-01-01T00:00:00Z")), "osv:a", NOW)
    newer = record("GHSA-1", "2024-06-01T00:00:00Z", fixed="3.0")
    newer["affected"][0]["package"]["name"] = "other-lib"
    counts = store.load_advisories(conn, advisories(newer), "osv:a", NOW)
    assert (counts.new, counts.updated) == (0, 1)
    assert conn.execute(
        "SELECT ecosystem_key, name_key FROM intel_affected_packages WHERE advisory_id = 'GHSA-1'"
    ).fetchall() == [("PyPI", "other-lib")]
    older = store.load_advisories(
        conn, advisories(record("GHSA-1", "2023-01-01T00:00:00Z")), "osv:a", NOW
    )
    assert (older.new, older.updated) == (0, 0)
    (kept,) = store.advisories_for(conn, [("PyPI", "other-lib")])
    assert kept.modified == datetime(2024, 6, 1, tzinfo=UTC)
    assert store.advisories_for(conn, [("PyPI", "demo-lib")]) == []


def test_a_bad_record_loads_nothing(conn, tmp_path: Path) -> None:
    folder = tmp_path / "osv"
    folder.mkdir()
    (folder / "A.json").write_text(json.dumps(record("A-1", "2024-01-01T00:00:00Z")))
    (folder / "B.json").write_text('{"id": "B-1"}')
    outcome = stage.load_osv_feed(conn, "bad", folder, NOW)
    assert outcome.status == "failed"
    assert "B.json" in (outcome.error or "") and "modified: missing" in (outcome.error or "")
    assert store.advisory_count(conn, include_withdrawn=True) == 0
    state = store.feed_state(conn, "osv:bad")
    assert state is not None and state.loaded_at is None and state.last_error == outcome.error


# --- KEV and EPSS ---------------------------------------------------------------------------


def test_kev_loads_reloads_and_drops_what_the_catalog_no_longer_lists(conn, corpus: Path) -> None:
    from autosec.intel.kev import read_kev

    catalog = read_kev(
        corpus / "kev" / "cisagov__kev-data" / "known_exploited_vulnerabilities.json"
    )
    assert store.load_kev(conn, catalog, NOW).as_dict() == {
        "total": 1404, "new": 1404, "updated": 0, "unchanged": 1404 - 1404, "removed": 0,
    }  # fmt: skip
    assert store.load_kev(conn, catalog, NOW).as_dict()["unchanged"] == 1404
    log4shell = store.kev_for(conn, ["cve-2021-44228", "CVE-1999-0001"])
    assert list(log4shell) == ["CVE-2021-44228"]
    assert log4shell["CVE-2021-44228"].due_date == date(2021, 12, 24)
    smaller = parse_kev_json(kev_catalog("CVE-2021-44228"), "kev.json")
    counts = store.load_kev(conn, smaller, NOW)
    assert (counts.updated, counts.removed) == (1, 1403)
    assert store.kev_count(conn) == 1


def test_epss_bulk_upsert_never_rolls_scores_back(conn, corpus: Path) -> None:
    path = corpus / "epss" / "lodestonesecurity__epss-data-history"
    for name in (
        "epss_scores-current.head100.csv",
        "epss_scores-current.slice-CVE-2022-41000_41158.csv",
    ):
        with EpssReader(path / name) as reader:
            store.load_epss(conn, reader, reader.score_date.date(), reader.model_version)
    assert store.epss_count(conn) == 237
    assert store.epss_for(conn, ["CVE-2022-41040"]) == {
        "CVE-2022-41040": EpssScore("CVE-2022-41040", 0.99956, 0.99974)
    }
    older = store.load_epss(
        conn, [EpssScore("CVE-2022-41040", 0.1, 0.1)], date(2020, 1, 1), "v2020"
    )
    assert (older.total, older.new, older.updated) == (1, 0, 0)
    assert store.epss_for(conn, ["CVE-2022-41040"])["CVE-2022-41040"].epss == 0.99956
    newer = store.load_epss(
        conn, [EpssScore("CVE-2022-41040", 0.5, 0.6)], date(2027, 1, 1), "v2027"
    )
    assert newer.updated == 1
    assert store.epss_for(conn, ["CVE-2022-41040"])["CVE-2022-41040"].epss == 0.5


# --- feed updates through the stage ---------------------------------------------------------


def test_the_demo_snapshots_load_and_a_second_run_is_unchanged(conn) -> None:
    config = IntelConfig()
    resolve = lambda p: DEMO_INTEL.parent / p  # noqa: E731 - relative to the demo estate
    (osv,) = stage.update_osv_feeds(conn, config, resolve, NOW)
    kev = stage.update_kev_feed(conn, config, resolve, NOW)
    epss = stage.update_epss_feed(conn, config, resolve, NOW)
    assert [(o.feed, o.status) for o in (osv, kev, epss)] == [
        ("osv:local", "loaded"), ("kev", "loaded"), ("epss", "loaded"),
    ]  # fmt: skip
    assert osv.counts["total"] == 1 and kev.counts["total"] == 1
    assert kev.warning == (
        "kev feed is 1361 days old (its data is from 2021-12-10; the limit is 7 days)"
    )
    again = stage.update_kev_feed(conn, config, resolve, NOW)
    assert (again.status, again.counts) == ("unchanged", {"total": 1})
    assert again.warning == kev.warning  # still printed in the task log on every run
    stale = [e["subject"] for e in events.undelivered(conn, ["intel.feed_stale"])]
    assert stale.count("feed:kev") == 1 and "feed:osv:local" in stale  # but announced once
    stage.update_kev_feed(conn, config, resolve, NOW + timedelta(days=1, minutes=1))
    stale = [e["subject"] for e in events.undelivered(conn, ["intel.feed_stale"])]
    assert stale.count("feed:kev") == 2  # and again the next day


def test_an_older_kev_catalog_is_refused(conn, tmp_path: Path) -> None:
    newer = tmp_path / "new.json"
    newer.write_bytes(kev_catalog("CVE-2020-0001", "CVE-2020-0002"))
    older = tmp_path / "old.json"
    older.write_bytes(kev_catalog("CVE-2020-0001", released="2025-01-24T15:00:57Z"))
    empty = tmp_path / "empty.json"
    empty.write_bytes(kev_catalog())
    assert "lists no entries" in (stage.load_kev_feed(conn, empty, NOW).error or "")
    assert stage.load_kev_feed(conn, newer, NOW).status == "loaded"
    refused = stage.load_kev_feed(conn, older, NOW)
    assert refused.status == "refused_older"
    assert refused.error == (
        "refused: the snapshot is from 2025-01-24, older than the loaded one (2025-08-25)"
    )
    assert store.kev_count(conn) == 2
    state = store.feed_state(conn, "kev")
    assert (state.version, state.record_count, state.last_error) == (
        "2025.08.25", 2, refused.error,
    )  # fmt: skip


def test_a_download_replaces_the_snapshot_and_a_failed_one_keeps_it(conn, tmp_path: Path) -> None:
    answers = [
        (200, kev_catalog("CVE-2020-0001").decode()),
        (503, "down for maintenance"),
        (200, '{"vulnerabilities": [{"cveID": "CVE-2020-0001"}]}'),
    ]
    server = RecordingServer(lambda method, path, query, body: answers.pop(0))
    with serving(server), requests.Session() as session:
        config = IntelConfig(kev={"path": "kev.json", "url": f"{server.url}/kev.json"})
        resolve = lambda p: tmp_path / p  # noqa: E731
        first = stage.update_kev_feed(conn, config, resolve, NOW, session)
        assert (first.status, first.downloaded, first.counts["new"]) == ("loaded", True, 1)
        snapshot = (tmp_path / "kev.json").read_bytes()
        later = datetime(2025, 9, 20, tzinfo=UTC)
        second = stage.update_kev_feed(conn, config, resolve, later, session)
        third = stage.update_kev_feed(conn, config, resolve, later, session)
    assert (third.status, third.downloaded) == ("failed", True)
    assert third.error == (
        f"{server.url}/kev.json: vulnerabilities[0] (CVE-2020-0001): vendorProject is missing "
        "or empty"
    )
    assert second.status == "failed" and not second.downloaded
    assert second.error.startswith(f"download of {server.url}/kev.json failed: HTTPError: 503")
    assert second.warning == (
        "kev feed is 25 days old (its data is from 2025-08-25; the limit is 7 days)"
    )
    assert (tmp_path / "kev.json").read_bytes() == snapshot
    assert [p.name for p in tmp_path.iterdir()] == ["kev.json"]  # nothing half-written left
    assert store.kev_count(conn) == 1
    state = store.feed_state(conn, "kev")
    assert state.loaded_at == NOW and state.source == f"{server.url}/kev.json"
    assert state.last_error == third.error


def test_an_oversized_download_is_refused_and_cleaned_up(tmp_path: Path) -> None:
    server = RecordingServer(lambda *_: (200, "x" * 5000))
    with serving(server), requests.Session() as session, pytest.raises(ValueError, match="limit"):
        stage.download(session, f"{server.url}/big", tmp_path / "big.json", 5, 1000)
    assert list(tmp_path.iterdir()) == []


def test_matching_refuses_to_run_with_no_advisories_loaded(conn) -> None:
    with pytest.raises(stage.IntelUnavailable, match="no advisories are loaded"):
        stage.advisory_lookup(conn)
    store.load_advisories(conn, advisories(record("GHSA-1", "2024-01-01T00:00:00Z")), "x", NOW)
    lookup = stage.advisory_lookup(conn)
    assert [a.id for a in lookup([("PyPI", "demo-lib")])] == ["GHSA-1"]


def test_the_migration_goes_down_and_up_again(postgres_available) -> None:
    name = f"autosec_intel_mig_{os.getpid()}_{secrets.token_hex(3)}"
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    db.create_database(ADMIN_URL, name)
    try:
        db.upgrade(url, "0005")
        tables = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'intel\\_%'"
        with db.connect(url) as check:
            assert check.execute(tables).fetchone()[0] == 5
        db.downgrade(url, "0004")
        with db.connect(url) as check:
            assert check.execute(tables).fetchone()[0] == 0
            assert db.current_revision(check) == "0004"
        db.upgrade(url, "0005")
        with db.connect(url) as check:
            assert check.execute(tables).fetchone()[0] == 5
    finally:
        db.drop_database(ADMIN_URL, name)

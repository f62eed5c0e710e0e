"""Names seen by the TLS and HTTP engines become blind spots when no asset carries them (real
PostgreSQL, observations parsed from recorded sslyze and probe output)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autosec.discovery.assignment import rules_from_config
from autosec.discovery.scan_names import ScanNamesConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.engines.http.parser import parse_probe_output
from autosec.engines.tls.parser import parse_sslyze_json
from autosec.stages.discovery import run_scan_names
from autosec.store import discovery, inventory, scans

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "unit" / "engines" / "fixtures"
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
ZONES = ["example.test"]
CONFIG = ScanNamesConfig(lookback_days=30)


def _asset(asset_id: str, *addresses: str) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.WEB_APP,
        "cmdb",
        "team-shop",
        Environment.PRODUCTION,
        Criticality.HIGH,
        addresses,
    )


def _inventory(conn, *assets: Asset) -> None:
    run = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, run, "cmdb", list(assets), NOW - timedelta(days=60))
    inventory.finish_sync(conn, run, "succeeded", {})


def _scan(conn, engine: str, observations, finished: datetime, status: str = "succeeded") -> int:
    run = scans.start_scan_run(conn, engine, ["shop"], {}, [], finished - timedelta(minutes=1))
    scans.add_observations(conn, run, observations)
    scans.finish_scan_run(conn, run, status, finished)
    return run


def _tls(fixture: str = "mismatch"):
    raw = (FIXTURES / f"sslyze_{fixture}.json").read_bytes()
    return parse_sslyze_json(raw, {"127.0.0.1": "shop"}, require_complete=True)


def _http():
    raw = (FIXTURES / "http_probe_weak_https.jsonl").read_bytes()
    return parse_probe_output(raw, {"127.0.0.1": "shop"})


def _open(conn) -> dict[str, dict]:
    return {
        row["address"]: row
        for row in discovery.list_blind_spots(conn, open_only=True)
        if row["source"] == "scan_names"
    }


def test_in_zone_names_of_certificates_become_blind_spots_with_evidence(conn) -> None:
    _inventory(conn, _asset("shop", "127.0.0.1"))
    tls_run = _scan(conn, "tls", _tls(), NOW - timedelta(days=1))
    http_run = _scan(conn, "http", _http(), NOW - timedelta(hours=2))
    rules = rules_from_config([{"id": "shop-zone", "owner": "team-shop", "zone": "example.test"}])

    outcome = run_scan_names(conn, CONFIG, ZONES, NOW, assignment_rules=rules)

    spots = _open(conn)
    assert set(spots) == {"other.example.test"}  # localhost: not ours; *.wild: no host
    spot = spots["other.example.test"]
    assert (spot["port"], spot["lifecycle"], spot["owner"]) == (0, "assigned", "team-shop")
    evidence = spot["evidence"]
    assert evidence["asset_ids"] == ["shop"] and evidence["scan_run_ids"] == [tls_run]
    assert evidence["seen_by"][0]["where"] == "127.0.0.1:35969"
    assert evidence["seen_by"][0]["rule_id"] == "tls.names-seen"
    assert evidence["zone"] == "example.test"
    counts = outcome.counts()
    assert (counts["new"], counts["out_of_zone"], counts["wildcards"]) == (1, 1, 1)
    assert counts["addresses"] == 1 and counts["scan_runs"] == 2 and http_run > tls_run
    found = conn.execute(
        "SELECT subject, payload->>'zone' FROM events WHERE name = 'blind_spot.found'"
    ).fetchall()
    assert found == [("other.example.test:0", "example.test")]


def test_failed_and_old_runs_say_nothing_and_hostile_names_are_set_aside(conn) -> None:
    _inventory(conn, _asset("shop", "127.0.0.1"))
    _scan(conn, "tls", _tls(), NOW - timedelta(hours=1), status="failed")
    _scan(conn, "tls", _tls(), NOW - timedelta(days=31))
    (names_seen,) = [o for o in _tls("self_signed") if o.rule_id == "tls.names-seen"]
    hostile = replace(
        names_seen,
        evidence={**names_seen.evidence, "names_seen": ["$(id).example.test", "ok.example.test"]},
    )
    _scan(conn, "tls", [hostile], NOW - timedelta(hours=3))

    outcome = run_scan_names(conn, CONFIG, ZONES, NOW)

    assert set(_open(conn)) == {"ok.example.test"}
    assert outcome.rejected == 1
    ((location, value, reason),) = conn.execute(
        "SELECT location, value, reason FROM input_rejections WHERE source = 'scan_names'"
    ).fetchall()
    assert value == "$(id).example.test" and "shell characters" in reason
    assert location.startswith("scan_run:") and "shop tls.names-seen" in location


def test_a_name_once_inventoried_is_resolved_but_not_without_a_scan(conn) -> None:
    shop = _asset("shop", "127.0.0.1")
    _inventory(conn, shop)
    _scan(conn, "tls", _tls(), NOW - timedelta(days=1))
    run_scan_names(conn, CONFIG, ZONES, NOW)
    assert set(_open(conn)) == {"other.example.test"}

    # Thirty days later no TLS or HTTP scan ran: no evidence the name is gone, nothing resolved.
    later = NOW + timedelta(days=30)
    quiet = run_scan_names(conn, CONFIG, ZONES, later)
    assert quiet.resolved == 0 and set(_open(conn)) == {"other.example.test"}
    assert any("nothing resolved" in note for note in quiet.notes)

    # The asset now carries the name and a new scan saw it again: the blind spot is resolved.
    _inventory(conn, replace(shop, addresses=("127.0.0.1", "other.example.test")))
    _scan(conn, "tls", _tls(), later - timedelta(hours=1))
    outcome = run_scan_names(conn, CONFIG, ZONES, later)
    assert outcome.resolved == 1 and _open(conn) == {}
    assert outcome.counts()["explained"] == 1


def test_without_zones_nothing_is_recorded_and_the_operator_is_told(conn) -> None:
    _inventory(conn, _asset("shop", "127.0.0.1"))
    _scan(conn, "tls", _tls(), NOW - timedelta(days=1))
    outcome = run_scan_names(conn, CONFIG, [], NOW)
    assert _open(conn) == {} and outcome.counts()["out_of_zone"] == 1
    assert any("no DNS zone" in note for note in outcome.notes)
    disabled = run_scan_names(conn, ScanNamesConfig(enabled=False), ZONES, NOW)
    assert disabled.counts()["seen"] == 0 and _open(conn) == {}

"""Names seen by scans (TLS certificate names, HTTP redirect targets): reading and matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.config.estate import DiscoveryConfig
from autosec.discovery import registry
from autosec.discovery.scan_names import (
    EVIDENCE_MAX_SIGHTINGS,
    HTTP_REDIRECT,
    TLS_NAMES_SEEN,
    ScanNamesConfig,
    get,
    match,
    transform,
)
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.engines.http.parser import parse_probe_output
from autosec.engines.tls.parser import parse_sslyze_json

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[1] / "engines" / "fixtures"
ZONES = ["example.test"]


def _asset(asset_id: str, *addresses: str, name: str | None = None) -> Asset:
    return Asset(
        asset_id,
        name or asset_id,
        AssetKind.WEB_APP,
        "cmdb",
        "team-web",
        Environment.PRODUCTION,
        Criticality.HIGH,
        addresses,
    )


def _row(name, asset_id="shop", rule=TLS_NAMES_SEEN, run=7, at=NOW, location=None, times=1):
    return {
        "name": name,
        "asset_id": asset_id,
        "rule_id": rule,
        "engine": "tls" if rule == TLS_NAMES_SEEN else "http",
        "scan_run_id": run,
        "finished_at": at,
        "location": location or {"host": "10.0.0.5", "port": 443, "protocol": "tcp"},
        "times": times,
    }


def _rows_from_real_parser_output() -> list[dict]:
    """Store-shaped rows from the engines' own parsers on recorded sslyze and probe output."""
    hosts = {"127.0.0.1": "shop"}
    observations = parse_sslyze_json(
        (FIXTURES / "sslyze_mismatch.json").read_bytes(), hosts, require_complete=True
    ) + parse_probe_output((FIXTURES / "http_probe_weak_https.jsonl").read_bytes(), hosts)
    return [
        _row(name, o.asset_id, o.rule_id, location=o.location.as_dict())
        for o in observations
        if o.rule_id in (TLS_NAMES_SEEN, HTTP_REDIRECT)
        for name in o.evidence["names_seen"]
    ]


def test_names_from_certificates_and_redirects_become_sightings() -> None:
    observed = get(_rows_from_real_parser_output())
    assert {(s.name, s.rule_id) for s in observed.sightings} == {
        ("other.example.test", TLS_NAMES_SEEN),
        ("localhost", HTTP_REDIRECT),
    }
    assert observed.wildcards == 1  # *.wild.example.test names no host
    assert observed.addresses == 2  # same-host redirects to 127.0.0.1 (/old, /loop)
    tls = next(s for s in observed.sightings if s.rule_id == TLS_NAMES_SEEN)
    assert tls.where == "127.0.0.1:35969" and tls.asset_id == "shop"
    http = next(s for s in observed.sightings if s.rule_id == HTTP_REDIRECT)
    assert http.where == "https://127.0.0.1:43515/away"


def test_hostile_names_are_skipped_and_reported_never_kept() -> None:
    hostile = [_row("$(id).example.test"), _row("a;rm -rf /"), _row(42), _row("--script=x")]
    observed = get([*hostile, _row("ok.example.test")])
    assert [s.name for s in observed.sightings] == ["ok.example.test"]
    reasons = [reason for _, _, reason in observed.rejections()]
    assert len(reasons) == 4 and all(r.startswith("name seen by a scan: ") for r in reasons)
    assert observed.rejections()[0][0] == "scan_run:7 shop tls.names-seen"


def test_an_in_zone_name_no_asset_carries_is_a_blind_spot_with_its_evidence() -> None:
    rows = [
        _row("Admin.Example.Test.", "shop", TLS_NAMES_SEEN, run=7, at=NOW - timedelta(days=2)),
        _row("admin.example.test", "blog", HTTP_REDIRECT, run=9, at=NOW, location={"url": "https://blog/x"}),
        _row("cdn.thirdparty.net", "shop"),
    ]  # fmt: skip
    result = match(get(rows), [_asset("shop", "10.0.0.5")], ZONES, now=NOW)
    (spot,) = result.blind_spots
    assert (spot.address, spot.port, spot.source, spot.seen_at) == (
        "admin.example.test",
        0,
        "scan_names",
        NOW,
    )
    evidence = spot.evidence
    assert evidence["zone"] == "example.test" and evidence["names"] == ["admin.example.test"]
    assert evidence["asset_ids"] == ["blog", "shop"] and evidence["scan_run_ids"] == [7, 9]
    assert evidence["rules"] == [HTTP_REDIRECT, TLS_NAMES_SEEN]
    assert [s["scan_run_id"] for s in evidence["seen_by"]] == [9, 7]  # newest first
    assert evidence["seen_by"][0]["where"] == "https://blog/x"
    assert evidence["method"] == "HTTP redirect targets, TLS certificate names"
    assert result.out_of_zone == ["cdn.thirdparty.net"]


def test_names_an_asset_carries_are_explained() -> None:
    rows = [_row("www.example.test"), _row("api.example.test"), _row("shop.example.test")]
    assets = [
        _asset("a", "https://www.example.test/login"),
        _asset("b", "api.example.test"),
        _asset("c", "10.0.0.9", name="Shop.Example.Test"),
    ]
    result = match(get(rows), assets, ZONES, now=NOW)
    assert result.blind_spots == []
    assert result.explained == ["api.example.test", "shop.example.test", "www.example.test"]


def test_without_a_zone_nothing_is_judged_ours() -> None:
    result = match(get([_row("admin.example.test")]), [], [], now=NOW)
    assert result.blind_spots == [] and result.out_of_zone == ["admin.example.test"]


def test_the_longest_zone_is_named_and_lookalikes_are_outside() -> None:
    rows = [_row("db.eu.example.test"), _row("badexample.test"), _row("example.test.evil.net")]
    result = match(get(rows), [], ["example.test", "eu.example.test"], now=NOW)
    assert [(s.address, s.evidence["zone"]) for s in result.blind_spots] == [
        ("db.eu.example.test", "eu.example.test")
    ]
    assert sorted(result.out_of_zone) == ["badexample.test", "example.test.evil.net"]


def test_evidence_lists_a_bounded_number_of_sightings() -> None:
    rows = [_row("x.example.test", f"asset-{i}", run=i) for i in range(EVIDENCE_MAX_SIGHTINGS + 5)]
    (spot,) = transform(get(rows), [], ZONES, now=NOW)
    assert len(spot.evidence["seen_by"]) == EVIDENCE_MAX_SIGHTINGS
    assert spot.evidence["sightings_total"] == EVIDENCE_MAX_SIGHTINGS + 5


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        transform(get([]), [], ZONES, now=NOW.replace(tzinfo=None))


def test_the_zones_of_the_organisation_come_from_every_place_that_names_them() -> None:
    config = DiscoveryConfig(
        dns={"zones": ["Corp.Test."], "resolver": {"ip": "192.0.2.53"}},
        assignment_rules=[{"id": "shop", "owner": "team-shop", "zone": "shop.example.test."}],
        scan_names={"zones": ["Example.Org"]},
    )
    assert config.zones() == ["corp.test", "shop.example.test", "example.org"]
    assert DiscoveryConfig().zones() == []
    with pytest.raises(ValidationError, match="give a domain name"):
        ScanNamesConfig(zones=["10.0.0.0/24"])
    with pytest.raises(ValidationError, match="shell characters"):
        ScanNamesConfig(zones=["$(id).test"])


def test_the_source_is_registered() -> None:
    module = registry.get_source("scan_names")
    assert module.transform is transform and callable(module.get)

"""Matching what a sweep saw against the inventory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autosec.discovery.blind_spots import find_blind_spots
from autosec.discovery.tcp_sweep import OpenPort
from autosec.domain.models import Asset, AssetKind, Criticality, Environment

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def asset(id: str, *addresses: str) -> Asset:
    return Asset(
        id, id, AssetKind.HOST, "file", "ops", Environment.TEST, Criticality.LOW, tuple(addresses)
    )


def spots(open_ports, assets):
    return [(s.address, s.port) for s in find_blind_spots(open_ports, assets, now=NOW)]


def port(address: str, number: int = 22, banner: str | None = None) -> OpenPort:
    return OpenPort(address, number, banner, 1.5)


def test_ip_equality_matches():
    assert spots([port("10.0.0.5"), port("10.0.0.6")], [asset("a", "10.0.0.5")]) == [
        ("10.0.0.6", 22)
    ]


def test_inside_a_cidr_matches_and_outside_does_not():
    inventory = [asset("net", "10.1.0.0/24")]
    assert spots([port("10.1.0.200"), port("10.1.1.1")], inventory) == [("10.1.1.1", 22)]


def test_url_host_matches_by_host_whatever_the_url_port_or_path():
    inventory = [asset("web", "https://10.2.0.7:8443/admin"), asset("v6", "http://[2001:db8::1]/")]
    observed = [port("10.2.0.7", 443), port("2001:db8::1", 80), port("10.2.0.8", 443)]
    assert spots(observed, inventory) == [("10.2.0.8", 443)]


def test_hostname_addresses_match_reported_names_case_insensitively_and_never_ips():
    inventory = [asset("h", "db1.example.com"), asset("u", "https://www.example.com/")]
    observed = [port("DB1.example.com."), port("www.example.com"), port("93.184.216.34")]
    assert spots(observed, inventory) == [("93.184.216.34", 22)]


def test_no_assets_means_everything_is_a_blind_spot_with_evidence_and_one_per_address_port():
    observed = [port("10.0.0.9", 80, "HTTP/1.0 400"), port("10.0.0.9", 80), port("10.0.0.3", 22)]
    result = find_blind_spots(observed, [], now=NOW)
    assert [(s.address, s.port) for s in result] == [("10.0.0.3", 22), ("10.0.0.9", 80)]
    spot = result[1]
    assert spot.source == "tcp_sweep" and spot.seen_at == NOW
    assert spot.evidence == {
        "port": 80,
        "banner": "HTTP/1.0 400",
        "latency_ms": 1.5,
        "method": "tcp connect sweep",
        "source": "tcp_sweep",
    }


def test_sorted_numerically_not_as_text():
    observed = [port("10.0.0.10"), port("10.0.0.9"), port("10.0.0.9", 21)]
    assert spots(observed, []) == [("10.0.0.9", 21), ("10.0.0.9", 22), ("10.0.0.10", 22)]


def test_ipv4_mapped_ipv6_observation_matches_the_ipv4_asset():
    assert spots([port("::ffff:10.0.0.5")], [asset("a", "10.0.0.5")]) == []


def test_the_clock_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        find_blind_spots([port("10.0.0.1")], [], now=datetime(2025, 3, 1))  # noqa: DTZ001

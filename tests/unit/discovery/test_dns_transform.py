"""DNS discovery: the configuration's guards, the wordlist file, and the pure matching step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.discovery import registry
from autosec.discovery.dns import (
    DnsConfig,
    DnsObservations,
    DnsRecord,
    DnsSourceError,
    Failure,
    Skipped,
    match,
    read_wordlist,
    transform,
)
from autosec.domain.models import Asset, AssetKind, Criticality, Environment

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RESOLVER = {"ip": "192.0.2.53"}


def _asset(asset_id: str, *addresses: str) -> Asset:
    return Asset(
        id=asset_id,
        name=asset_id,
        kind=AssetKind.HOST,
        source="cmdb",
        owner="team-a",
        environment=Environment.PRODUCTION,
        criticality=Criticality.MEDIUM,
        addresses=addresses,
    )


def _observations(*records: DnsRecord) -> DnsObservations:
    return DnsObservations("192.0.2.53:53", ("corp.test",), records=list(records))


def _a(name: str, address: str, method: str = "axfr") -> DnsRecord:
    return DnsRecord(name, "AAAA" if ":" in address else "A", address, method, "corp.test")


# ------------------------------------------------------------------------------------ config


def test_config_is_canonical():
    config = DnsConfig(
        zones=["Corp.Test.", "corp.test"],
        resolver={"ip": " 192.0.2.53 ", "port": 5353},
        wordlist=["WWW", "vpn.eu.", "www"],
        reverse_ranges=["10.0.0.5/30", "10.0.0.9"],
    )
    assert config.zones == ["corp.test"]
    assert str(config.resolver) == "192.0.2.53:5353"
    assert config.wordlist == ["www", "vpn.eu"]
    assert config.reverse_ranges == ["10.0.0.4/30", "10.0.0.9"]
    assert str(DnsConfig(resolver={"ip": "2001:db8::53"}).resolver) == "[2001:db8::53]:53"
    assert DnsConfig(resolver=RESOLVER, zones=["a.test"], wordlist="/srv/words.txt").wordlist == (
        Path("/srv/words.txt")
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"zones": ["$(id).corp.test"]}, "contains whitespace, control or shell characters"),
        ({"zones": ["10.0.0.0/24"]}, "zone '10.0.0.0/24' is a cidr: give a domain name"),
        ({"resolver": {"ip": "ns1.corp.test"}}, "is a hostname: give an IP address"),
        ({"resolver": {"ip": "192.0.2.53", "port": 0}}, "greater than or equal to 1"),
        ({"zones": ["c.test"], "wordlist": ["ok", "a;b"]}, "wordlist entry 'a;b': contains"),
        ({"zones": ["c.test"], "wordlist": ["-x"]}, "wordlist entry '-x': starts with '-'"),
        ({"zones": ["c.test"], "wordlist": ["*"]}, "wordlist entry '*'"),
        ({"wordlist": ["www"]}, "a wordlist needs at least one zone"),
        ({"reverse_ranges": ["corp.test"]}, "is a hostname: give an IP address or a CIDR"),
        ({"reverse_ranges": ["10.0.0.0/16"]}, "hold 65536 addresses, more than max_addresses=4096"),
        ({"nameserver": "192.0.2.1"}, "Extra inputs are not permitted"),
        ({"timeout_seconds": 0}, "greater than 0"),
    ],
)
def test_config_refuses_what_it_cannot_use(overrides, message):
    with pytest.raises(ValidationError) as info:
        DnsConfig.model_validate({"resolver": RESOLVER} | overrides)
    assert message in str(info.value)


def test_wordlist_times_zones_is_bounded_by_max_names():
    words = [f"h{i}" for i in range(6)]
    with pytest.raises(ValidationError, match="6 words under 2 zones make 12 names, more than"):
        DnsConfig(resolver=RESOLVER, zones=["a.test", "b.test"], wordlist=words, max_names=11)
    assert DnsConfig(resolver=RESOLVER, zones=["a.test", "b.test"], wordlist=words, max_names=12)


def test_wordlist_file_skips_bad_lines_and_names_them(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes(
        "\ufeff# common labels\r\nwww\r\n\r\nMail\r\n$(id)\r\nwww\r\nvpn\x07\r\n".encode()
    )
    words, skipped = read_wordlist(path)
    assert words == ["www", "mail"]
    assert [(s.location, s.value) for s in skipped] == [
        (f"wordlist {path}:5", "$(id)"),
        (f"wordlist {path}:7", "vpn\\x07"),
    ]
    assert all("shell characters" in s.reason for s in skipped)


def test_unreadable_wordlists_fail_the_source(tmp_path):
    with pytest.raises(DnsSourceError, match=r"missing\.txt: cannot read the wordlist"):
        read_wordlist(tmp_path / "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"www\ncaf\xe9\n")
    with pytest.raises(DnsSourceError, match=r"latin\.txt: byte 7: not valid UTF-8"):
        read_wordlist(latin)
    big = tmp_path / "big.txt"
    big.write_text("www\n" * 10)
    with pytest.raises(DnsSourceError, match="wordlist is 40 bytes, more than 39"):
        read_wordlist(big, max_bytes=39)


# ------------------------------------------------------------------------------- observations


def test_completeness_and_rejections():
    observations = _observations()
    assert observations.complete
    observations.skipped.append(Skipped("axfr corp.test", r"\$\(id\).corp.test", "bad"))
    assert observations.complete  # a skipped hostile name is reported, the run is still whole
    assert observations.rejections() == [("axfr corp.test", r"\$\(id\).corp.test", "bad")]
    observations.failures.append(Failure("www.corp.test A", "no answer within 2 s"))
    assert not observations.complete
    assert not DnsObservations("r", truncated=True).complete


# --------------------------------------------------------------------------------- transform


def test_an_address_no_asset_explains_is_a_blind_spot_with_its_evidence():
    observations = _observations(
        _a("vpn.corp.test", "10.0.0.4"),
        _a("remote.corp.test", "10.0.0.4", method="wordlist"),
        _a("mail.corp.test", "2001:db8::3"),
    )
    spots = transform(observations, [], now=NOW)

    assert [(s.address, s.port, s.source, s.seen_at) for s in spots] == [
        ("10.0.0.4", 0, "dns", NOW),
        ("2001:db8::3", 0, "dns", NOW),
    ]
    assert spots[0].evidence == {
        "names": ["remote.corp.test", "vpn.corp.test"],
        "names_total": 2,
        "record_types": ["A"],
        "found_by": ["axfr", "wordlist"],
        "zones": ["corp.test"],
        "resolver": "192.0.2.53:53",
        "method": "zone transfer, wordlist query",
        "source": "dns",
    }
    assert spots[1].evidence["record_types"] == ["AAAA"]


def test_names_resolving_to_inventoried_addresses_are_seen_not_blind():
    observations = _observations(
        _a("db.corp.test", "10.0.0.7"),
        _a("db-replica.corp.test", "10.0.1.9"),
        _a("app.corp.test", "10.0.0.8"),
        _a("app.corp.test", "10.9.9.9"),  # one known address explains the name
    )
    assets = [
        _asset("db", "10.0.0.7"),
        _asset("replicas", "10.0.1.0/24"),
        _asset("app", "10.0.0.8"),
    ]
    result = match(observations, assets, now=NOW)

    assert result.blind_spots == []
    assert [(s.name, s.addresses) for s in result.names_seen] == [
        ("app.corp.test", ("10.0.0.8", "10.9.9.9")),
        ("db.corp.test", ("10.0.0.7",)),
        ("db-replica.corp.test", ("10.0.1.9",)),
    ]


def test_an_inventoried_name_explains_its_address_and_names_sharing_it():
    observations = _observations(
        DnsRecord("www.corp.test", "CNAME", "web.corp.test", "wordlist", "corp.test"),
        _a("web.corp.test", "10.0.0.2", method="wordlist"),
        _a("static.corp.test", "10.0.0.2"),
        _a("other.corp.test", "10.0.0.3"),
    )
    assets = [_asset("site", "https://WWW.corp.test:8443/login")]
    result = match(observations, assets, now=NOW)

    assert [s.address for s in result.blind_spots] == ["10.0.0.3"]
    assert {s.name: s.addresses for s in result.names_seen} == {
        "www.corp.test": ("10.0.0.2",),
        "web.corp.test": ("10.0.0.2",),
        "static.corp.test": ("10.0.0.2",),
    }


def test_a_cname_chain_leads_to_the_address_and_shows_in_the_evidence():
    observations = _observations(
        DnsRecord("shop.corp.test", "CNAME", "shop.cdn.example", "wordlist", "corp.test"),
        DnsRecord("shop.cdn.example", "CNAME", "edge.cdn.example", "wordlist", "corp.test"),
        DnsRecord("edge.cdn.example", "A", "198.51.100.7", "wordlist", "corp.test"),
        DnsRecord("loop.corp.test", "CNAME", "loop2.corp.test", "axfr", "corp.test"),
        DnsRecord("loop2.corp.test", "CNAME", "loop.corp.test", "axfr", "corp.test"),
    )
    spots = {s.address: s.evidence for s in transform(observations, [], now=NOW)}

    assert spots["198.51.100.7"]["names"] == [
        "edge.cdn.example",
        "shop.cdn.example",
        "shop.corp.test",
    ]
    assert spots["198.51.100.7"]["record_types"] == ["A", "CNAME"]
    # A CNAME loop terminates and, pointing nowhere, each name is a blind spot of its own.
    assert spots["loop.corp.test"]["cname_targets"] == ["loop2.corp.test"]
    assert spots["loop2.corp.test"]["cname_targets"] == ["loop.corp.test"]


def test_a_dangling_cname_is_a_blind_spot_under_its_name_unless_inventoried():
    observations = _observations(
        DnsRecord("old.corp.test", "CNAME", "gone.herokuapp.example", "axfr", "corp.test")
    )
    (spot,) = transform(observations, [], now=NOW)
    assert (spot.address, spot.port) == ("old.corp.test", 0)
    assert spot.evidence["record_types"] == ["CNAME"]
    assert spot.evidence["cname_targets"] == ["gone.herokuapp.example"]
    assert transform(observations, [_asset("old", "old.corp.test")], now=NOW) == []


def test_reverse_lookups_give_blind_spots_and_seen_names():
    observations = _observations(
        DnsRecord("printer.corp.test", "PTR", "10.0.5.5", "ptr"),
        DnsRecord("gw.corp.test", "PTR", "10.0.5.1", "ptr"),
        DnsRecord("nas.corp.test", "PTR", "10.0.5.9", "ptr"),
    )
    assets = [_asset("gateway", "10.0.5.1"), _asset("nas", "nas.corp.test")]
    result = match(observations, assets, now=NOW)

    (spot,) = result.blind_spots
    assert spot.address == "10.0.5.5"
    assert spot.evidence["names"] == ["printer.corp.test"]
    assert spot.evidence["record_types"] == ["PTR"]
    assert spot.evidence["found_by"] == ["ptr"]
    assert spot.evidence["zones"] == []
    assert {s.name: s.addresses for s in result.names_seen} == {
        "gw.corp.test": ("10.0.5.1",),
        "nas.corp.test": ("10.0.5.9",),
    }


def test_evidence_names_are_capped_but_counted():
    records = [_a(f"h{i:03}.corp.test", "10.0.0.1") for i in range(120)]
    (spot,) = transform(_observations(*records), [], now=NOW)
    assert len(spot.evidence["names"]) == 50
    assert spot.evidence["names"][0] == "h000.corp.test"
    assert spot.evidence["names_total"] == 120


def test_blind_spots_are_sorted_and_carry_the_given_source():
    observations = _observations(
        _a("b.corp.test", "10.0.0.10"),
        _a("a.corp.test", "10.0.0.9"),
        DnsRecord("z.corp.test", "CNAME", "x.example", "axfr", "corp.test"),
    )
    spots = transform(observations, [], "dns_internal", now=NOW)
    assert [s.address for s in spots] == ["10.0.0.9", "10.0.0.10", "z.corp.test"]
    assert {s.source for s in spots} == {"dns_internal"}
    assert {s.evidence["source"] for s in spots} == {"dns_internal"}


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        transform(_observations(), [], now=datetime(2025, 1, 1))  # noqa: DTZ001


def test_registered_as_a_discovery_source():
    module = registry.get_source("dns")
    assert module.transform is transform
    assert callable(module.get)

"""The nmap XML parser, on real nmap output (fixtures/README.md says how each was made)."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import defusedxml.ElementTree as DET
import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.nmap.parser import (
    DATABASE_EXPOSED,
    OPEN_PORT,
    VERSION_DISCLOSED,
    NmapIncompleteScan,
    NmapParseError,
    hosts_in,
    parse_nmap_version,
    parse_nmap_xml,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def found(observations) -> set[tuple[str, str, str | None, int | None]]:
    return {(o.asset_id, o.rule_id, o.location.host, o.location.port) for o in observations}


WEB_DB_ASSETS = {"127.0.0.21": "web", "127.0.0.22": "shadow", "localhost": "laptop"}


def test_real_scan_of_apache_and_mysql() -> None:
    observations = parse_nmap_xml(fixture("nmap_web_db.xml"), WEB_DB_ASSETS)
    assert found(observations) == {
        ("web", OPEN_PORT, "127.0.0.21", 80),
        ("web", VERSION_DISCLOSED, "127.0.0.21", 80),
        ("web", OPEN_PORT, "127.0.0.21", 3306),
        ("web", VERSION_DISCLOSED, "127.0.0.21", 3306),
        ("web", DATABASE_EXPOSED, "127.0.0.21", 3306),
        ("shadow", OPEN_PORT, "127.0.0.22", 8080),
        ("shadow", VERSION_DISCLOSED, "127.0.0.22", 8080),
        # "localhost" was a target name: nmap lists it as a user hostname of 127.0.0.1
        ("laptop", OPEN_PORT, "127.0.0.1", 3306),
        ("laptop", VERSION_DISCLOSED, "127.0.0.1", 3306),
        ("laptop", DATABASE_EXPOSED, "127.0.0.1", 3306),
    }
    by_key = {(o.location.port, o.rule_id, o.asset_id): o for o in observations}

    http = by_key[(80, OPEN_PORT, "web")]
    assert http.title == "Open port 80/tcp (http)"
    assert http.severity is Severity.INFO and http.engine == "nmap"
    assert http.location == Location(host="127.0.0.21", port=80, protocol="tcp")
    assert http.evidence["service"] == "http"
    assert http.evidence["product"] == "Apache httpd"
    assert http.evidence["version"] == "2.4.49"
    assert http.evidence["extrainfo"] == "(Unix)"
    assert http.evidence["cpe"] == ["cpe:/a:apache:http_server:2.4.49"]
    assert http.evidence["reason"] == "syn-ack"

    banner = by_key[(80, VERSION_DISCLOSED, "web")]
    assert banner.title == "Service discloses its version: Apache httpd 2.4.49"
    assert banner.severity is Severity.LOW and banner.cwe == "CWE-200"
    assert "version" in banner.description and banner.evidence == http.evidence

    mysql = by_key[(3306, DATABASE_EXPOSED, "web")]
    assert mysql.title == "Database service reachable on the network: MySQL 5.5.62-log on 3306/tcp"
    assert mysql.severity is Severity.HIGH and mysql.cwe == "CWE-668"
    assert mysql.evidence["cpe"] == ["cpe:/a:mysql:mysql:5.5.62-log"]


def test_engine_name_is_recorded() -> None:
    observations = parse_nmap_xml(fixture("nmap_web_db.xml"), WEB_DB_ASSETS, engine_name="nmap2")
    assert {o.engine for o in observations} == {"nmap2"}


def test_hosts_that_match_no_asset_are_skipped() -> None:
    assert parse_nmap_xml(fixture("nmap_web_db.xml"), {}) == []
    only_web = parse_nmap_xml(fixture("nmap_web_db.xml"), {"127.0.0.21": "web"})
    assert {o.location.host for o in only_web} == {"127.0.0.21"}


def test_identity_ignores_volatile_fields() -> None:
    """Timestamps, TTLs and timings change every run; locations and rule ids must not."""
    raw = fixture("nmap_web_db.xml").decode()
    shifted = re.sub(r'(time|starttime|endtime|start|srtt|rttvar|reason_ttl)="\d+"', r'\1="7"', raw)
    shifted = re.sub(r'(timestr|startstr)="[^"]*"', r'\1="Tue Jan  1 00:00:00 2030"', shifted)
    assert shifted != raw
    before = parse_nmap_xml(raw.encode(), WEB_DB_ASSETS)
    after = parse_nmap_xml(shifted.encode(), WEB_DB_ASSETS)
    assert [(o.rule_id, o.location, o.title) for o in before] == [
        (o.rule_id, o.location, o.title) for o in after
    ]
    for observation in before:
        assert set(observation.location.as_dict()) == {"host", "port", "protocol"}


def test_real_databases_and_inferred_versions() -> None:
    observations = parse_nmap_xml(fixture("nmap_local_databases.xml"), {"127.0.0.1": "box"})
    assert {(o.rule_id, o.location.port) for o in observations} == {
        (OPEN_PORT, 3306),
        (VERSION_DISCLOSED, 3306),
        (DATABASE_EXPOSED, 3306),
        # PostgreSQL does not announce its version: "9.6.0 or later" is nmap's inference
        (OPEN_PORT, 5432),
        (DATABASE_EXPOSED, 5432),
        (OPEN_PORT, 5672),  # AMQP is a message broker, not a database
        (OPEN_PORT, 6379),
        (VERSION_DISCLOSED, 6379),
        (DATABASE_EXPOSED, 6379),
    }
    titles = {o.title for o in observations if o.rule_id == DATABASE_EXPOSED}
    assert (
        "Database service reachable on the network: PostgreSQL DB 9.6.0 or later on 5432/tcp"
        in (titles)
    )
    # port 9 answered "closed": no observation, but the host did answer
    assert 9 not in {o.location.port for o in observations}


EDGE_ASSETS = {"db1.corp.example": "db1", "10.20.0.0/16": "corp", "10.20.0.0/24": "corp-lab"}


def test_edge_cases() -> None:
    observations = parse_nmap_xml(fixture("nmap_edge_cases.xml"), EDGE_ASSETS)
    assert found(observations) == {
        # matched by the name nmap was given, located at the address it scanned
        ("db1", OPEN_PORT, "10.20.0.5", 22),
        ("db1", VERSION_DISCLOSED, "10.20.0.5", 22),
        ("db1", OPEN_PORT, "10.20.0.5", 443),  # no version: nothing disclosed
        ("db1", OPEN_PORT, "10.20.0.5", 1433),
        ("db1", VERSION_DISCLOSED, "10.20.0.5", 1433),
        ("db1", DATABASE_EXPOSED, "10.20.0.5", 1433),
        ("db1", OPEN_PORT, "10.20.0.5", 6379),  # redis only guessed from the port number
        ("db1", OPEN_PORT, "10.20.0.5", 9200),
        ("db1", VERSION_DISCLOSED, "10.20.0.5", 9200),
        ("db1", DATABASE_EXPOSED, "10.20.0.5", 9200),  # Elasticsearch behind "http"
        ("db1", OPEN_PORT, "10.20.0.5", 27017),
        ("db1", DATABASE_EXPOSED, "10.20.0.5", 27017),  # "3.6.0 - 3.6.23" is a range
        # no user hostname, no exact address: the narrowest range that holds it
        ("corp-lab", OPEN_PORT, "10.20.0.7", 8080),
        ("corp-lab", VERSION_DISCLOSED, "10.20.0.7", 8080),
    }
    titles = {(o.location.port, o.rule_id): o.title for o in observations}
    assert titles[(443, OPEN_PORT)] == "Open port 443/tcp (ssl/http)"
    assert titles[(9200, DATABASE_EXPOSED)] == (
        "Database service reachable on the network: Elasticsearch REST API 7.10.2 on 9200/tcp"
    )
    ssh = next(o for o in observations if o.location.port == 22)
    assert ssh.evidence["cpe"] == ["cpe:/a:openbsd:openssh:8.9p1", "cpe:/o:linux:linux_kernel"]
    assert ssh.evidence["hostnames"] == ["db1.corp.example"]
    # filtered and open|filtered ports are not open ports
    assert not {25, 161} & {o.location.port for o in observations}


def test_the_target_name_wins_over_the_address() -> None:
    """Two targets can share an address (an IP asset and a named one): nmap scans each once."""
    observations = parse_nmap_xml(
        fixture("nmap_web_db.xml"), {"127.0.0.1": "by-address", "localhost": "by-name"}
    )
    assert {o.asset_id for o in observations} == {"by-name"}


def test_ptr_names_do_not_claim_a_host() -> None:
    """A reverse-DNS name is whatever the address owner says; only target names match."""
    observations = parse_nmap_xml(
        fixture("nmap_edge_cases.xml"),
        {"ci-runner-7.corp.example": "runner", "ip-10-20-0-5.corp.example": "spoofed"},
    )
    assert observations == []


def test_address_keys_are_compared_canonically() -> None:
    observations = parse_nmap_xml(fixture("nmap_ipv6.xml"), {"0:0:0:0:0:0:0:1": "v6"})
    assert found(observations) == {
        ("v6", OPEN_PORT, "::1", 4369),
        ("v6", OPEN_PORT, "::1", 6379),
        ("v6", VERSION_DISCLOSED, "::1", 6379),
        ("v6", DATABASE_EXPOSED, "::1", 6379),
    }
    upper = parse_nmap_xml(fixture("nmap_web_db.xml"), {"LOCALHOST.": "laptop"})
    assert {o.location.host for o in upper} == {"127.0.0.1"}


def test_a_host_listed_twice_gives_one_observation_per_rule_and_port() -> None:
    raw = fixture("nmap_web_db.xml").decode()
    first_host = raw[raw.index("<host ") : raw.index("</host>") + len("</host>\n")]
    doubled = raw.replace(first_host, first_host + first_host, 1).encode()
    assert len(parse_nmap_xml(doubled, WEB_DB_ASSETS)) == len(
        parse_nmap_xml(fixture("nmap_web_db.xml"), WEB_DB_ASSETS)
    )


def test_hosts_in_counts_hosts_that_answered() -> None:
    assert hosts_in(fixture("nmap_web_db.xml")) == {"127.0.0.21", "127.0.0.22", "127.0.0.1"}
    # 10.20.0.6 is down; 10.20.0.7 answered the ping (not merely assumed up)
    assert hosts_in(fixture("nmap_edge_cases.xml")) == {"10.20.0.5", "10.20.0.7"}
    # -Pn marks 127.0.0.21 "up" by fiat and it timed out before any port answered
    assert hosts_in(fixture("nmap_host_timeout.xml")) == {"127.0.0.1"}
    assert hosts_in(fixture("nmap_skipped_target.xml")) == set()


# ------------------------------------------------------------------------ incomplete runs


def test_complete_run_passes_the_completeness_check() -> None:
    strict = parse_nmap_xml(fixture("nmap_web_db.xml"), WEB_DB_ASSETS, require_complete=True)
    assert strict == parse_nmap_xml(fixture("nmap_web_db.xml"), WEB_DB_ASSETS)


def test_a_host_timeout_is_an_incomplete_scan() -> None:
    raw = fixture("nmap_host_timeout.xml")
    assets = {"127.0.0.21": "web", "127.0.0.1": "laptop"}
    with pytest.raises(NmapIncompleteScan, match=r"127\.0\.0\.21 hit the host timeout") as info:
        parse_nmap_xml(raw, assets, require_complete=True)
    assert info.value.unscanned == ["127.0.0.21 hit the host timeout before its scan finished"]
    # what the run did find is kept for a caller that records partial results
    assert {o.asset_id for o in info.value.observations} == {"laptop"}
    assert isinstance(info.value, ValueError)
    # without the check, the same report parses
    assert {o.asset_id for o in parse_nmap_xml(raw, assets)} == {"laptop"}


def test_a_skipped_target_is_an_incomplete_scan() -> None:
    with pytest.raises(NmapIncompleteScan, match=r"::1 \(invalid\) skipped by nmap"):
        parse_nmap_xml(fixture("nmap_skipped_target.xml"), {"::1": "v6"}, require_complete=True)


def test_a_target_missing_from_the_output_is_an_incomplete_scan() -> None:
    """An unresolvable name appears only on nmap's stderr, never in the XML."""
    assets = {**WEB_DB_ASSETS, "nosuch.invalid": "ghost"}
    with pytest.raises(NmapIncompleteScan, match=r"nosuch\.invalid is not in the output"):
        parse_nmap_xml(fixture("nmap_web_db.xml"), assets, require_complete=True)


def test_a_down_host_is_an_incomplete_scan() -> None:
    with pytest.raises(NmapIncompleteScan, match=r"10\.20\.0\.6 reported down \(no-response\)"):
        parse_nmap_xml(fixture("nmap_edge_cases.xml"), EDGE_ASSETS, require_complete=True)


def test_a_run_nmap_reported_as_failed_is_incomplete() -> None:
    raw = fixture("nmap_web_db.xml").replace(
        b'exit="success"', b'exit="error" errormsg="sendto failed"'
    )
    with pytest.raises(NmapIncompleteScan, match="sendto failed"):
        parse_nmap_xml(raw, WEB_DB_ASSETS, require_complete=True)


def test_a_report_without_runstats_is_incomplete() -> None:
    raw = fixture("nmap_web_db.xml").decode()
    raw = raw[: raw.index("<runstats>")] + "</nmaprun>\n"
    with pytest.raises(NmapIncompleteScan, match="did not finish"):
        parse_nmap_xml(raw.encode(), WEB_DB_ASSETS, require_complete=True)


# ------------------------------------------------------------------------------ bad input


def test_truncated_output_names_the_position() -> None:
    raw = fixture("nmap_web_db.xml")
    cut = raw[: raw.index(b"<port protocol") + 30]
    expected_line = cut.count(b"\n") + 1
    with pytest.raises(
        NmapParseError, match=rf"malformed nmap XML at line {expected_line}, column"
    ):
        parse_nmap_xml(cut, WEB_DB_ASSETS)


def test_mismatched_tag_names_line_and_column() -> None:
    raw = b'<?xml version="1.0"?>\n<nmaprun>\n<host>\n</nmaprun>\n'
    with pytest.raises(NmapParseError) as info:
        parse_nmap_xml(raw, {})
    assert str(info.value) == "malformed nmap XML at line 4, column 2: mismatched tag"


@pytest.mark.parametrize("raw", [b"", b"  \n\t", ""])
def test_empty_output(raw: bytes) -> None:
    with pytest.raises(NmapParseError, match="empty nmap output"):
        parse_nmap_xml(raw, {})


def test_a_document_that_is_not_an_nmap_report() -> None:
    with pytest.raises(NmapParseError, match=r"root element is <report>, expected <nmaprun>"):
        parse_nmap_xml(b"<report><host/></report>", {})
    with pytest.raises(NmapParseError, match="malformed"):
        parse_nmap_xml(b"Starting Nmap 7.93 ( https://nmap.org )\n", {})


def test_an_entity_bomb_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE nmaprun [\n <!ENTITY a "aaaaaaaaaa">\n'
        b' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
        b' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n'
        b' <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">\n]>\n'
        b'<nmaprun><host comment="&d;"/></nmaprun>\n'
    )
    with pytest.raises(NmapParseError, match="refused nmap XML"):
        parse_nmap_xml(bomb, {})
    with pytest.raises(NmapParseError, match="refused nmap XML"):
        hosts_in(bomb)


def test_an_external_entity_is_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?>\n<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        b'<nmaprun><host><address addr="&x;" addrtype="ipv4"/></host></nmaprun>\n'
    )
    with pytest.raises(NmapParseError, match="refused nmap XML"):
        parse_nmap_xml(xxe, {})


def test_a_bad_port_number_is_named() -> None:
    raw = fixture("nmap_web_db.xml").replace(b'portid="80"', b'portid="eighty"', 1)
    with pytest.raises(NmapParseError, match="'eighty'"):
        parse_nmap_xml(raw, WEB_DB_ASSETS)


def _big_report(hosts: int) -> bytes:
    host = (
        '<host starttime="1" endtime="2"><status state="up" reason="user-set" reason_ttl="0"/>'
        '<address addr="10.{a}.{b}.{c}" addrtype="ipv4"/><hostnames></hostnames><ports>'
        '<port protocol="tcp" portid="80"><state state="closed" reason="conn-refused" '
        'reason_ttl="0"/><service name="http" method="table" conf="3"/></port></ports>'
        '<times srtt="1" rttvar="1" to="1"/></host>\n'
    )
    body = "".join(host.format(a=i // 65536, b=(i // 256) % 256, c=i % 256) for i in range(hosts))
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE nmaprun>\n<nmaprun scanner="nmap" version="7.93">\n'
        + body
        + '<runstats><finished exit="success"/></runstats></nmaprun>\n'
    ).encode()


def test_memory_stays_flat_on_a_large_report() -> None:
    raw = _big_report(1500)
    tracemalloc.start()
    try:
        DET.fromstring(raw)
        whole_tree = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert hosts_in(raw) and parse_nmap_xml(raw, {"10.0.0.1": "a"}) == []
        streamed = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed < whole_tree / 3, (streamed, whole_tree)


def test_parse_nmap_version() -> None:
    output = (
        "Nmap version 7.93 ( https://nmap.org )\nPlatform: x86_64-pc-linux-gnu\n"
        "Compiled with: liblua-5.3.6 openssl-3.0.19 libssh2-1.10.0 libz-1.2.13\n"
    )
    assert parse_nmap_version(output) == "7.93"
    assert parse_nmap_version("\nNmap version 7.94SVN ( https://nmap.org )\n") == "7.94SVN"
    with pytest.raises(NmapParseError, match="no 'Nmap version' line"):
        parse_nmap_version("nmap: command not found")

"""DNS discovery against a real authoritative server on loopback (UDP and TCP, one port).

The server is small but speaks real DNS on the wire: it answers A/AAAA/PTR with CNAME chains
and wildcards from dnspython zones, sends NXDOMAIN for names it does not hold, REFUSED for zones
it does not serve, and a zone transfer over TCP when allowed (REFUSED when not).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from autosec.discovery import dns as dns_source
from autosec.discovery.tcp_sweep import SweepConfig, sweep
from autosec.domain.models import Asset, AssetKind, Criticality, Environment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(30),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs 127.0.0.0/8 binds"),
]

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

CORP = r"""
$ORIGIN corp.test.
$TTL 300
@        IN SOA ns hostmaster 2025030101 3600 600 86400 300
@        IN NS  ns
ns       IN A     10.20.0.1
web      IN A     10.20.0.2
www      IN CNAME web
mail     IN A     10.20.0.3
mail     IN AAAA  2001:db8::3
vpn      IN A     10.20.0.4
legacy   IN CNAME app.saas.example.
\$\(id\) IN A     10.20.0.66
_dmarc   IN TXT   "v=DMARC1; p=none"
"""

WILD = r"""
$ORIGIN wild.test.
$TTL 300
@        IN SOA ns hostmaster 1 3600 600 86400 300
@        IN NS  ns
ns       IN A   10.30.0.1
vpn      IN A   10.30.0.10
*        IN A   10.30.0.99
"""

REVERSE = r"""
$ORIGIN 0.0.127.in-addr.arpa.
$TTL 300
@        IN SOA ns.corp.test. hostmaster.corp.test. 1 3600 600 86400 300
@        IN NS  ns.corp.test.
5        IN PTR printer.corp.test.
7        IN PTR gw.corp.test.
9        IN PTR \$\(reboot\).corp.test.
"""

CORP_NAMES = {"ns.corp.test", "web.corp.test", "www.corp.test", "mail.corp.test", "vpn.corp.test"}


class AuthoritativeServer:
    """An authoritative DNS server for a few zones on 127.0.0.1, UDP and TCP on one port."""

    def __init__(self, *zone_texts: str) -> None:
        self.zones = [dns.zone.from_text(text, relativize=False) for text in zone_texts]
        self.allow_axfr = True
        self.queries: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self.udp, self.tcp = self._bind()
        self.port = self.udp.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]

    @staticmethod
    def _bind() -> tuple[socket.socket, socket.socket]:
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            udp.settimeout(0.1)
            tcp.settimeout(0.1)
            return udp, tcp
        raise RuntimeError("no free port for both UDP and TCP on 127.0.0.1")

    def __enter__(self) -> AuthoritativeServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.udp.close()
        self.tcp.close()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            for reply in self.answer(wire, "udp"):
                self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_stream, args=(conn,), daemon=True).start()

    def _serve_stream(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        with conn, contextlib.suppress(OSError):
            while True:
                head = _read_exactly(conn, 2)
                if not head:
                    return
                wire = _read_exactly(conn, struct.unpack("!H", head)[0])
                for reply in self.answer(wire, "tcp"):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def answer(self, wire: bytes, transport: str) -> list[bytes]:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        self.queries.append((transport, qname.to_text(), dns.rdatatype.to_text(qtype)))
        response = dns.message.make_response(query)
        zone = self._zone_for(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return [response.to_wire()]
        response.flags |= dns.flags.AA
        if qtype == dns.rdatatype.AXFR:
            if transport != "tcp" or not self.allow_axfr:
                response.set_rcode(dns.rcode.REFUSED)
                return [response.to_wire()]
            soa = zone.find_rrset(zone.origin, dns.rdatatype.SOA)
            response.answer.append(soa)
            for name, rdataset in zone.iterate_rdatasets():
                if rdataset.rdtype != dns.rdatatype.SOA:
                    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
                    rrset.update(rdataset)
                    response.answer.append(rrset)
            response.answer.append(soa)
            return [response.to_wire()]
        self._lookup(zone, qname, qtype, response)
        return [response.to_wire()]

    def _zone_for(self, qname: dns.name.Name) -> dns.zone.Zone | None:
        candidates = [z for z in self.zones if qname.is_subdomain(z.origin)]
        return max(candidates, key=lambda z: len(z.origin), default=None)

    def _lookup(self, zone, qname, qtype, response) -> None:
        name = qname
        for _ in range(8):
            node = zone.get_node(name)
            if node is None and name != zone.origin:
                node = zone.get_node(dns.name.Name((b"*", *name.parent().labels)))
            if node is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return
            rdataset = node.get_rdataset(dns.rdataclass.IN, qtype)
            if rdataset is not None:
                response.answer.append(_rrset(name, rdataset))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                return  # the name exists without this type: NOERROR, empty answer
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            if not name.is_subdomain(zone.origin):
                return


def _rrset(name, rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
    rrset.update(rdataset)
    return rrset


def _read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


@pytest.fixture
def server():
    with AuthoritativeServer(CORP, WILD, REVERSE) as running:
        yield running


def _config(server: AuthoritativeServer, **overrides) -> dns_source.DnsConfig:
    values = {
        "zones": ["corp.test"],
        "resolver": {"ip": "127.0.0.1", "port": server.port},
        "timeout_seconds": 1,
        "axfr_lifetime_seconds": 5,
    }
    return dns_source.DnsConfig.model_validate(values | overrides)


def _forward(observations) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for record in observations.records:
        out.setdefault(record.name, set()).add((record.rdtype, record.value))
    return out


def test_zone_transfer_finds_every_host_name_and_skips_the_hostile_one(server):
    started = time.perf_counter()
    observations = dns_source.get(_config(server))
    assert time.perf_counter() - started < 5

    (transfer,) = observations.transfers
    assert (transfer.zone, transfer.status, transfer.names) == ("corp.test", "transferred", 6)
    assert ("tcp", "corp.test.", "AXFR") in server.queries
    assert _forward(observations) == {
        "ns.corp.test": {("A", "10.20.0.1")},
        "web.corp.test": {("A", "10.20.0.2")},
        "www.corp.test": {("CNAME", "web.corp.test")},
        "mail.corp.test": {("A", "10.20.0.3"), ("AAAA", "2001:db8::3")},
        "vpn.corp.test": {("A", "10.20.0.4")},
        "legacy.corp.test": {("CNAME", "app.saas.example")},
    }
    assert {r.method for r in observations.records} == {"axfr"}
    (hostile,) = observations.skipped
    assert hostile.location == "axfr corp.test"
    assert hostile.value == r"\$\(id\).corp.test"
    assert "shell characters" in hostile.reason
    assert observations.complete


def test_with_the_transfer_refused_the_wordlist_finds_the_listed_names(server):
    server.allow_axfr = False
    words = ["www", "mail", "vpn", "nothere", "legacy"]
    observations = dns_source.get(_config(server, wordlist=words))

    (transfer,) = observations.transfers
    assert (transfer.status, transfer.detail) == ("refused", "server answered REFUSED")
    assert observations.complete, observations.failures  # a refusal is not a failure
    found = _forward(observations)
    assert found == {
        "www.corp.test": {("CNAME", "web.corp.test")},
        "web.corp.test": {("A", "10.20.0.2")},  # the CNAME chain came with the answer
        "mail.corp.test": {("A", "10.20.0.3"), ("AAAA", "2001:db8::3")},
        "vpn.corp.test": {("A", "10.20.0.4")},
        "legacy.corp.test": {("CNAME", "app.saas.example")},
    }
    assert "ns.corp.test" not in found  # not listed, and no transfer to reveal it
    assert {r.method for r in observations.records} == {"wordlist"}
    asked = {(name, rdtype) for transport, name, rdtype in server.queries if transport == "udp"}
    assert ("nothere.corp.test.", "A") in asked
    assert ("nothere.corp.test.", "AAAA") in asked


def test_a_wildcard_zone_does_not_turn_every_word_into_a_name(server, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# labels\nvpn\nrandom\n`reboot`\nx\n")
    config = _config(server, zones=["wild.test"], axfr=False, wordlist=str(words))
    observations = dns_source.get(config)

    assert observations.wildcards == {"wild.test": ("10.30.0.99",)}
    assert _forward(observations) == {"vpn.wild.test": {("A", "10.30.0.10")}}
    assert observations.wildcard_hits == 2
    assert [(s.location, s.value) for s in observations.skipped] == [
        (f"wordlist {words}:4", "`reboot`")
    ]
    assert not any("reboot" in name for _, name, _ in server.queries)


def test_a_zone_larger_than_max_names_is_cut_short_and_says_so(server):
    observations = dns_source.get(_config(server, max_names=3, wordlist=["other"]))
    (transfer,) = observations.transfers
    assert transfer.names == 3
    assert len({r.name for r in observations.records}) == 3
    assert observations.truncated
    assert not observations.complete
    assert not any(name.startswith("other.") for _, name, _ in server.queries)


def test_reverse_lookup_of_a_swept_address_gives_its_name(server):
    async def sweep_listener():
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.7", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            return await sweep(SweepConfig(ranges=["127.0.0.7"], ports=[port], banner=False))
        finally:
            listener.close()
            await listener.wait_closed()

    open_ports = asyncio.run(sweep_listener())
    assert [o.address for o in open_ports] == ["127.0.0.7"]

    config = _config(server, zones=[], reverse_ranges=["127.0.0.4/30", "127.0.0.9"])
    observations = dns_source.get(config, addresses=[o.address for o in open_ports])

    assert {(r.name, r.rdtype, r.value, r.method) for r in observations.records} == {
        ("printer.corp.test", "PTR", "127.0.0.5", "ptr"),
        ("gw.corp.test", "PTR", "127.0.0.7", "ptr"),
    }
    asked = {name for _, name, rdtype in server.queries if rdtype == "PTR"}
    assert asked == {f"{i}.0.0.127.in-addr.arpa." for i in (5, 6, 7, 9)}
    (hostile,) = observations.skipped
    assert (hostile.location, hostile.value) == ("ptr 127.0.0.9", r"\$\(reboot\).corp.test")
    assert observations.complete


def _asset(asset_id: str, *addresses: str) -> Asset:
    return Asset(
        id=asset_id,
        name=asset_id,
        kind=AssetKind.HOST,
        source="cmdb",
        owner="team-a",
        environment=Environment.PRODUCTION,
        criticality=Criticality.HIGH,
        addresses=addresses,
    )


def test_what_dns_found_is_matched_against_the_inventory(server):
    config = _config(server, reverse_ranges=["127.0.0.4/30", "127.0.0.7"])
    observations = dns_source.get(config)
    assets = [
        _asset("site", "https://www.corp.test/"),  # explains www and, through it, 10.20.0.2
        _asset("mailer", "10.20.0.3"),
        _asset("printers", "127.0.0.0/29"),
    ]
    result = dns_source.match(observations, assets, now=NOW)

    spots = {s.address: s.evidence for s in result.blind_spots}
    # 127.0.0.5 and 127.0.0.7 lie in the printers' /29; the hostile name was never recorded.
    assert set(spots) == {"10.20.0.1", "10.20.0.4", "legacy.corp.test"}
    assert spots["10.20.0.4"]["names"] == ["vpn.corp.test"]
    assert spots["10.20.0.4"]["found_by"] == ["axfr"]
    assert spots["10.20.0.4"]["zones"] == ["corp.test"]
    assert spots["legacy.corp.test"]["cname_targets"] == ["app.saas.example"]
    assert all(s.port == 0 and s.source == "dns" and s.seen_at == NOW for s in result.blind_spots)
    seen = {s.name: s.addresses for s in result.names_seen}
    assert seen["www.corp.test"] == ("10.20.0.2",)
    assert seen["web.corp.test"] == ("10.20.0.2",)
    assert seen["mail.corp.test"] == ("10.20.0.3", "2001:db8::3")
    assert seen["gw.corp.test"] == ("127.0.0.7",)
    assert seen["printer.corp.test"] == ("127.0.0.5",)


def test_a_silent_resolver_fails_the_run_within_its_timeouts():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # takes datagrams, never answers; nothing listens on TCP
    port = silent.getsockname()[1]
    try:
        config = dns_source.DnsConfig(
            zones=["corp.test"],
            resolver={"ip": "127.0.0.1", "port": port},
            wordlist=[f"host{i}" for i in range(50)],
            timeout_seconds=0.3,
        )
        started = time.perf_counter()
        with pytest.raises(dns_source.DnsSourceError) as info:
            dns_source.get(config)
        elapsed = time.perf_counter() - started
        silent.setblocking(False)
        received = []
        with contextlib.suppress(BlockingIOError):
            while True:
                received.append(dns.message.from_wire(silent.recv(65535)).question[0])
    finally:
        silent.close()
    assert f"resolver 127.0.0.1:{port} answered none of 2 queries" in str(info.value)
    assert "no answer within 0.3 s" in str(info.value)
    # The wildcard probe (A and AAAA) went unanswered, so the 100 wordlist queries were never sent.
    assert sorted(dns.rdatatype.to_text(q.rdtype) for q in received) == ["A", "AAAA"]
    assert elapsed < 2, elapsed


def test_a_resolver_that_stops_answering_mid_run_leaves_the_run_incomplete(server):
    server.allow_axfr = False
    config = _config(server, wordlist=["www"], reverse_ranges=["127.0.0.5"], timeout_seconds=0.3)
    original = server.answer

    def drop_reverse(wire: bytes, transport: str) -> list[bytes]:
        replies = original(wire, transport)
        return [] if b"in-addr" in wire else replies

    server.answer = drop_reverse
    observations = dns_source.get(config)
    assert not observations.complete
    assert [f.query for f in observations.failures] == ["5.0.0.127.in-addr.arpa. PTR"]
    assert "www.corp.test" in _forward(observations)

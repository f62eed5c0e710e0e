"""Discovery source: the names DNS knows in configured zones, and the names behind addresses.

Everything is asked of one configured resolver (an authoritative server or the estate's own
resolver), in three ways:

- a zone transfer (AXFR over TCP) of each zone, when ``axfr`` allows it; a server that refuses
  is recorded, not an error: most do, and the wordlist still runs;
- a wordlist of labels queried under each zone (A and AAAA; a CNAME chain arrives with the
  answer, so CNAMEs are seen without a third query). A random label is asked first in each
  zone: a zone with a wildcard answers every word, and wordlist hits that only repeat the
  wildcard's addresses are dropped instead of flooding the blind spots;
- reverse lookups (PTR) of configured ranges and of addresses other sources saw (a sweep's).

``get`` does the network I/O and returns :class:`DnsObservations`; ``transform`` (pure) turns them
into blind spots against the inventory, and :func:`match` also returns the names that resolve to
inventoried assets (``names_seen``) for later name-based matching.

Every name is treated as untrusted input: a zone may hold ``$(id).example.com`` or a name with
control bytes. Names are checked with :func:`validate_target` before they are used or recorded;
what fails is skipped and reported (:attr:`DnsObservations.skipped`), never passed on.

A run that was not complete (a query timed out, a transfer broke, a limit cut it short) says so
(:attr:`DnsObservations.complete`): its caller must not resolve blind spots it did not see again.
A resolver that answers nothing at all fails the run (:class:`DnsSourceError`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.xfr
import dns.zone
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosec.discovery.blind_spots import _index, _sort_key
from autosec.domain.models import Asset, BlindSpot
from autosec.domain.targets import InvalidTarget, TargetKind, validate_target

NAME = "dns"
METHODS = {"axfr": "zone transfer", "wordlist": "wordlist query", "ptr": "reverse lookup"}
WORDLIST_MAX_BYTES = 16 * 1024 * 1024
EVIDENCE_MAX_NAMES = 50
_MAX_CHAIN = 8
_PROBE_PREFIX = "autosec-wildcard-probe-"
_HOST_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME)
_ANSWERED = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
_REFUSALS = (dns.rcode.REFUSED, dns.rcode.NOTAUTH)

log = logging.getLogger(__name__)


class DnsSourceError(RuntimeError):
    """The DNS source could not run at all (resolver silent, wordlist unreadable): trust nothing."""


# ------------------------------------------------------------------------------------ config


class ResolverAddress(BaseModel):
    """Where every query goes: an IP address (never a name: resolving it would need DNS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ip: str
    port: int = Field(53, ge=1, le=65535)

    @field_validator("ip")
    @classmethod
    def _is_ip(cls, value: str) -> str:
        target = _target(value)
        if target.kind is not TargetKind.IP:
            raise ValueError(f"resolver {value!r} is a {target.kind.value}: give an IP address")
        return target.value

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


class DnsConfig(BaseModel):
    """What to ask and how hard. Validated before a single query is sent.

    ``wordlist`` is a list of labels (``www``, ``vpn.eu``) or the path of a file with one label a
    line (``#`` starts a comment). ``max_names`` bounds the forward names of one run (zone
    transfers plus wordlist queries); ``max_addresses`` bounds the reverse lookups.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    zones: list[str] = Field(default_factory=list)
    resolver: ResolverAddress
    wordlist: list[str] | Path = Field(default_factory=list)
    reverse_ranges: list[str] = Field(default_factory=list)
    axfr: bool = True
    timeout_seconds: float = Field(2.0, gt=0, le=30)
    axfr_lifetime_seconds: float = Field(60.0, gt=0, le=900)
    concurrency: int = Field(20, ge=1, le=500)
    max_names: int = Field(10_000, ge=1, le=1_000_000)
    max_addresses: int = Field(4096, ge=1, le=65_536)

    @field_validator("zones")
    @classmethod
    def _valid_zones(cls, zones: list[str]) -> list[str]:
        canonical = []
        for value in zones:
            target = _target(value)
            if target.kind is not TargetKind.HOSTNAME:
                raise ValueError(f"zone {value!r} is a {target.kind.value}: give a domain name")
            canonical.append(target.value)
        return list(dict.fromkeys(canonical))

    @field_validator("wordlist")
    @classmethod
    def _valid_words(cls, wordlist: list[str] | Path) -> list[str] | Path:
        if isinstance(wordlist, Path):
            return wordlist
        return list(dict.fromkeys(wordlist_entry(word) for word in wordlist))

    @field_validator("reverse_ranges")
    @classmethod
    def _valid_ranges(cls, ranges: list[str]) -> list[str]:
        canonical = []
        for value in ranges:
            target = _target(value)
            if target.kind not in (TargetKind.IP, TargetKind.CIDR):
                raise ValueError(
                    f"reverse range {value!r} is a {target.kind.value}: give an IP address or a "
                    "CIDR range"
                )
            canonical.append(target.value)
        return list(dict.fromkeys(canonical))

    @model_validator(mode="after")
    def _within_limits(self) -> DnsConfig:
        if self.wordlist and not self.zones:
            raise ValueError("a wordlist needs at least one zone to query its labels under")
        if isinstance(self.wordlist, list):
            names = len(self.wordlist) * len(self.zones)
            if names > self.max_names:
                raise ValueError(
                    f"{len(self.wordlist)} words under {len(self.zones)} zones make {names} names, "
                    f"more than max_names={self.max_names}: shorten the list or raise the limit"
                )
        count = sum(
            ipaddress.ip_network(r, strict=False).num_addresses for r in self.reverse_ranges
        )
        if count > self.max_addresses:
            raise ValueError(
                f"reverse ranges {', '.join(self.reverse_ranges)} hold {count} addresses, more "
                f"than max_addresses={self.max_addresses}: split them or raise the limit"
            )
        return self


def _target(value: object):
    try:
        return validate_target(value)
    except InvalidTarget as exc:
        raise ValueError(str(exc)) from None


def wordlist_entry(word: object) -> str:
    """The canonical form of one wordlist label (``www``, ``vpn.eu``); ValueError when unusable."""
    if not isinstance(word, str):
        raise ValueError(f"wordlist entry {word!r} is not text")
    label = word.strip().rstrip(".").lower()
    try:
        target = validate_target(f"{label}.invalid") if label else None
    except InvalidTarget as exc:
        raise ValueError(f"wordlist entry {_printable(word)!r}: {exc.problem}") from None
    if target is None or target.kind is not TargetKind.HOSTNAME:
        raise ValueError(f"wordlist entry {_printable(word)!r}: not a DNS label")
    return label


def read_wordlist(
    path: str | Path, max_bytes: int = WORDLIST_MAX_BYTES
) -> tuple[list[str], list[Skipped]]:
    """The labels of a wordlist file, and the lines skipped (each naming file:line and why)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DnsSourceError(f"{path}: wordlist is {size} bytes, more than {max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise DnsSourceError(f"{path}: cannot read the wordlist: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DnsSourceError(f"{path}: byte {exc.start}: not valid UTF-8") from None
    words: dict[str, None] = {}
    skipped: list[Skipped] = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = line.rstrip("\r").strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            words[wordlist_entry(entry)] = None
        except ValueError as exc:
            skipped.append(Skipped(f"wordlist {path}:{number}", _printable(entry), str(exc)))
    return list(words), skipped


# ------------------------------------------------------------------------------ observations


@dataclass(frozen=True)
class DnsRecord:
    """One record seen. For A/AAAA/CNAME ``name`` owns it and ``value`` is the address or the
    target; for PTR ``value`` is the address looked up and ``name`` the name it points back to."""

    name: str
    rdtype: str
    value: str
    method: str
    zone: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A name or entry that was not used: where it was seen, the value (escaped), and why."""

    location: str
    value: str
    reason: str

    def as_rejection(self) -> tuple[str, str | None, str]:
        """(location, value, reason), the shape the store's input rejections take."""
        return (self.location, self.value, self.reason)


@dataclass(frozen=True)
class Failure:
    """A question that got no usable answer; it makes the run incomplete."""

    query: str
    problem: str


@dataclass(frozen=True)
class Transfer:
    """How a zone transfer went: transferred, refused, failed or not_attempted."""

    zone: str
    status: str
    detail: str = ""
    names: int = 0


@dataclass
class DnsObservations:
    """Everything one run saw, in the order it was seen; plain data for ``transform``."""

    resolver: str
    zones: tuple[str, ...] = ()
    records: list[DnsRecord] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    wildcards: dict[str, tuple[str, ...]] = field(default_factory=dict)
    wildcard_hits: int = 0
    truncated: bool = False
    queries: int = 0
    answered: int = 0

    @property
    def complete(self) -> bool:
        """True when every question got an answer and no limit cut the run short."""
        return not self.failures and not self.truncated

    def rejections(self) -> list[tuple[str, str | None, str]]:
        return [s.as_rejection() for s in self.skipped]


# --------------------------------------------------------------------------------------- get


def get(config: DnsConfig | Mapping[str, Any], addresses: Iterable[str] = ()) -> DnsObservations:
    """Ask the resolver everything ``config`` names (blocking: for a worker, not an event loop).

    ``addresses`` are extra addresses to look up in reverse, e.g. what a TCP sweep found; they
    count against ``max_addresses`` with the configured ranges.
    """
    config = config if isinstance(config, DnsConfig) else DnsConfig.model_validate(config)
    skipped: list[Skipped] = []
    if isinstance(config.wordlist, Path):
        words, skipped = read_wordlist(config.wordlist)
    else:
        words = list(config.wordlist)
    return asyncio.run(_Run(config, words, skipped).run(list(addresses)))


class _Run:
    def __init__(self, config: DnsConfig, words: list[str], skipped: list[Skipped]) -> None:
        self.config = config
        self.words = words
        self.obs = DnsObservations(str(config.resolver), tuple(config.zones), skipped=skipped)
        self.seen_records: set[DnsRecord] = set()
        self.names_left = config.max_names
        self.semaphore = asyncio.Semaphore(config.concurrency)

    async def run(self, extra_addresses: list[str]) -> DnsObservations:
        started = time.perf_counter()
        obs = self.obs
        if self.config.zones:
            await asyncio.gather(*(self._probe_wildcard(zone) for zone in self.config.zones))
            self._fail_if_silent()
        axfr_names: set[str] = set()
        for zone in self.config.zones:
            axfr_names |= await self._transfer(zone)
        await asyncio.gather(*(self._forward(name, zone) for name, zone in self._names(axfr_names)))
        reverse = self._reverse_addresses(extra_addresses)
        await asyncio.gather(*(self._reverse(address) for address in reverse))
        self._fail_if_silent()
        log.info(
            "dns via %s: %d zones, %d queries, %d records, %d skipped, %d failures, %.2f s",
            obs.resolver,
            len(obs.zones),
            obs.queries,
            len(obs.records),
            len(obs.skipped),
            len(obs.failures),
            time.perf_counter() - started,
        )
        return obs

    def _fail_if_silent(self) -> None:
        if self.obs.queries and not self.obs.answered:
            first = self.obs.failures[0].problem if self.obs.failures else "no answer"
            raise DnsSourceError(
                f"resolver {self.obs.resolver} answered none of {self.obs.queries} queries "
                f"(first: {first})"
            )

    def _add(self, record: DnsRecord) -> None:
        if record not in self.seen_records:
            self.seen_records.add(record)
            self.obs.records.append(record)

    # -- questions

    async def _ask(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message | None:
        query = f"{name} {rdtype.name}"
        self.obs.queries += 1
        message = dns.message.make_query(name, rdtype)
        timeout = self.config.timeout_seconds
        resolver = self.config.resolver
        async with self.semaphore:
            try:
                # The outer bound covers the UDP try and a TCP retry after a truncated answer.
                async with asyncio.timeout(2 * timeout + 1):
                    response, _ = await dns.asyncquery.udp_with_fallback(
                        message, resolver.ip, timeout=timeout, port=resolver.port
                    )
            except (TimeoutError, dns.exception.Timeout):
                self.obs.failures.append(Failure(query, f"no answer within {timeout:g} s"))
                return None
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                self.obs.failures.append(Failure(query, f"{type(exc).__name__}: {exc}"))
                return None
        self.obs.answered += 1
        rcode = response.rcode()
        if rcode not in _ANSWERED:
            self.obs.failures.append(
                Failure(query, f"resolver answered {dns.rcode.to_text(rcode)}")
            )
            return None
        return response

    async def _probe_wildcard(self, zone: str) -> None:
        name = f"{_PROBE_PREFIX}{secrets.token_hex(6)}.{zone}"
        found: set[str] = set()
        types = (dns.rdatatype.A, dns.rdatatype.AAAA)
        responses = await asyncio.gather(*(self._ask(name, rdtype) for rdtype in types))
        for rdtype, response in zip(types, responses, strict=True):
            if response is not None:
                found |= {v for _, t, v in _chain(response, name, rdtype) if t == rdtype}
        if found:
            self.obs.wildcards[zone] = tuple(sorted(found, key=_address_key))

    async def _transfer(self, zone: str) -> set[str]:
        """The host names a zone transfer gave (empty when refused, failed or not allowed)."""
        if not self.config.axfr:
            self.obs.transfers.append(Transfer(zone, "not_attempted", "axfr is off"))
            return set()
        origin = dns.name.from_text(zone)
        holder = dns.zone.Zone(origin, relativize=False)
        try:
            await dns.asyncquery.inbound_xfr(
                self.config.resolver.ip,
                holder,
                port=self.config.resolver.port,
                timeout=self.config.timeout_seconds,
                lifetime=self.config.axfr_lifetime_seconds,
            )
        except dns.xfr.TransferError as exc:
            rcode = dns.rcode.to_text(exc.rcode)
            if exc.rcode in _REFUSALS:
                self.obs.transfers.append(Transfer(zone, "refused", f"server answered {rcode}"))
            else:
                self.obs.transfers.append(Transfer(zone, "failed", f"server answered {rcode}"))
                self.obs.failures.append(Failure(f"{zone} AXFR", f"server answered {rcode}"))
            return set()
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.obs.transfers.append(Transfer(zone, "failed", problem))
            self.obs.failures.append(Failure(f"{zone} AXFR", problem))
            return set()
        names = self._zone_records(zone, holder)
        self.obs.transfers.append(Transfer(zone, "transferred", names=len(names)))
        return names

    def _zone_records(self, zone: str, holder: dns.zone.Zone) -> set[str]:
        names: set[str] = set()
        location = f"axfr {zone}"
        wildcard: set[str] = set()
        for relative, node in sorted(holder.nodes.items()):
            absolute = relative.derelativize(holder.origin)
            rdatasets = [r for r in node.rdatasets if r.rdtype in _HOST_TYPES]
            if not rdatasets:
                continue
            if absolute.labels[0] == b"*":
                wildcard |= {
                    str(rd) for r in rdatasets if r.rdtype != dns.rdatatype.CNAME for rd in r
                }
                continue
            host = self._host(absolute, location)
            if host is None:
                continue
            if self.names_left <= 0:
                self.obs.truncated = True
                break
            self.names_left -= 1
            names.add(host)
            for rdataset in rdatasets:
                for rdata in rdataset:
                    self._record(host, rdataset.rdtype, rdata, "axfr", zone, location)
        if wildcard:
            merged = set(self.obs.wildcards.get(zone, ())) | wildcard
            self.obs.wildcards[zone] = tuple(sorted(merged, key=_address_key))
        return names

    def _names(self, already: set[str]) -> list[tuple[str, str]]:
        out = []
        for zone in self.config.zones:
            for word in self.words:
                name = f"{word}.{zone}"
                try:
                    name = validate_target(name).value
                except InvalidTarget as exc:
                    self.obs.skipped.append(Skipped(f"wordlist {zone}", name, str(exc)))
                    continue
                if name in already:
                    continue
                if self.names_left <= 0:
                    self.obs.truncated = True
                    return out
                self.names_left -= 1
                out.append((name, zone))
        return out

    async def _forward(self, name: str, zone: str) -> None:
        location = f"wordlist query {name}"
        types = (dns.rdatatype.A, dns.rdatatype.AAAA)
        responses = await asyncio.gather(*(self._ask(name, rdtype) for rdtype in types))
        links = [
            link
            for rdtype, response in zip(types, responses, strict=True)
            if response is not None
            for link in _chain(response, name, rdtype)
        ]
        addresses = {v for _, t, v in links if t != dns.rdatatype.CNAME}
        wildcard = set(self.obs.wildcards.get(zone, ()))
        via_cname = any(t == dns.rdatatype.CNAME for _, t, _ in links)
        if wildcard and addresses and addresses <= wildcard and not via_cname:
            self.obs.wildcard_hits += 1
            return
        for owner, rdtype, value in links:
            host = self._host(owner, location)
            if host is None:
                return  # the rest of the chain hangs off a name that may not be used
            if not self._record(host, rdtype, value, "wordlist", zone, location):
                return

    def _reverse_addresses(self, extra: list[str]) -> list[str]:
        wanted: dict[str, None] = {}
        for value in self.config.reverse_ranges:
            network = ipaddress.ip_network(value, strict=False)
            for address in list(network.hosts()) or [network.network_address]:
                wanted[str(address)] = None
        for value in extra:
            try:
                target = validate_target(value)
            except InvalidTarget as exc:
                self.obs.skipped.append(Skipped("reverse addresses", _printable(value), str(exc)))
                continue
            if target.kind is not TargetKind.IP:
                problem = f"a {target.kind.value}, not an IP address: nothing to look up in reverse"
                self.obs.skipped.append(Skipped("reverse addresses", target.value, problem))
                continue
            wanted[target.value] = None
        if len(wanted) > self.config.max_addresses:
            self.obs.truncated = True
            self.obs.failures.append(
                Failure(
                    "reverse lookups",
                    f"{len(wanted)} addresses, more than max_addresses="
                    f"{self.config.max_addresses}: the rest were not looked up",
                )
            )
        return list(wanted)[: self.config.max_addresses]

    async def _reverse(self, address: str) -> None:
        reverse_name = dns.reversename.from_address(address)
        response = await self._ask(reverse_name.to_text(), dns.rdatatype.PTR)
        if response is None:
            return
        location = f"ptr {address}"
        for _, rdtype, value in _chain(response, reverse_name, dns.rdatatype.PTR):
            if rdtype != dns.rdatatype.PTR:
                continue
            host = self._host(value, location)
            if host is not None:
                self._add(DnsRecord(host, "PTR", address, "ptr"))

    # -- turning dnspython values into checked records

    def _host(self, name: dns.name.Name, location: str) -> str | None:
        text = name.to_text(omit_final_dot=True)
        try:
            target = validate_target(text)
        except InvalidTarget as exc:
            self.obs.skipped.append(Skipped(location, text, str(exc)))
            return None
        if target.kind is not TargetKind.HOSTNAME:
            problem = f"a DNS name that reads as a {target.kind.value}, not a host name"
            self.obs.skipped.append(Skipped(location, text, problem))
            return None
        return target.value

    def _record(
        self, host: str, rdtype: int, value: Any, method: str, zone: str, location: str
    ) -> bool:
        if rdtype == dns.rdatatype.CNAME:
            target_name = value if isinstance(value, dns.name.Name) else value.target
            target = self._host(target_name, location)
            if target is None:
                return False
            self._add(DnsRecord(host, "CNAME", target, method, zone))
            return True
        address = value if isinstance(value, str) else value.address
        self._add(DnsRecord(host, dns.rdatatype.to_text(rdtype), address, method, zone))
        return True


def _chain(
    response: dns.message.Message, qname: str | dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> list[tuple[dns.name.Name, int, Any]]:
    """The answer to ``qname``: its CNAME chain, then the records of the type asked for.

    Only records on the chain from the name asked are taken: anything else a server adds to
    the answer section (out-of-bailiwick data) is ignored. Values are addresses (str) for A and
    AAAA, names for CNAME and PTR.
    """
    current = dns.name.from_text(qname) if isinstance(qname, str) else qname
    links: list[tuple[dns.name.Name, int, Any]] = []
    visited = {current}
    for _ in range(_MAX_CHAIN):
        cname = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None or not len(cname):
            break
        target = next(iter(cname)).target
        links.append((current, dns.rdatatype.CNAME, target))
        if target in visited:
            return links
        visited.add(target)
        current = target
    final = response.get_rrset(response.answer, current, dns.rdataclass.IN, rdtype)
    for rdata in final or ():
        value = rdata.target if rdtype == dns.rdatatype.PTR else rdata.address
        links.append((current, rdtype, value))
    return links


def _address_key(value: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(value)
    return (ip.version, int(ip))


def _printable(value: object, limit: int = 200) -> str:
    """``value`` with control characters escaped and cut to ``limit``: safe to store and log."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------- transform


@dataclass(frozen=True)
class SeenName:
    """A name DNS gave that the inventory explains, with the addresses it led to: no evidence,
    only what later name-based matching (TLS names, redirects) needs."""

    name: str
    addresses: tuple[str, ...]


@dataclass
class DnsMatch:
    blind_spots: list[BlindSpot]
    names_seen: list[SeenName]


@dataclass
class _Group:
    names: set[str] = field(default_factory=set)
    types: set[str] = field(default_factory=set)
    methods: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    cnames: set[str] = field(default_factory=set)

    def add(self, name: str, how: _Group) -> None:
        self.names.add(name)
        self.methods |= how.methods
        self.zones |= how.zones


def match(
    observations: DnsObservations,
    assets: Iterable[Asset],
    source: str = NAME,
    *,
    now: datetime,
) -> DnsMatch:
    """Blind spots (what no asset explains) and the names the inventory does explain. Pure.

    A name is explained when an asset names it or when it resolves (directly or through CNAMEs
    seen in the same run, or by the PTR that gave it) to an inventoried address. An address is a
    blind spot when it is not inventoried and no explained name points at it; it is stored with
    port 0 and the names, record types, methods and zones as evidence. A name that resolves to
    nothing (a CNAME to an outside or dangling target) and is not explained is a blind spot under
    its own name. ``names_seen`` holds the explained names and every name that shares an
    explained address with them.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    index = _index(assets)
    direct: dict[str, set[str]] = defaultdict(set)  # name -> A/AAAA addresses
    cnames: dict[str, set[str]] = defaultdict(set)  # name -> CNAME targets
    reverse: dict[str, set[str]] = defaultdict(set)  # address -> names its PTRs give
    how: dict[str, _Group] = defaultdict(_Group)  # name -> methods and zones that found it
    for record in observations.records:
        how[record.name].methods.add(record.method)
        if record.zone:
            how[record.name].zones.add(record.zone)
        if record.rdtype == "CNAME":
            cnames[record.name].add(record.value)
        elif record.rdtype == "PTR":
            reverse[record.value].add(record.name)
        else:
            direct[record.name].add(record.value)

    # name -> {address: reached through a CNAME}
    forward = {name: _resolve(name, direct, cnames) for name in set(direct) | set(cnames)}
    points_at: dict[str, set[str]] = defaultdict(set)  # name -> every address it leads to
    for name, found in forward.items():
        points_at[name] |= set(found)
    for address, names in reverse.items():
        for name in names:
            points_at[name].add(address)
    explained = {
        name
        for name, found in points_at.items()
        if index.knows(name) or any(index.knows(a) for a in found)
    }

    groups: dict[str, _Group] = defaultdict(_Group)
    for name, found in forward.items():
        if not found and name in cnames:
            group = groups[name]
            group.add(name, how[name])
            group.types.add("CNAME")
            group.cnames |= cnames[name]
        for address, via_cname in found.items():
            group = groups[address]
            group.add(name, how[name])
            group.types.add("AAAA" if ":" in address else "A")
            if via_cname:
                group.types.add("CNAME")
    for address, names in reverse.items():
        group = groups[address]
        for name in names:
            group.add(name, how[name])
        group.types.add("PTR")

    spots = []
    seen = set(explained)
    for key, group in groups.items():
        if key in explained or index.knows(key) or group.names & explained:
            seen |= group.names  # explained together with the address they share
        else:
            spots.append(BlindSpot(key, 0, source, _evidence(group, observations, source), now))
    names_seen = [
        SeenName(name, tuple(sorted(points_at[name], key=_address_key)))
        for name in sorted(seen, key=lambda n: n.split(".")[::-1])
    ]
    return DnsMatch(sorted(spots, key=_sort_key), names_seen)


def _resolve(
    name: str, direct: Mapping[str, set[str]], cnames: Mapping[str, set[str]]
) -> dict[str, bool]:
    """{address: reached through a CNAME} for ``name``, following CNAMEs; cycle-safe."""
    found: dict[str, bool] = dict.fromkeys(direct.get(name, ()), False)
    visited, todo = {name}, list(cnames.get(name, ()))
    while todo:
        current = todo.pop()
        if current in visited:
            continue
        visited.add(current)
        for address in direct.get(current, ()):
            found.setdefault(address, True)
        todo.extend(cnames.get(current, ()))
    return found


def _evidence(group: _Group, observations: DnsObservations, source: str) -> dict[str, Any]:
    names = sorted(group.names)
    evidence: dict[str, Any] = {
        "names": names[:EVIDENCE_MAX_NAMES],
        "names_total": len(names),
        "record_types": sorted(group.types),
        "found_by": sorted(group.methods),
        "zones": sorted(group.zones),
        "resolver": observations.resolver,
        "method": ", ".join(METHODS.get(m, m) for m in sorted(group.methods)),
        "source": source,
    }
    if group.cnames:
        evidence["cname_targets"] = sorted(group.cnames)
    return evidence


def transform(
    observations: DnsObservations,
    assets: Iterable[Asset],
    source: str = NAME,
    *,
    now: datetime,
) -> list[BlindSpot]:
    """What DNS knows that no inventory asset explains. Pure; see :func:`match`."""
    return match(observations, assets, source, now=now).blind_spots

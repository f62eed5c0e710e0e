"""Pure parser for nmap XML (``-oX``): open ports, disclosed versions, exposed databases.

Streams with defusedxml's ``iterparse`` (entity and external-reference bombs are refused; nmap's
own bare ``<!DOCTYPE nmaprun>`` is allowed) and clears each ``<host>`` after use, so memory stays
flat on large scans. Only stable fields go into a finding's location and rule id; reasons,
banners and timings stay in the evidence.

An nmap run can exit 0 without having scanned every target: a name that does not resolve only
appears on stderr, a host that hits ``--host-timeout`` is reported with no ports, an address of
the wrong family is "skipped". Read with ``require_complete=True`` (as the engine does), such a
run raises :class:`NmapIncompleteScan`, so a partial run never closes findings on hosts it did
not look at.
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from autosec.domain.models import Location, Observation, Severity

OPEN_PORT = "nmap.open-port"
VERSION_DISCLOSED = "nmap.service-version-disclosed"
DATABASE_EXPOSED = "nmap.database-exposed"
RULE_IDS = (OPEN_PORT, VERSION_DISCLOSED, DATABASE_EXPOSED)

# nmap service names (nmap-services / nmap-service-probes) of database servers, with the name
# used in a title when nmap identified the protocol but not the product.
DATABASE_SERVICES: Mapping[str, str] = {
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "postgresql": "PostgreSQL",
    "ms-sql-s": "Microsoft SQL Server",
    "oracle-tns": "Oracle TNS listener",
    "oracle": "Oracle Database",
    "mongodb": "MongoDB",
    "mongod": "MongoDB",
    "redis": "Redis",
    "memcached": "Memcached",
    "couchdb": "CouchDB",
    "elasticsearch": "Elasticsearch",
    "cassandra": "Cassandra",
}
# Products nmap reports for databases behind another service name (Elasticsearch is "http").
_DATABASE_PRODUCT = re.compile(
    r"\b(mysql|mariadb|postgresql|microsoft sql server|oracle tns|oracle database|mongodb|redis|"
    r"memcached|couchdb|elasticsearch|cassandra)\b",
    re.IGNORECASE,
)
# Versions nmap infers from behaviour (error formats, feature sets) rather than reads from a
# banner: "9.6.0 or later", "3.X - 4.X", "before 1.3.1". They disclose nothing precise.
_INFERRED_VERSION = re.compile(
    r"\s-\s|\bor\b|\bbefore\b|\bafter\b|\blater\b|\bnewer\b|\bearlier\b|\bolder\b|\.[xX]\b",
    re.IGNORECASE,
)
_POSITION_SUFFIX = re.compile(r": line \d+, column \d+$")
_VERSION_LINE = re.compile(r"^Nmap version (\S+)", re.MULTILINE)

_VERSION_DESCRIPTION = (
    "The service announces its product and exact version to anyone who connects. An attacker "
    "can match that version against public vulnerability databases and exploit kits without "
    "sending a single suspicious request. Configure the service not to disclose its version "
    "(e.g. Apache ServerTokens Prod) and keep it patched."
)
_DATABASE_DESCRIPTION = (
    "A database server accepts TCP connections from the network the scanner runs on. Databases "
    "should only be reachable from the applications that use them: an exposed one invites "
    "credential guessing, exploitation of the server itself and data theft. Bind it to a "
    "private interface or restrict it with a firewall or security group."
)
_OPEN_PORT_DESCRIPTION = (
    "A network service accepts connections on this port. Every open port is attack surface: "
    "check that the service is meant to be reachable from here."
)


class NmapParseError(ValueError):
    """nmap output that is not a readable nmap XML report; the message says where and why."""


class NmapIncompleteScan(NmapParseError):
    """A readable report of a run that did not scan every target.

    ``unscanned`` lists each target with the reason; ``observations`` holds what the run did
    find, for a caller that records partial results without closing anything.
    """

    def __init__(self, unscanned: list[str], observations: list[Observation]) -> None:
        super().__init__("nmap did not scan every target: " + "; ".join(unscanned))
        self.unscanned = unscanned
        self.observations = observations


@dataclass
class _Port:
    protocol: str
    number: int
    state: str
    reason: str | None
    service: dict[str, str]
    cpes: list[str]


@dataclass
class _Host:
    state: str
    reason: str | None
    timed_out: bool
    addresses: list[str]
    user_names: list[str]
    ports: list[_Port]
    answered: bool


@dataclass
class _Run:
    """Run-level facts collected while the hosts stream past."""

    skipped: list[str] = field(default_factory=list)
    finished: bool = False
    exit_status: str | None = None
    error: str | None = None


def parse_nmap_xml(
    raw: bytes,
    asset_by_host: Mapping[str, str],
    engine_name: str = "nmap",
    *,
    require_complete: bool = False,
) -> list[Observation]:
    """Observations for the open ports of every host that belongs to an asset.

    ``asset_by_host`` maps an IP address, hostname or CIDR range to an asset id; a host matches
    by the name nmap was given for it, then by its address, then by the narrowest range holding
    it. Hosts that match no asset are skipped (see :func:`hosts_in` for what was seen). With
    ``require_complete`` every non-range key of ``asset_by_host`` must have been scanned to the
    end, or :class:`NmapIncompleteScan` is raised.
    """
    index = _AssetIndex(asset_by_host)
    run = _Run()
    observations: dict[tuple[str, str, Location], Observation] = {}
    unscanned: list[str] = []
    seen: set[str] = set()
    for host in _read_hosts(raw, run):
        seen.update(host.addresses)
        seen.update(host.user_names)
        label = (host.user_names or host.addresses or ["a host without an address"])[0]
        if host.state != "up":
            unscanned.append(f"{label} reported {host.state} ({host.reason or 'no reason'})")
            continue
        if host.timed_out:
            unscanned.append(f"{label} hit the host timeout before its scan finished")
        asset_id = index.asset_for(host)
        if asset_id is None:
            continue
        address = host.addresses[0] if host.addresses else label
        for port in host.ports:
            if port.state != "open":
                continue
            for observation in _port_observations(asset_id, address, host, port, engine_name):
                key = (observation.asset_id, observation.rule_id, observation.location)
                observations.setdefault(key, observation)
    found = list(observations.values())
    if require_complete:
        unscanned.extend(f"{spec} skipped by nmap" for spec in run.skipped)
        unscanned.extend(
            f"{key} is not in the output (not resolvable, or not scanned)"
            for key in index.exact_keys()
            if key not in seen
        )
        if not run.finished:
            unscanned.append("the report has no <runstats><finished>: nmap did not finish")
        elif run.exit_status != "success":
            unscanned.append(f"nmap reported exit {run.exit_status!r}: {run.error or 'no message'}")
        if unscanned:
            raise NmapIncompleteScan(unscanned, found)
    return found


def hosts_in(raw: bytes) -> set[str]:
    """Addresses of the hosts the run actually saw: up, and not merely assumed up.

    With ``-Pn`` nmap reports every target "up" (reason ``user-set``); such a host counts only
    when one of its ports answered (open, or closed with a reset). Used as evidence for blind
    spots, where an address nobody answered on proves nothing.
    """
    seen: set[str] = set()
    for host in _read_hosts(raw, _Run()):
        if host.state == "up" and (host.reason != "user-set" or host.answered):
            seen.update(host.addresses)
    return seen


def parse_nmap_version(output: str) -> str:
    """The version from ``nmap --version`` output (``Nmap version 7.93 ( https://nmap.org )``)."""
    match = _VERSION_LINE.search(output or "")
    if match is None:
        raise NmapParseError(f"no 'Nmap version' line in nmap --version output {output[:120]!r}")
    return match.group(1)


# ------------------------------------------------------------------------------------ reading


def _read_hosts(raw: bytes, run: _Run) -> Iterator[_Host]:
    """Stream the top-level ``<host>`` elements of an nmap report, as plain records."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"nmap output must be bytes, not {type(raw).__name__}")
    if not bytes(raw).strip():
        raise NmapParseError("empty nmap output: expected an nmap XML report (<nmaprun>)")
    depth = 0
    root: Element | None = None
    try:
        events = iterparse(io.BytesIO(bytes(raw)), events=("start", "end"), forbid_dtd=False)
        for event, element in events:
            if event == "start":
                if root is None:
                    if element.tag != "nmaprun":
                        raise NmapParseError(
                            f"not an nmap XML report: the root element is <{element.tag}>, "
                            "expected <nmaprun>"
                        )
                    root = element
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                if element.tag == "finished" and depth == 2:
                    run.finished = True
                    run.exit_status = element.get("exit")
                    run.error = element.get("errormsg")
                continue
            if element.tag == "host":
                yield _host_record(element)
            elif element.tag == "target" and element.get("status") == "skipped":
                spec = element.get("specification") or "?"
                run.skipped.append(f"{spec} ({element.get('reason') or 'no reason'})")
            element.clear()
            if root is not None:
                root.clear()  # keep the tree empty behind us: memory stays flat on big reports
    except ParseError as exc:
        line, column = exc.position
        problem = _POSITION_SUFFIX.sub("", str(exc))
        raise NmapParseError(
            f"malformed nmap XML at line {line}, column {column}: {problem}"
        ) from None
    except DefusedXmlException as exc:
        raise NmapParseError(f"refused nmap XML (unsafe construct): {exc}") from None


def _host_record(element: Element) -> _Host:
    status = element.find("status")
    addresses: list[str] = []
    for address in element.iterfind("address"):
        if address.get("addrtype") in ("ipv4", "ipv6") and address.get("addr"):
            addresses.append(_canonical_ip(address.get("addr", "")))
    # Only the names nmap was given ("user"); a PTR name is whatever the address owner says.
    user_names = [
        _canonical_name(hostname.get("name") or "")
        for hostname in element.iterfind("hostnames/hostname")
        if hostname.get("type") == "user" and hostname.get("name")
    ]
    ports: list[_Port] = []
    answered = False
    for port in element.iterfind("ports/port"):
        state = port.find("state")
        state_name = state.get("state", "") if state is not None else ""
        answered = answered or state_name in ("open", "closed")
        if state_name != "open":
            continue  # only open ports become observations; keep nothing else in memory
        service = port.find("service")
        ports.append(
            _Port(
                protocol=port.get("protocol", "tcp"),
                number=_port_number(port.get("portid")),
                state=state_name,
                reason=state.get("reason") if state is not None else None,
                service=dict(service.attrib) if service is not None else {},
                cpes=[c.text for c in service.iterfind("cpe") if c.text]
                if service is not None
                else [],
            )
        )
    for extra in element.iterfind("ports/extraports"):
        answered = answered or extra.get("state") == "closed"
    return _Host(
        state=status.get("state", "unknown") if status is not None else "unknown",
        reason=status.get("reason") if status is not None else None,
        timed_out=element.get("timedout") == "true",
        addresses=addresses,
        user_names=user_names,
        ports=ports,
        answered=answered,
    )


def _port_number(value: str | None) -> int:
    try:
        number = int(value or "")
    except ValueError:
        raise NmapParseError(
            f"port element with a portid that is not a number: {value!r}"
        ) from None
    if not 0 <= number <= 65535:
        raise NmapParseError(f"port element with a portid out of range: {number}")
    return number


def _canonical_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _canonical_name(value: str) -> str:
    return value.strip().rstrip(".").lower()


class _AssetIndex:
    """``asset_by_host`` with canonical keys, and its ranges for containment lookups."""

    def __init__(self, asset_by_host: Mapping[str, str]) -> None:
        self._exact: dict[str, str] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        for key, asset_id in asset_by_host.items():
            text = str(key).strip()
            if "/" in text:
                try:
                    network = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    pass
                else:
                    self._networks.append((network, asset_id))
                    continue
            try:
                self._exact[str(ipaddress.ip_address(text))] = asset_id
            except ValueError:
                self._exact[_canonical_name(text)] = asset_id
        self._networks.sort(key=lambda item: item[0].prefixlen, reverse=True)

    def exact_keys(self) -> list[str]:
        return list(self._exact)

    def asset_for(self, host: _Host) -> str | None:
        # The name nmap was given for this host first: two targets may share one address.
        for name in (*host.user_names, *host.addresses):
            if name in self._exact:
                return self._exact[name]
        for address in host.addresses:
            ip = ipaddress.ip_address(address) if _is_ip(address) else None
            for network, asset_id in self._networks:
                if ip is not None and ip.version == network.version and ip in network:
                    return asset_id
        return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------- observations


def _port_observations(
    asset_id: str, address: str, host: _Host, port: _Port, engine_name: str
) -> list[Observation]:
    service = port.service
    name = service.get("name") or None
    product = service.get("product") or None
    version = service.get("version") or None
    evidence: dict[str, Any] = {
        "address": address,
        "hostnames": list(host.user_names),
        "service": name,
        "product": product,
        "version": version,
        "extrainfo": service.get("extrainfo") or None,
        "tunnel": service.get("tunnel") or None,
        "detection": service.get("method") or None,
        "confidence": _int_or_none(service.get("conf")),
        "cpe": list(port.cpes),
        "reason": port.reason,
    }
    location = Location(host=address, port=port.number, protocol=port.protocol)
    where = f"{port.number}/{port.protocol}"
    shown_name = f"ssl/{name}" if name and service.get("tunnel") == "ssl" else name

    def observation(rule_id: str, title: str, severity: Severity, **extra: Any) -> Observation:
        return Observation(
            asset_id=asset_id,
            engine=engine_name,
            rule_id=rule_id,
            title=title,
            severity=severity,
            location=location,
            evidence=dict(evidence),
            **extra,
        )

    found = [
        observation(
            OPEN_PORT,
            f"Open port {where}" + (f" ({shown_name})" if shown_name else ""),
            Severity.INFO,
            description=_OPEN_PORT_DESCRIPTION,
        )
    ]
    product_version = " ".join(p for p in (product, version) if p)
    if product and version and not _INFERRED_VERSION.search(version):
        found.append(
            observation(
                VERSION_DISCLOSED,
                f"Service discloses its version: {product_version}",
                Severity.LOW,
                description=_VERSION_DESCRIPTION,
                cwe="CWE-200",
            )
        )
    if _is_database(name, product, service.get("method")):
        label = product_version or DATABASE_SERVICES.get((name or "").lower(), name or "database")
        found.append(
            observation(
                DATABASE_EXPOSED,
                f"Database service reachable on the network: {label} on {where}",
                Severity.HIGH,
                description=_DATABASE_DESCRIPTION,
                cwe="CWE-668",
            )
        )
    return found


def _is_database(name: str | None, product: str | None, method: str | None) -> bool:
    """A database identified by a probe; a guess from the port number alone does not count."""
    if method == "table":
        return False
    if name and name.lower() in DATABASE_SERVICES:
        return True
    return bool(product and _DATABASE_PRODUCT.search(product))


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

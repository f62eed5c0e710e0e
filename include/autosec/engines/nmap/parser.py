"""Pure parser for nmap XML (``-oX``): open ports, disclosed versions, exposed databases, and
what the allowlisted NSE scripts saw (weak TLS, missing HTTP security headers, weak SSH).

Streams with defusedxml's ``iterparse`` (entity and external-reference bombs are refused; nmap's
own bare ``<!DOCTYPE nmaprun>`` is allowed) and clears each ``<host>`` after use, so memory stays
flat on large scans. Only stable fields go into a finding's location and rule id; reasons,
banners and timings stay in the evidence.

An nmap run can exit 0 without having scanned every target: a name that does not resolve only
appears on stderr, a host that hits ``--host-timeout`` is reported with no ports, an address of
the wrong family is "skipped". Read with ``require_complete=True`` (as the engine does), such a
run raises :class:`NmapIncompleteScan`, so a partial run never closes findings on hosts it did
not look at.

Script findings sit on the port, like the others (host, port, protocol), one per rule: the
weak protocols, ciphers, headers or algorithms themselves are evidence, so a port that drops
TLS 1.0 but keeps TLS 1.1 stays one open finding with new evidence. What counts as weak:

- ``ssl-enum-ciphers``: SSLv2, SSLv3, TLS 1.0 or 1.1 offered (RFC 8996); any cipher suite the
  script grades below A (anonymous or export key exchange, RC4, 3DES, NULL, weak DH).
- ``http-headers``: no Strict-Transport-Security on a TLS port; no Content-Security-Policy, no
  X-Frame-Options (or CSP ``frame-ancestors``), no ``X-Content-Type-Options: nosniff``. A
  redirect (a ``Location`` header) renders nothing, so only HSTS is asked of it.
- ``ssh2-enum-algos``: key exchanges RFC 9142 says not to use (group1, group-exchange with
  SHA-1), DSA host keys, CBC, RC4 (arcfour), 3DES, Blowfish, CAST and "none" ciphers, MD5,
  96-bit truncated and "none" MACs.
- ``http-title`` reports nothing on its own: the page title is evidence on the port's findings.

A script that nmap stopped at ``--script-timeout`` leaves no trace in the XML: its port simply
has no output, which reads as "nothing weak". The engine's script timeout is generous for that
reason.
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

TLS_WEAK_PROTOCOL = "nmap.tls-deprecated-protocol"
TLS_WEAK_CIPHER = "nmap.tls-weak-cipher"
HTTP_NO_HSTS = "nmap.http-missing-hsts"
HTTP_NO_CSP = "nmap.http-missing-csp"
HTTP_NO_FRAME_OPTIONS = "nmap.http-missing-x-frame-options"
HTTP_NO_CONTENT_TYPE_OPTIONS = "nmap.http-missing-x-content-type-options"
SSH_WEAK_KEX = "nmap.ssh-weak-kex"
SSH_WEAK_HOSTKEY = "nmap.ssh-weak-host-key"
SSH_WEAK_CIPHER = "nmap.ssh-weak-cipher"
SSH_WEAK_MAC = "nmap.ssh-weak-mac"
# The NSE scripts the engine may run (its allowlist, in argv order) and the rules each feeds.
SCRIPT_RULES: Mapping[str, tuple[str, ...]] = {
    "ssl-enum-ciphers": (TLS_WEAK_PROTOCOL, TLS_WEAK_CIPHER),
    "http-headers": (
        HTTP_NO_HSTS,
        HTTP_NO_CSP,
        HTTP_NO_FRAME_OPTIONS,
        HTTP_NO_CONTENT_TYPE_OPTIONS,
    ),
    "http-title": (),
    "ssh2-enum-algos": (SSH_WEAK_KEX, SSH_WEAK_HOSTKEY, SSH_WEAK_CIPHER, SSH_WEAK_MAC),
}
SCRIPTS = tuple(SCRIPT_RULES)
SCRIPT_RULE_IDS = frozenset(r for rules in SCRIPT_RULES.values() for r in rules)

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


@dataclass(frozen=True)
class _Script:
    """One script's result: its text output and its structured tables as plain data."""

    output: str
    data: Any


@dataclass
class _Port:
    protocol: str
    number: int
    state: str
    reason: str | None
    service: dict[str, str]
    cpes: list[str]
    scripts: dict[str, _Script] = field(default_factory=dict)


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
                scripts={
                    script.get("id", ""): _Script(script.get("output") or "", _table(script))
                    for script in port.iterfind("script")
                    if script.get("id") in SCRIPT_RULES
                },
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


def _table(element: Element) -> Any:
    """NSE structured output as plain data: keyed children make a dict, unkeyed a list."""
    children = [c for c in element if c.tag in ("table", "elem")]
    values = [_table(c) if c.tag == "table" else (c.text or "") for c in children]
    keys = [c.get("key") for c in children]
    if children and all(k is not None for k in keys):
        return dict(zip(keys, values, strict=True))
    if any(k is not None for k in keys):
        return {
            k if k is not None else str(i): v
            for i, (k, v) in enumerate(zip(keys, values, strict=True))
        }
    return values


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
    title = _http_title(port)
    if title is not None:
        evidence["http_title"] = title
    location = Location(host=address, port=port.number, protocol=port.protocol)
    where = f"{port.number}/{port.protocol}"
    shown_name = f"ssl/{name}" if name and service.get("tunnel") == "ssl" else name

    def observation(
        rule_id: str,
        title: str,
        severity: Severity,
        seen: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Observation:
        return Observation(
            asset_id=asset_id,
            engine=engine_name,
            rule_id=rule_id,
            title=title,
            severity=severity,
            location=location,
            evidence={**evidence, **(seen or {})},
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
    for finding in _script_findings(port):
        found.append(
            observation(
                finding.rule_id,
                finding.title,
                finding.severity,
                finding.evidence,
                description=finding.description,
                cwe=finding.cwe,
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


# ------------------------------------------------------------------------------------ scripts


@dataclass(frozen=True)
class _ScriptFinding:
    rule_id: str
    title: str
    severity: Severity
    description: str
    cwe: str
    evidence: dict[str, Any]


_GRADES = "ABCDEF"
_DEPRECATED_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
_CIPHER_SEVERITY = {"B": Severity.LOW, "C": Severity.MEDIUM, "D": Severity.MEDIUM}
_WEAK_SSH_KEX = re.compile(
    r"^(diffie-hellman-group1-sha1|diffie-hellman-group-exchange-sha1|gss-group1-sha1-.*|"
    r"gss-gex-sha1-.*|rsa1024-sha1)$"
)
_WEAK_SSH_HOSTKEY = re.compile(r"^(ssh-dss|ssh-dss-cert-v0[01]@openssh\.com|x509v3-ssh-dss)$")
_BROKEN_SSH_CIPHER = re.compile(r"^(arcfour.*|3des-.*|des|des-.*|blowfish-.*|cast128-.*|none)$")
_WEAK_SSH_CIPHER = re.compile(r"(-cbc(@.*)?$|^rijndael-cbc@lysator\.liu\.se$)")
_WEAK_SSH_MAC = re.compile(r"(md5|-96\b|^none$)")
# http-headers ends a response it read with this line; its absence means there was none.
_REQUEST_TYPE = re.compile(r"^\(Request type: [A-Z]+\)$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an RFC 9110 token
_SECURITY_HEADERS = {
    HTTP_NO_HSTS: "Strict-Transport-Security",
    HTTP_NO_CSP: "Content-Security-Policy",
    HTTP_NO_FRAME_OPTIONS: "X-Frame-Options",
    HTTP_NO_CONTENT_TYPE_OPTIONS: "X-Content-Type-Options",
}
_HEADER_ABOUT = {
    HTTP_NO_HSTS: (
        "CWE-319",
        "Without Strict-Transport-Security a browser that once reached this site over HTTPS "
        "can be downgraded to plain HTTP by anyone on the path (SSL stripping). Send "
        "Strict-Transport-Security: max-age=31536000 (add includeSubDomains where it fits).",
    ),
    HTTP_NO_CSP: (
        "CWE-693",
        "Without a Content-Security-Policy any injected script runs with the page's rights: "
        "the browser has no list of sources to refuse. Send a policy that names where scripts, "
        "styles and frames may come from.",
    ),
    HTTP_NO_FRAME_OPTIONS: (
        "CWE-1021",
        "The page may be framed by any site, which lets an attacker overlay it and trick users "
        "into clicks (clickjacking). Send X-Frame-Options: DENY (or SAMEORIGIN), or a "
        "Content-Security-Policy with frame-ancestors.",
    ),
    HTTP_NO_CONTENT_TYPE_OPTIONS: (
        "CWE-693",
        "Without X-Content-Type-Options: nosniff a browser may guess a response's type and run "
        "an uploaded text file as script. Send X-Content-Type-Options: nosniff.",
    ),
}
_TLS_PROTOCOL_DESCRIPTION = (
    "The service still negotiates protocol versions that RFC 8996 deprecates (SSL 3.0, TLS 1.0, "
    "TLS 1.1): they rely on broken constructions (CBC padding oracles, SHA-1/MD5 handshakes) "
    "and are refused by current browsers and compliance baselines (PCI DSS). Offer TLS 1.2 and "
    "1.3 only."
)
_TLS_CIPHER_DESCRIPTION = (
    "The service accepts cipher suites nmap's ssl-enum-ciphers grades below A: anonymous or "
    "export key exchange, RC4, 3DES (SWEET32), NULL encryption or weak Diffie-Hellman groups. "
    "A client that negotiates one can be impersonated or decrypted. Offer only ECDHE suites "
    "with AES-GCM or ChaCha20-Poly1305."
)
_SSH_ABOUT = {
    SSH_WEAK_KEX: (
        "key exchange methods",
        Severity.MEDIUM,
        "The SSH server offers key exchange methods RFC 9142 says not to use: the 1024-bit "
        "Oakley group 2 and SHA-1 based exchanges. Remove them from KexAlgorithms.",
    ),
    SSH_WEAK_HOSTKEY: (
        "host key algorithms",
        Severity.MEDIUM,
        "The SSH server signs with DSA host keys (1024-bit, SHA-1), disabled since OpenSSH "
        "7.0. Remove them from HostKeyAlgorithms and the HostKey files.",
    ),
    SSH_WEAK_CIPHER: (
        "ciphers",
        Severity.LOW,
        "The SSH server offers ciphers that are broken (RC4, DES, 3DES, Blowfish, CAST, none) or "
        "exposed to plaintext recovery (CBC modes). Offer only chacha20-poly1305, AES-GCM and "
        "AES-CTR in Ciphers.",
    ),
    SSH_WEAK_MAC: (
        "MACs",
        Severity.LOW,
        "The SSH server offers MD5 based, 96-bit truncated or no message authentication. Offer "
        "only the SHA-2 (preferably -etm@openssh.com) MACs.",
    ),
}
_SSH_TABLES = {
    SSH_WEAK_KEX: ("kex_algorithms", _WEAK_SSH_KEX),
    SSH_WEAK_HOSTKEY: ("server_host_key_algorithms", _WEAK_SSH_HOSTKEY),
    SSH_WEAK_CIPHER: ("encryption_algorithms", None),
    SSH_WEAK_MAC: ("mac_algorithms", _WEAK_SSH_MAC),
}


def _script_findings(port: _Port) -> list[_ScriptFinding]:
    found: list[_ScriptFinding] = []
    if "ssl-enum-ciphers" in port.scripts:
        found.extend(_tls_findings(port.scripts["ssl-enum-ciphers"]))
    if "http-headers" in port.scripts:
        found.extend(_header_findings(port.scripts["http-headers"], _is_tls(port)))
    if "ssh2-enum-algos" in port.scripts:
        found.extend(_ssh_findings(port.scripts["ssh2-enum-algos"]))
    return found


def _is_tls(port: _Port) -> bool:
    name = (port.service.get("name") or "").lower()
    return port.service.get("tunnel") == "ssl" or name in ("https", "https-alt", "ssl/http")


def _http_title(port: _Port) -> str | None:
    script = port.scripts.get("http-title")
    if script is None or not isinstance(script.data, dict):
        return None
    title = script.data.get("title")
    return title.strip() if isinstance(title, str) and title.strip() else None


def _tls_findings(script: _Script) -> list[_ScriptFinding]:
    data = script.data if isinstance(script.data, dict) else {}
    protocols = [p for p in data if isinstance(data[p], dict)]
    found: list[_ScriptFinding] = []
    deprecated = [p for p in _DEPRECATED_PROTOCOLS if p in protocols]
    if deprecated:
        found.append(
            _ScriptFinding(
                TLS_WEAK_PROTOCOL,
                f"Deprecated TLS protocol versions offered: {', '.join(deprecated)}",
                Severity.HIGH if {"SSLv2", "SSLv3"} & set(deprecated) else Severity.MEDIUM,
                _TLS_PROTOCOL_DESCRIPTION,
                "CWE-327",
                {"weak_protocols": deprecated, "protocols": protocols},
            )
        )
    weak: list[str] = []
    grades: list[str] = []
    warnings: list[str] = []
    for protocol in protocols:
        ciphers = data[protocol].get("ciphers")
        for cipher in ciphers if isinstance(ciphers, list) else []:
            if not isinstance(cipher, dict):
                continue
            grade = str(cipher.get("strength", "")).strip().upper()
            if grade in _GRADES and grade != "A":
                grades.append(grade)
                weak.append(f"{protocol} {cipher.get('name', '?')} ({grade})")
        notes = data[protocol].get("warnings")
        for note in notes if isinstance(notes, list) else []:
            if isinstance(note, str) and note not in warnings:
                warnings.append(note)
    if weak:
        least = max(grades, key=_GRADES.index)
        found.append(
            _ScriptFinding(
                TLS_WEAK_CIPHER,
                f"Weak TLS cipher suites accepted (least strength {least})",
                _CIPHER_SEVERITY.get(least, Severity.HIGH),
                _TLS_CIPHER_DESCRIPTION,
                "CWE-326",
                {"weak_ciphers": weak, "least_strength": least, "warnings": warnings},
            )
        )
    return found


def _header_findings(script: _Script, tls: bool) -> list[_ScriptFinding]:
    lines = [line.strip() for line in script.output.splitlines()]
    if not any(_REQUEST_TYPE.match(line) for line in lines):
        return []  # no response to judge: "ERROR: Header request failed" or foreign output
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and _HEADER_NAME.match(name):
            headers.setdefault(name.lower(), value.strip())
    missing: list[str] = []
    if tls and "strict-transport-security" not in headers:
        missing.append(HTTP_NO_HSTS)
    if "location" not in headers:
        csp = headers.get("content-security-policy", "")
        if not csp:
            missing.append(HTTP_NO_CSP)
        if "x-frame-options" not in headers and "frame-ancestors" not in csp.lower():
            missing.append(HTTP_NO_FRAME_OPTIONS)
        if headers.get("x-content-type-options", "").lower() != "nosniff":
            missing.append(HTTP_NO_CONTENT_TYPE_OPTIONS)
    found = []
    for rule_id in missing:
        cwe, description = _HEADER_ABOUT[rule_id]
        found.append(
            _ScriptFinding(
                rule_id,
                f"HTTP response without {_SECURITY_HEADERS[rule_id]}",
                Severity.LOW,
                description,
                cwe,
                {"response_headers": sorted(headers)},
            )
        )
    return found


def _ssh_findings(script: _Script) -> list[_ScriptFinding]:
    data = script.data if isinstance(script.data, dict) else {}
    found = []
    for rule_id, (table, pattern) in _SSH_TABLES.items():
        offered = [a for a in data.get(table, []) if isinstance(a, str)]
        if rule_id == SSH_WEAK_CIPHER:
            weak = [a for a in offered if _BROKEN_SSH_CIPHER.match(a) or _WEAK_SSH_CIPHER.search(a)]
        else:
            weak = [a for a in offered if pattern is not None and pattern.search(a)]
        if not weak:
            continue
        label, severity, description = _SSH_ABOUT[rule_id]
        if rule_id == SSH_WEAK_CIPHER and any(_BROKEN_SSH_CIPHER.match(a) for a in weak):
            severity = Severity.MEDIUM
        found.append(
            _ScriptFinding(
                rule_id,
                f"Weak SSH {label} offered: {', '.join(weak)}",
                severity,
                description,
                "CWE-327",
                {"weak": weak, "offered": offered},
            )
        )
    return found

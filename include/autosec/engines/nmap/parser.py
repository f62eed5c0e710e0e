"""Pure parser for nmap XML (-oX): open ports, disclosed versions, exposed databases.

Streams with defusedxml's iterparse (an entity or DTD bomb is refused) and clears each
<host> element after use, so memory stays flat on large scans. Only stable fields go into
a finding's location and rule id; reasons, TTLs and timings stay in the evidence.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from autosec.domain.models import Location, Observation, Severity

OPEN_PORT = "nmap.open-port"
VERSION_DISCLOSED = "nmap.service-version-disclosed"
DATABASE_EXPOSED = "nmap.database-exposed"
RULE_IDS = (OPEN_PORT, VERSION_DISCLOSED, DATABASE_EXPOSED)

DATABASE_SERVICES = frozenset({
    "mysql", "postgresql", "ms-sql-s", "oracle-tns", "oracle", "mongodb", "mongod", "redis",
    "memcached", "couchdb", "elasticsearch", "cassandra", "mariadb", "cockroachdb", "ms-sql",
})
_DATABASE_PRODUCT = re.compile(
    r"mysql|mariadb|postgres|microsoft sql|oracle|mongodb|redis|memcached|couchdb|"
    r"elasticsearch|cassandra",
    re.IGNORECASE,
)


class NmapParseError(ValueError):
    """nmap output that is not a readable nmap XML report; the message says where."""


def parse_nmap_xml(
    raw: bytes, asset_by_host: Mapping[str, str], engine_name: str = "nmap"
) -> list[Observation]:
    observations: list[Observation] = []
    for host in _hosts(raw):
        asset_id = _asset_for(host, asset_by_host)
        if asset_id is None:
            continue
        address = _address(host)
        for port in host.iterfind("ports/port"):
            state = port.find("state")
            if state is None or state.get("state") != "open":
                continue
            observations.extend(_port_observations(asset_id, address, port, engine_name))
    return observations


def hosts_in(raw: bytes) -> set[str]:
    """Addresses of the hosts nmap reported up (for discovery evidence)."""
    return {
        address
        for host in _hosts(raw)
        if (host.find("status") is None or host.find("status").get("state") == "up")
        and (address := _address(host))
    }


def parse_nmap_version(output: str) -> str:
    match = re.search(r"Nmap version (\S+)", output)
    if not match:
        raise ValueError(f"cannot read the nmap version from {output[:80]!r}")
    return match.group(1)


def _hosts(raw: bytes) -> Iterator[Element]:
    if not raw or not raw.strip():
        raise NmapParseError("empty nmap output: expected an <nmaprun> XML document")
    seen_root = False
    try:
        for event, element in iterparse(io.BytesIO(raw), events=("start", "end"),
                                        forbid_dtd=False):
            if event == "start" and not seen_root:
                if element.tag != "nmaprun":
                    raise NmapParseError(f"not an nmap XML report: root element <{element.tag}>")
                seen_root = True
            if event == "end" and element.tag == "host":
                yield element
                element.clear()
    except ParseError as exc:
        line, column = exc.position
        raise NmapParseError(f"malformed nmap XML at line {line}, column {column}: {exc}") from None
    except DefusedXmlException as exc:
        raise NmapParseError(f"refused nmap XML: {exc}") from None


def _address(host: Element) -> str | None:
    for kind in ("ipv4", "ipv6"):
        element = host.find(f"address[@addrtype='{kind}']")
        if element is not None and element.get("addr"):
            return element.get("addr")
    return None


def _asset_for(host: Element, asset_by_host: Mapping[str, str]) -> str | None:
    address = _address(host)
    if address and address in asset_by_host:
        return asset_by_host[address]
    for hostname in host.iterfind("hostnames/hostname"):
        name = (hostname.get("name") or "").lower().rstrip(".")
        if name in asset_by_host:
            return asset_by_host[name]
    return None


def _port_observations(
    asset_id: str, address: str | None, port: Element, engine_name: str
) -> list[Observation]:
    protocol = port.get("protocol", "tcp")
    number = int(port.get("portid", "0"))
    service = port.find("service")
    info: dict[str, Any] = {
        "service": service.get("name") if service is not None else None,
        "product": service.get("product") if service is not None else None,
        "version": service.get("version") if service is not None else None,
        "extrainfo": service.get("extrainfo") if service is not None else None,
        "cpe": [c.text for c in service.iterfind("cpe") if c.text] if service is not None else [],
        "reason": port.find("state").get("reason"),
    }
    location = Location(host=address, port=number, protocol=protocol)
    label = f"{number}/{protocol}" + (f" ({info['service']})" if info["service"] else "")
    observations = [
        Observation(
            asset_id=asset_id, engine=engine_name, rule_id=OPEN_PORT,
            title=f"Open port {label}", severity=Severity.INFO, location=location,
            description="A network service answers on this port.", evidence=info,
        )
    ]
    product_version = " ".join(p for p in (info["product"], info["version"]) if p)
    if info["product"] and info["version"]:
        observations.append(
            Observation(
                asset_id=asset_id, engine=engine_name, rule_id=VERSION_DISCLOSED,
                title=f"Service discloses its version: {product_version}",
                severity=Severity.LOW, location=location, cwe="CWE-200",
                description=(
                    "The service banner names its product and exact version, which tells an "
                    "attacker which known vulnerabilities to try. Hide the version and keep the "
                    "software patched."
                ),
                evidence=info,
            )
        )
    if _is_database(info):
        observations.append(
            Observation(
                asset_id=asset_id, engine=engine_name, rule_id=DATABASE_EXPOSED,
                title=f"Database service reachable on the network: "
                f"{product_version or info['service']} on {number}/{protocol}",
                severity=Severity.HIGH, location=location, cwe="CWE-668",
                description=(
                    "A database answers on the network. Databases should only be reachable "
                    "from the applications that use them: restrict it by firewall or binding."
                ),
                evidence=info,
            )
        )
    return observations


def _is_database(info: Mapping[str, Any]) -> bool:
    if (info.get("service") or "").lower() in DATABASE_SERVICES:
        return True
    return bool(_DATABASE_PRODUCT.search(info.get("product") or ""))

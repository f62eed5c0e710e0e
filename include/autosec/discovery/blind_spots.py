"""Match what discovery saw against the inventory; what matches nothing is a blind spot.

Pure: no network, no DNS. An observed address matches an asset when it equals one of the asset's
IP addresses, lies inside one of its CIDR ranges, or equals the host of one of its URLs (or one
of its hostnames, compared case-insensitively). Hostnames are not resolved here: a discovery
source that wants name-based matching reports the name it saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from autosec.domain.models import Asset, BlindSpot

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METHODS = {"tcp_sweep": "tcp connect sweep"}


class Observed(Protocol):
    """What a discovery source saw: an address and port, with optional banner and latency."""

    address: str
    port: int


@dataclass
class _Index:
    ips: set[_IPAddress]
    networks: list[_IPNetwork]
    names: set[str]

    def knows(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return address.strip().rstrip(".").lower() in self.names
        return ip in self.ips or any(ip in network for network in self.networks)


def _ip(value: str) -> _IPAddress | None:
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _index(assets: Iterable[Asset]) -> _Index:
    index = _Index(set(), [], set())
    for asset in assets:
        for address in asset.addresses:
            host = urlsplit(address).hostname if "://" in address else address
            if not host:
                continue
            ip = _ip(host)
            if ip is not None:
                index.ips.add(ip)
                continue
            if "/" in host:
                try:
                    index.networks.append(ipaddress.ip_network(host.strip(), strict=False))
                    continue
                except ValueError:
                    pass
            index.names.add(host.strip().rstrip(".").lower())
    return index


def find_blind_spots(
    open_ports: Iterable[Observed],
    assets: Iterable[Asset],
    source: str = "tcp_sweep",
    *,
    now: datetime,
) -> list[BlindSpot]:
    """One :class:`BlindSpot` per (address, port) that no asset accounts for, sorted.

    ``now`` is injected (not read from the clock) so the result is reproducible.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    index = _index(assets)
    found: dict[tuple[str, int], BlindSpot] = {}
    for observed in open_ports:
        key = (observed.address, observed.port)
        if key in found or index.knows(observed.address):
            continue
        evidence: dict[str, Any] = {
            "port": observed.port,
            "banner": getattr(observed, "banner", None),
            "latency_ms": getattr(observed, "latency_ms", None),
            "method": METHODS.get(source, source),
            "source": source,
        }
        found[key] = BlindSpot(observed.address, observed.port, source, evidence, now)
    return sorted(found.values(), key=_sort_key)


def _sort_key(spot: BlindSpot) -> tuple[int, Any, str, int]:
    ip = _ip(spot.address)
    if ip is None:
        return (1, 0, spot.address, spot.port or 0)
    return (0, (ip.version, int(ip)), "", spot.port or 0)

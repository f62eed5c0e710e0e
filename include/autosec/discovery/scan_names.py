"""Discovery source: names the scan engines saw that no inventory asset carries.

The tls engine lists the DNS names of every certificate it read (rule ``tls.names-seen``) and
the http engine the hosts a URL redirected to (rule ``http.redirect``), both in the
observation's ``evidence["names_seen"]``. A certificate for ``shop.example.com`` that also
names ``admin.shop.example.com``, or a login page that redirects to ``sso.example.com``, tells
of hosts the organisation runs; when no asset carries such a name, it is a blind spot.

Only names inside the organisation's DNS zones become blind spots: the zones of the DNS
discovery config, the zones of the blind-spot assignment rules, and any listed here. A name
outside them (a CDN's, a payment provider's, an identity provider's) is somebody else's host:
it is counted (``out_of_zone``) and never recorded, so third parties never flood the blind
spots. With no zone configured, nothing can be judged ours and nothing is recorded. A wildcard
(``*.example.com``) names no host and an address is left to the TCP sweep; both are counted.

``get`` turns the store's rows (``store.discovery.names_seen_by_scans``: one row per name,
asset and rule, with the latest scan run that saw it) into :class:`NameSighting` s, skipping and
reporting names that are not valid host names (a certificate may hold anything); ``transform``
(pure) matches them against the inventory and the zones. A blind spot's evidence says which
assets' certificates or redirects mentioned the name, in which scan runs, and when.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autosec.discovery.blind_spots import _index
from autosec.domain.models import Asset, BlindSpot
from autosec.domain.targets import InvalidTarget, TargetKind, validate_target

NAME = "scan_names"
TLS_NAMES_SEEN = "tls.names-seen"
HTTP_REDIRECT = "http.redirect"
RULES = (TLS_NAMES_SEEN, HTTP_REDIRECT)
# The engines whose runs report these rules: a window with none of their runs saw nothing.
ENGINES = ("tls", "http")
METHODS = {TLS_NAMES_SEEN: "TLS certificate names", HTTP_REDIRECT: "HTTP redirect targets"}
EVIDENCE_MAX_SIGHTINGS = 20
EVIDENCE_MAX_IDS = 50
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class ScanNamesConfig(BaseModel):
    """How far back to read scan results, and zones of the organisation besides the DNS
    discovery zones and the assignment rules' zones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    lookback_days: int = Field(30, ge=1, le=365)
    zones: list[str] = Field(default_factory=list)

    @field_validator("zones")
    @classmethod
    def _zones_are_names(cls, zones: list[str]) -> list[str]:
        canonical = []
        for value in zones:
            try:
                target = validate_target(value)
            except InvalidTarget as exc:
                raise ValueError(f"zone {value!r}: {exc.problem}") from None
            if target.kind is not TargetKind.HOSTNAME:
                raise ValueError(f"zone {value!r} is a {target.kind.value}: give a domain name")
            canonical.append(_canonical(target.value))
        return list(dict.fromkeys(canonical))


@dataclass(frozen=True)
class NameSighting:
    """One name as one rule saw it on one asset: the latest run that did, and how often."""

    name: str
    rule_id: str
    engine: str
    asset_id: str
    scan_run_id: int
    seen_at: datetime | None
    where: str
    times: int = 1

    def as_evidence(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "rule_id": self.rule_id,
            "engine": self.engine,
            "scan_run_id": self.scan_run_id,
            "where": self.where,
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
            "times": self.times,
        }


@dataclass
class ScanNames:
    """What the scans saw: valid sightings, and what was set aside (with reasons)."""

    sightings: list[NameSighting] = field(default_factory=list)
    skipped: list[tuple[str, str | None, str]] = field(default_factory=list)
    wildcards: int = 0
    addresses: int = 0

    def rejections(self) -> list[tuple[str, str | None, str]]:
        """(location, value, reason) for the store's input_rejections."""
        return list(self.skipped)


@dataclass
class ScanNamesMatch:
    blind_spots: list[BlindSpot]
    out_of_zone: list[str]
    explained: list[str]


def get(rows: Iterable[Mapping[str, Any]]) -> ScanNames:
    """The store's rows as sightings. Each row: name, rule_id, engine, asset_id, scan_run_id,
    finished_at, location (the observation's), times. Invalid names are skipped, reported."""
    found = ScanNames()
    for row in rows:
        raw = row.get("name")
        where = _where(row.get("location"))
        location = f"scan_run:{row.get('scan_run_id')} {row.get('asset_id')} {row.get('rule_id')}"
        if isinstance(raw, str) and raw.strip().startswith("*."):
            found.wildcards += 1
            continue
        try:
            target = validate_target(raw)
        except InvalidTarget as exc:
            found.skipped.append((location, _printable(raw), f"name seen by a scan: {exc}"))
            continue
        if target.kind is TargetKind.IP:
            found.addresses += 1
            continue
        if target.kind is not TargetKind.HOSTNAME:
            found.skipped.append(
                (location, _printable(raw), f"name seen by a scan is a {target.kind.value}")
            )
            continue
        found.sightings.append(
            NameSighting(
                name=_canonical(target.value),
                rule_id=str(row.get("rule_id")),
                engine=str(row.get("engine")),
                asset_id=str(row.get("asset_id")),
                scan_run_id=int(row.get("scan_run_id") or 0),
                seen_at=row.get("finished_at"),
                where=where,
                times=int(row.get("times") or 1),
            )
        )
    return found


def match(
    observed: ScanNames,
    assets: Iterable[Asset],
    zones: Sequence[str],
    source: str = NAME,
    *,
    now: datetime,
) -> ScanNamesMatch:
    """Blind spots for the in-zone names no asset carries; the rest counted. Pure.

    A name is carried by an asset when it is one of the asset's host names or URL hosts, or
    the asset's own name. Names are not resolved here (DNS discovery resolves the zones).
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    assets = list(assets)
    index = _index(assets)
    index.names |= {_canonical(a.name) for a in assets if a.name}
    wanted = [_canonical(z) for z in zones if _canonical(z)]
    by_name: dict[str, list[NameSighting]] = defaultdict(list)
    for sighting in observed.sightings:
        by_name[sighting.name].append(sighting)
    spots, out_of_zone, explained = [], [], []
    for name in sorted(by_name, key=lambda n: n.split(".")[::-1]):
        if index.knows(name):
            explained.append(name)
            continue
        zone = _zone_of(name, wanted)
        if zone is None:
            out_of_zone.append(name)
            continue
        spots.append(BlindSpot(name, 0, source, _evidence(by_name[name], zone, source), now))
    return ScanNamesMatch(spots, out_of_zone, explained)


def transform(
    observed: ScanNames,
    assets: Iterable[Asset],
    zones: Sequence[str] = (),
    source: str = NAME,
    *,
    now: datetime,
) -> list[BlindSpot]:
    """The in-zone names scans saw that no inventory asset carries. Pure; see :func:`match`."""
    return match(observed, assets, zones, source, now=now).blind_spots


def _evidence(sightings: list[NameSighting], zone: str, source: str) -> dict[str, Any]:
    newest_first = sorted(
        sightings,
        key=lambda s: (s.seen_at is not None, s.seen_at or _EARLIEST, s.scan_run_id),
        reverse=True,
    )
    rules = sorted({s.rule_id for s in sightings})
    return {
        "names": [sightings[0].name],
        "zone": zone,
        "seen_by": [s.as_evidence() for s in newest_first[:EVIDENCE_MAX_SIGHTINGS]],
        "sightings_total": len(sightings),
        "asset_ids": sorted({s.asset_id for s in sightings})[:EVIDENCE_MAX_IDS],
        "scan_run_ids": sorted({s.scan_run_id for s in sightings})[-EVIDENCE_MAX_IDS:],
        "rules": rules,
        "method": ", ".join(METHODS.get(r, r) for r in rules),
        "source": source,
    }


def _zone_of(name: str, zones: Sequence[str]) -> str | None:
    """The longest configured zone ``name`` is in (or is), else None."""
    inside = [z for z in zones if name == z or name.endswith("." + z)]
    return max(inside, key=len) if inside else None


def _canonical(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _where(location: Any) -> str:
    if not isinstance(location, Mapping):
        return ""
    if location.get("url"):
        return _printable(location["url"])
    host, port = location.get("host"), location.get("port")
    if host and port:
        host = f"[{host}]" if _is_ipv6(str(host)) else host
        return _printable(f"{host}:{port}")
    return _printable(host or "")


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _printable(value: object, limit: int = 200) -> str:
    """``value`` with control characters escaped and cut to ``limit``: safe to store and log."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

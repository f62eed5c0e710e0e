"""discovery: look for what the inventory misses; keep what no inventory asset explains.

Each source records its own blind spots and resolves only its own, and only after a complete
run: a source that failed or stopped early resolves nothing. Names seen by scans resolve only
when some TLS or HTTP scan succeeded in their window: no scan, no evidence that a name is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autosec.config.estate import TcpSweepConfig
from autosec.discovery import blind_spots as matching
from autosec.discovery.assignment import AssignmentRule
from autosec.domain.models import BlindSpot
from autosec.store import discovery as store
from autosec.store import events, inventory
from autosec.store.db import Connection

SOURCE = "tcp_sweep"


@dataclass
class DiscoveryOutcome:
    source: str
    seen: int
    blind_spots: int
    new_blind_spot_ids: list[int]
    resolved: int
    open_addresses: list[str] = field(default_factory=list)
    rejected: int = 0
    complete: bool = True
    extra_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "blind_spots": self.blind_spots,
            "new": len(self.new_blind_spot_ids),
            "resolved": self.resolved,
            "rejected": self.rejected,
            **self.extra_counts,
        }


def run_tcp_sweep(
    conn: Connection,
    config: TcpSweepConfig,
    now: datetime,
    assignment_rules: Sequence[AssignmentRule] = (),
) -> DiscoveryOutcome:
    from autosec.discovery import tcp_sweep

    open_ports = tcp_sweep.get(
        tcp_sweep.SweepConfig(
            ranges=config.ranges,
            ports=config.ports,
            concurrency=config.concurrency,
            timeout_seconds=config.timeout_seconds,
        )
    )
    spots = matching.find_blind_spots(
        open_ports, inventory.load_assets(conn), source=SOURCE, now=now
    )
    outcome = _record(
        conn, SOURCE, len(open_ports), spots, now, complete=True, assignment_rules=assignment_rules
    )
    outcome.open_addresses = sorted({o.address for o in open_ports})
    return outcome


def run_dns(
    conn: Connection,
    config,
    now: datetime,
    addresses: Sequence[str] = (),
    assignment_rules: Sequence[AssignmentRule] = (),
):
    """Zone transfers, the wordlist and reverse lookups (of the swept addresses too)."""
    from autosec.discovery import dns

    observations = dns.get(config, addresses=addresses)
    result = dns.match(observations, inventory.load_assets(conn), now=now)
    rejected = inventory.record_rejections(conn, "discovery", "dns", observations.rejections())
    outcome = _record(
        conn,
        "dns",
        len(observations.records),
        result.blind_spots,
        now,
        observations.complete,
        assignment_rules=assignment_rules,
    )
    outcome.rejected = rejected
    return outcome


def run_billing(
    conn: Connection, config, now: datetime, assignment_rules: Sequence[AssignmentRule] = ()
) -> DiscoveryOutcome:
    """Accounts and projects paid for that no inventory source knows."""
    from autosec.discovery import billing

    rows = billing.get(config.path, provider=config.provider, max_bytes=config.max_bytes)
    result = billing.match(rows, inventory.load_assets(conn), now=now)
    rejected = inventory.record_rejections(
        conn, "discovery", "billing", [r.as_rejection() for r in result.rejects]
    )
    outcome = _record(
        conn,
        "billing",
        len(rows),
        result.blind_spots,
        now,
        complete=True,
        assignment_rules=assignment_rules,
    )
    outcome.rejected = rejected
    return outcome


def run_scan_names(
    conn: Connection,
    config,
    zones: Sequence[str],
    now: datetime,
    assignment_rules: Sequence[AssignmentRule] = (),
) -> DiscoveryOutcome:
    """Names in the certificates and redirects of recent scans that no asset carries, inside
    the organisation's ``zones`` (see ``autosec.discovery.scan_names``)."""
    from autosec.discovery import scan_names

    if not config.enabled:
        return DiscoveryOutcome(
            scan_names.NAME, 0, 0, [], 0, complete=False, notes=["scan_names: disabled"]
        )
    since = now - timedelta(days=config.lookback_days)
    observed = scan_names.get(store.names_seen_by_scans(conn, since, scan_names.RULES))
    result = scan_names.match(observed, inventory.load_assets(conn), zones, now=now)
    rejected = inventory.record_rejections(
        conn, "discovery", scan_names.NAME, observed.rejections()
    )
    runs = store.succeeded_scan_runs(conn, since, scan_names.ENGINES)
    outcome = _record(
        conn,
        scan_names.NAME,
        len({s.name for s in observed.sightings}),
        result.blind_spots,
        now,
        complete=runs > 0,
        assignment_rules=assignment_rules,
    )
    outcome.rejected = rejected
    outcome.extra_counts = {
        "explained": len(result.explained),
        "out_of_zone": len(result.out_of_zone),
        "wildcards": observed.wildcards,
        "addresses": observed.addresses,
        "scan_runs": runs,
    }
    if not zones:
        outcome.notes.append(
            "scan_names: no DNS zone of the organisation is configured (discovery.dns.zones, "
            "zone assignment rules or discovery.scan_names.zones): no name can be judged ours"
        )
    if result.out_of_zone:
        sample = ", ".join(result.out_of_zone[:10])
        outcome.notes.append(f"scan_names: outside the organisation's zones, not kept: {sample}")
    if runs == 0:
        outcome.notes.append(
            f"scan_names: no tls or http scan succeeded in the last {config.lookback_days} "
            "days: nothing resolved"
        )
    return outcome


def _record(
    conn: Connection,
    source: str,
    seen: int,
    spots: Sequence[BlindSpot],
    now: datetime,
    complete: bool,
    assignment_rules: Sequence[AssignmentRule] = (),
) -> DiscoveryOutcome:
    stored = store.record_blind_spots(conn, spots)
    resolved = 0
    if complete:
        resolved = store.resolve_known(conn, source, [(s.address, s.port or 0) for s in spots], now)
    new = [(spot, spot_id) for spot, (spot_id, is_new) in zip(spots, stored, strict=True) if is_new]
    events.emit_many(
        conn,
        "blind_spot.found",
        [
            (f"{spot.address}:{spot.port}", {"id": spot_id, **spot.evidence})
            for spot, spot_id in new
        ],
    )
    if assignment_rules:
        store.assign_blind_spots(conn, assignment_rules, now, [i for i, _ in stored])
    conn.commit()
    return DiscoveryOutcome(
        source, seen, len(spots), [i for _, i in new], resolved, complete=complete
    )

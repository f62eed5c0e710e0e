"""discovery: sweep the configured ranges and keep what no inventory asset explains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from autosec.config.estate import TcpSweepConfig
from autosec.discovery import blind_spots as matching
from autosec.store import discovery as store
from autosec.store import events, inventory
from autosec.store.db import Connection

SOURCE = "tcp_sweep"


@dataclass
class DiscoveryOutcome:
    open_ports: int
    blind_spots: int
    new_blind_spot_ids: list[int]
    resolved: int


def run_tcp_sweep(conn: Connection, config: TcpSweepConfig, now: datetime) -> DiscoveryOutcome:
    from autosec.discovery import tcp_sweep

    open_ports = tcp_sweep.get(
        tcp_sweep.SweepConfig(
            ranges=config.ranges,
            ports=config.ports,
            concurrency=config.concurrency,
            timeout_seconds=config.timeout_seconds,
        )
    )
    assets = inventory.load_assets(conn)
    spots = matching.find_blind_spots(open_ports, assets, source=SOURCE, now=now)
    stored = store.record_blind_spots(conn, spots)
    resolved = store.resolve_known(conn, SOURCE, [(s.address, s.port or 0) for s in spots], now)
    new = [(spot, spot_id) for spot, (spot_id, is_new) in zip(spots, stored, strict=True) if is_new]
    events.emit_many(
        conn,
        "blind_spot.found",
        [
            (f"{spot.address}:{spot.port}", {"id": spot_id, **spot.evidence})
            for spot, spot_id in new
        ],
    )
    conn.commit()
    return DiscoveryOutcome(len(open_ports), len(spots), [i for _, i in new], resolved)

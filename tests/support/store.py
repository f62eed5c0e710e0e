"""Seeding the store through the real path: an inventory sync, then nmap scan runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from autosec.domain.models import Asset, Location, Observation, Severity
from autosec.store import inventory, scans


def sync_inventory(conn, assets: Iterable[Asset], at: datetime) -> None:
    """One committed sync of the 'cmdb' file source holding ``assets``."""
    sync = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, sync, "cmdb", list(assets), at)
    conn.commit()


def port_finding(
    asset_id: str, host: str, port: int, severity: Severity, rule_id: str, title: str
) -> Observation:
    """An nmap observation on ``host:port/tcp``."""
    return Observation(
        asset_id,
        "nmap",
        rule_id,
        title,
        severity,
        Location(host=host, port=port, protocol="tcp"),
    )


def nmap_run(
    conn,
    asset_id: str,
    observations: Sequence[Observation],
    at: datetime,
    scope: dict[str, Any],
    status: str = "succeeded",
) -> int:
    """One finished nmap scan run over ``asset_id`` reporting ``observations``."""
    run = scans.start_scan_run(conn, "nmap", [asset_id], scope, ["nmap"], at)
    scans.add_observations(conn, run, observations)
    scans.finish_scan_run(conn, run, status, at)
    return run

"""inventory_sync: get -> transform -> validate -> load -> sweep, per source.

A source that cannot be read retires nothing. Rows that fail validation are quarantined
with their file, line and reason, and an asset whose row was quarantined is not retired
because of it: a typo in the inventory must not make an asset disappear. The quarantined rows
of a sync, with their reasons, go to the source's owner as one ``inventory.quarantined`` event.

After syncs, :func:`record_quality` writes the day's inventory quality figures (owners,
environments, stale assets per source) for the posture report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autosec.config.estate import AnySourceConfig
from autosec.config.source_sync import UNSCHEDULED_STALE_DAYS
from autosec.inventory.registry import get_source
from autosec.store import events, inventory
from autosec.store import inventory_quality as quality_store
from autosec.store.db import Connection

# How many quarantined rows one event lists; all of them are in input_rejections.
QUARANTINE_EVENT_ROWS = 50


@dataclass
class SyncOutcome:
    source: str
    sync_run_id: int
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    changed_asset_ids: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    failed_expectations: list[str] = field(default_factory=list)
    error: str | None = None


def sync_source(
    conn: Connection,
    source: AnySourceConfig,
    path: str | None,
    now: datetime,
    run_ref: str | None = None,
    *,
    endpoint: Any = None,
    session: Any = None,
) -> SyncOutcome:
    """Sync one source completely; raises after recording a failed sync if it cannot be read."""
    from autosec.inventory.quality import validate_batch

    module = get_source(source.kind)
    sync_run_id = inventory.start_sync(conn, source.name, source.kind, run_ref)
    try:
        if source.kind == "file":
            batch = module.transform(module.get(path, fmt=source.format), source.name)
        else:
            batch = module.collect(source, endpoint, session)
        quality = validate_batch(batch)
    except Exception as exc:
        inventory.finish_sync(conn, sync_run_id, "failed", {}, error=str(exc))
        raise

    rejects = list(batch.rejects) + list(quality.quarantined)
    inventory.record_rejections(
        conn,
        "inventory",
        source.name,
        [(r.position, _short(r.raw), r.reason) for r in rejects],
        run_ref=f"sync_run:{sync_run_id}",
    )
    warnings = list(getattr(batch, "warnings", []))
    if warnings:
        inventory.record_rejections(
            conn,
            "inventory_warning",
            source.name,
            [(w.position, _short(w.raw), w.reason) for w in warnings],
            run_ref=f"sync_run:{sync_run_id}",
        )
    accepted_ids = {a.id for a in quality.accepted}
    protected = {
        r.asset_id
        for r in rejects
        if getattr(r, "asset_id", None) and r.asset_id not in accepted_ids
    }
    unidentified = [r for r in rejects if not getattr(r, "asset_id", None)]
    # An unidentifiable quarantined row could be any asset: sweep nothing rather than guess.
    sweep = not unidentified
    accepted = list(quality.accepted)
    kept = _assets_kept(conn, source.name, protected)
    still_listed = accepted + kept
    changes = inventory.apply_source_snapshot(
        conn, sync_run_id, source.name, still_listed, now, sweep=sweep
    )
    status = "succeeded" if not rejects else "partial"
    counts = {
        **changes.counts(),
        "quarantined": len(rejects),
        "accepted": len(accepted),
        "warnings": len(warnings),
        "kept": len(kept),
    }
    inventory.finish_sync(conn, sync_run_id, status, counts)
    if rejects:
        events.emit(
            conn, "input.rejected", source.name, {"sync_run_id": sync_run_id, "rows": len(rejects)}
        )
        events.emit(
            conn,
            "inventory.quarantined",
            f"inventory_source:{source.name}",
            quarantine_report(source, sync_run_id, rejects, quality.failed_expectations),
        )
    conn.commit()
    return SyncOutcome(
        source=source.name,
        sync_run_id=sync_run_id,
        status=status,
        counts=counts,
        changed_asset_ids=changes.changed_asset_ids,
        quarantined=[f"{r.position}: {r.reason}" for r in rejects],
        failed_expectations=list(quality.failed_expectations),
    )


def quarantine_report(
    source: AnySourceConfig,
    sync_run_id: int,
    rejects: Sequence[Any],
    failed_expectations: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``inventory.quarantined`` payload: for the source's owner, the rows and reasons."""
    owner = getattr(source, "owner", None)
    rows = [
        {"position": r.position, "asset_id": getattr(r, "asset_id", None), "reason": r.reason}
        for r in rejects[:QUARANTINE_EVENT_ROWS]
    ]
    return {
        "source": source.name,
        "kind": source.kind,
        "owner": owner,
        "sync_run_id": sync_run_id,
        "rows_total": len(rejects),
        "rows": rows,
        "failed_expectations": list(failed_expectations),
        "summary": f"{len(rejects)} row(s) of inventory source {source.name} quarantined "
        f"(sync run {sync_run_id}; owner {owner or 'not configured'}); first: "
        f"{rejects[0].reason if rejects else ''}",
        "rejections_ref": f"sync_run:{sync_run_id}",
    }


def record_quality(
    conn: Connection, sources: Sequence[AnySourceConfig], now: datetime
) -> list[dict]:
    """Write today's inventory quality figures for every source, each with its stale window."""
    windows = {s.name: s.stale_after for s in sources}
    figures = quality_store.snapshot_quality(
        conn, now.date(), now, windows, default_stale_after_days=UNSCHEDULED_STALE_DAYS
    )
    conn.commit()
    return figures


def _assets_kept(conn: Connection, source: str, ids: set[str]) -> list:
    """Stored assets whose new row was quarantined: kept as they were, not retired."""
    if not ids:
        return []
    return [a for a in inventory.load_assets(conn, ids) if a.source == source]


def _short(raw: object, limit: int = 500) -> str:
    text = json.dumps(raw, default=str, sort_keys=True) if isinstance(raw, dict) else str(raw)
    return text if len(text) <= limit else text[:limit] + "…"

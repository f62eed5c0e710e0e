"""Assets, their change history and mark-and-sweep per source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autosec.domain.models import Asset, AssetKind, Criticality, Environment


@dataclass
class InventoryChanges:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed_asset_ids(self) -> list[str]:
        """Assets to scan at once: new or changed (retired ones are not scanned)."""
        return sorted(set(self.new) | set(self.changed))

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "retired": len(self.retired),
            "unchanged": self.unchanged,
            "conflicts": len(self.conflicts),
        }


def start_sync(conn: psycopg.Connection, source: str, kind: str, run_ref: str | None = None) -> int:
    row = conn.execute(
        "INSERT INTO sync_runs (source, kind, status, run_ref) VALUES (%s, %s, 'running', %s) "
        "RETURNING id",
        (source, kind, run_ref),
    ).fetchone()
    conn.commit()
    return int(row[0])


def finish_sync(
    conn: psycopg.Connection, sync_run_id: int, status: str, counts: dict, error: str | None = None
) -> None:
    conn.execute(
        "UPDATE sync_runs SET status = %s, counts = %s, error = %s, finished_at = now() "
        "WHERE id = %s",
        (status, Jsonb(counts), error, sync_run_id),
    )
    conn.commit()


def apply_source_snapshot(
    conn: psycopg.Connection,
    sync_run_id: int,
    source: str,
    assets: Sequence[Asset],
    now: datetime,
    sweep: bool = True,
) -> InventoryChanges:
    """Upsert one source's complete, successful snapshot and retire what it no longer lists.

    Only call this for a sync that succeeded: a failed source must retire nothing. Assets
    another source owns are left alone and reported as conflicts.
    """
    changes = InventoryChanges()
    with conn.transaction():
        existing = {
            row["id"]: row
            for row in conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM assets WHERE id = ANY(%s) FOR UPDATE", ([a.id for a in assets],)
            )
        }
        for asset in assets:
            before = existing.get(asset.id)
            if before is not None and before["source"] != source:
                changes.conflicts.append((asset.id, before["source"]))
                continue
            after = asset.identity()
            if before is None:
                _insert_asset(conn, asset, sync_run_id, now)
                _record_change(conn, asset.id, source, "new", None, after, sync_run_id, now)
                changes.new.append(asset.id)
                continue
            before_identity = _identity_of_row(before)
            _update_asset(conn, asset, sync_run_id, now)
            if before["status"] == "retired":
                _record_change(
                    conn, asset.id, source, "reactivated", before_identity, after, sync_run_id, now
                )
                changes.changed.append(asset.id)
            elif before_identity != after:
                kind = "owner_changed" if before_identity["owner"] != after["owner"] else "changed"
                _record_change(
                    conn, asset.id, source, kind, before_identity, after, sync_run_id, now
                )
                changes.changed.append(asset.id)
            else:
                changes.unchanged += 1
        if sweep:
            changes.retired = _sweep(conn, source, [a.id for a in assets], sync_run_id, now)
    return changes


def _sweep(
    conn: psycopg.Connection, source: str, kept_ids: list[str], sync_run_id: int, now: datetime
) -> list[str]:
    rows = conn.execute(
        "UPDATE assets SET status = 'retired', retired_at = %s, last_sync_run_id = %s "
        "WHERE source = %s AND status = 'active' AND NOT (id = ANY(%s)) RETURNING id",
        (now, sync_run_id, source, kept_ids),
    ).fetchall()
    retired = sorted(r[0] for r in rows)
    for asset_id in retired:
        _record_change(conn, asset_id, source, "retired", None, None, sync_run_id, now)
    return retired


def _insert_asset(conn: psycopg.Connection, asset: Asset, sync_run_id: int, now: datetime) -> None:
    conn.execute(
        "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, addresses, "
        "tags, status, first_seen, last_seen, last_sync_run_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'active', %s, %s, %s)",
        (
            asset.id,
            asset.name,
            asset.kind.value,
            asset.source,
            asset.owner,
            asset.environment.value,
            asset.criticality.value,
            list(asset.addresses),
            list(asset.tags),
            now,
            now,
            sync_run_id,
        ),
    )


def _update_asset(conn: psycopg.Connection, asset: Asset, sync_run_id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE assets SET name = %s, kind = %s, owner = %s, environment = %s, criticality = %s, "
        "addresses = %s, tags = %s, status = 'active', retired_at = NULL, last_seen = %s, "
        "last_sync_run_id = %s WHERE id = %s",
        (
            asset.name,
            asset.kind.value,
            asset.owner,
            asset.environment.value,
            asset.criticality.value,
            list(asset.addresses),
            list(asset.tags),
            now,
            sync_run_id,
            asset.id,
        ),
    )


def _record_change(
    conn: psycopg.Connection,
    asset_id: str,
    source: str,
    change: str,
    before: dict | None,
    after: dict | None,
    sync_run_id: int,
    now: datetime,
) -> None:
    conn.execute(
        "INSERT INTO asset_changes (asset_id, source, change, before, after, sync_run_id, at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            asset_id,
            source,
            change,
            Jsonb(before) if before is not None else None,
            Jsonb(after) if after is not None else None,
            sync_run_id,
            now,
        ),
    )


def _identity_of_row(row: dict) -> dict:
    return _asset_from_row(row).identity()


def _asset_from_row(row: dict) -> Asset:
    return Asset(
        id=row["id"],
        name=row["name"],
        kind=AssetKind(row["kind"]),
        source=row["source"],
        owner=row["owner"],
        environment=Environment(row["environment"]),
        criticality=Criticality(row["criticality"]),
        addresses=tuple(row["addresses"]),
        tags=tuple(row["tags"]),
    )


def load_assets(
    conn: psycopg.Connection, ids: Iterable[str] | None = None, active_only: bool = True
) -> list[Asset]:
    query = "SELECT * FROM assets WHERE true"
    params: list = []
    if ids is not None:
        query += " AND id = ANY(%s)"
        params.append(list(ids))
    if active_only:
        query += " AND status = 'active'"
    rows = conn.cursor(row_factory=dict_row).execute(query + " ORDER BY id", params).fetchall()
    return [_asset_from_row(row) for row in rows]


def record_rejections(
    conn: psycopg.Connection,
    stage: str,
    source: str,
    rejections: Iterable[tuple[str, str | None, str]],
    run_ref: str | None = None,
) -> int:
    """Store rejected input as (location, value, reason); returns how many were stored."""
    rows = [(stage, source, loc, value, reason, run_ref) for loc, value, reason in rejections]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO input_rejections (stage, source, location, value, reason, run_ref) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
        conn.commit()
    return len(rows)


def sync_runs_for(conn: psycopg.Connection, run_ref: str) -> list[dict]:
    """The syncs one orchestrated run made, with the assets each one changed."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT r.id, r.source, r.status, r.counts, r.error, coalesce(array_agg(DISTINCT "
            "c.asset_id) FILTER (WHERE c.change <> 'retired'), '{}') AS changed_asset_ids "
            "FROM sync_runs r LEFT JOIN asset_changes c ON c.sync_run_id = r.id "
            "WHERE r.run_ref = %s GROUP BY r.id ORDER BY r.id",
            (run_ref,),
        )
        .fetchall()
    )

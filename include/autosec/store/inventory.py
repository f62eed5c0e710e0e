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
    # Active assets of the source its snapshot did not list, kept because nothing was swept.
    unlisted: int = 0

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
            "unlisted": self.unlisted,
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


_STAGE_COLUMNS = (
    "id",
    "name",
    "kind",
    "source",
    "owner",
    "environment",
    "criticality",
    "addresses",
    "tags",
)
_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS asset_stage (id text PRIMARY KEY, name text NOT NULL, "
    "kind text NOT NULL, source text NOT NULL, owner text NOT NULL, environment text NOT NULL, "
    "criticality text NOT NULL, addresses text[] NOT NULL, tags text[] NOT NULL)"
)


_IDENTITY_TEMPLATE = (
    "jsonb_build_object('name', T.name, 'kind', T.kind, 'owner', T.owner, "
    "'environment', T.environment, 'criticality', T.criticality, "
    "'addresses', to_jsonb(ARRAY(SELECT x FROM unnest(T.addresses) x ORDER BY x COLLATE \"C\")), "
    "'tags', to_jsonb(ARRAY(SELECT x FROM unnest(T.tags) x ORDER BY x COLLATE \"C\")))"
)


def _identity_sql(alias: str) -> str:
    """The SQL twin of ``Asset.identity()``: arrays sorted by code point, like Python's sort."""
    return _IDENTITY_TEMPLATE.replace("T.", f"{alias}.")


_DIFF_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS asset_diff (id text PRIMARY KEY, change text NOT NULL, "
    "before jsonb, after jsonb NOT NULL)"
)
# Fixed SQL built from the constants above, never from input.
_DIFF = (
    "INSERT INTO asset_diff (id, change, before, after) "  # noqa: S608
    "SELECT id, CASE WHEN is_new THEN 'new' WHEN old_status = 'retired' THEN 'reactivated' "
    "WHEN before->>'owner' IS DISTINCT FROM after->>'owner' THEN 'owner_changed' "
    "ELSE 'changed' END, before, after FROM ("
    "SELECT s.id, a.id IS NULL AS is_new, a.status AS old_status, "
    f"CASE WHEN a.id IS NULL THEN NULL ELSE {_identity_sql('a')} END AS before, "
    f"{_identity_sql('s')} AS after "
    "FROM asset_stage s LEFT JOIN assets a ON a.id = s.id) d "
    "WHERE is_new OR old_status = 'retired' OR before <> after"
)
_UPDATE_CHANGED = (
    "UPDATE assets a SET name = s.name, kind = s.kind, owner = s.owner, "
    "environment = s.environment, criticality = s.criticality, addresses = s.addresses, "
    "tags = s.tags, status = 'active', retired_at = NULL, last_seen = %(now)s, "
    "last_sync_run_id = %(sync)s FROM asset_stage s, asset_diff d "
    "WHERE a.id = s.id AND d.id = s.id AND d.change <> 'new'"
)
_INSERT_NEW = (
    "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, addresses, "
    "tags, status, first_seen, last_seen, last_sync_run_id) "
    "SELECT s.id, s.name, s.kind, s.source, s.owner, s.environment, s.criticality, s.addresses, "
    "s.tags, 'active', %(now)s, %(now)s, %(sync)s FROM asset_stage s "
    "JOIN asset_diff d ON d.id = s.id AND d.change = 'new'"
)
_RECORD_CHANGES = (
    "INSERT INTO asset_changes (asset_id, source, change, before, after, sync_run_id, at) "
    "SELECT id, %(source)s, change, before, after, %(sync)s, %(now)s FROM asset_diff "
    "RETURNING asset_id, change"
)


def apply_source_snapshot(
    conn: psycopg.Connection,
    sync_run_id: int,
    source: str,
    assets: Sequence[Asset],
    now: datetime,
    sweep: bool = True,
) -> InventoryChanges:
    """Upsert one source's complete, successful snapshot and retire what it no longer lists.

    Set-based: the snapshot is COPYed into a staging table and compared in SQL, so a sync
    where 1% changed writes only that 1% (rows and history). An active asset is confirmed by
    its source's last successful sync (``sync_runs``); ``last_seen`` moves when it changes.

    Only call this for a sync that succeeded: a failed source must retire nothing. Assets
    another source owns are left alone and reported as conflicts. Without ``sweep``, the
    source's active assets the snapshot does not list are counted (``unlisted``): they are
    kept, but this sync does not confirm them.

    One snapshot of a source is applied at a time (a transaction-scoped advisory lock): the
    source's own DAG and the all-sources DAG may sync it at once, and each diff must see the
    other's result.
    """
    changes = InventoryChanges()
    unique = list({a.id: a for a in assets}.values())
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"autosec.inventory_source:{source}",)
        )
        conn.execute(_STAGE_DDL)
        conn.execute("TRUNCATE asset_stage")
        with conn.cursor() as cur:
            columns = ", ".join(_STAGE_COLUMNS)
            with cur.copy(f"COPY asset_stage ({columns}) FROM STDIN") as copy:
                copy.set_types(["text"] * 7 + ["text[]", "text[]"])
                for a in unique:
                    copy.write_row(
                        (
                            a.id,
                            a.name,
                            a.kind.value,
                            a.source,
                            a.owner,
                            a.environment.value,
                            a.criticality.value,
                            list(a.addresses),
                            list(a.tags),
                        )
                    )
        conflicts = conn.execute(
            "DELETE FROM asset_stage s USING assets a WHERE a.id = s.id AND a.source <> %s "
            "RETURNING s.id, a.source",
            (source,),
        ).fetchall()
        changes.conflicts = sorted((r[0], r[1]) for r in conflicts)
        params = {"source": source, "sync": sync_run_id, "now": now}
        conn.execute(_DIFF_DDL)
        conn.execute("TRUNCATE asset_diff")
        conn.execute(_DIFF)
        conn.execute(_INSERT_NEW, params)
        conn.execute(_UPDATE_CHANGED, params)
        recorded = conn.execute(_RECORD_CHANGES, params).fetchall()
        changes.new = sorted(r[0] for r in recorded if r[1] == "new")
        changes.changed = sorted(r[0] for r in recorded if r[1] != "new")
        changes.unchanged = len(unique) - len(conflicts) - len(recorded)
        if sweep:
            changes.retired = _sweep(conn, source, sync_run_id, now)
        else:
            changes.unlisted = _count_unlisted(conn, source)
        conn.execute("TRUNCATE asset_stage, asset_diff")
    return changes


def _sweep(conn: psycopg.Connection, source: str, sync_run_id: int, now: datetime) -> list[str]:
    """Retire the source's active assets its snapshot (in asset_stage) no longer lists."""
    rows = conn.execute(
        "WITH gone AS (UPDATE assets a SET status = 'retired', retired_at = %(now)s, "
        "last_sync_run_id = %(sync)s WHERE a.source = %(source)s AND a.status = 'active' "
        "AND NOT EXISTS (SELECT 1 FROM asset_stage s WHERE s.id = a.id) RETURNING a.id) "
        "INSERT INTO asset_changes (asset_id, source, change, before, after, sync_run_id, at) "
        "SELECT id, %(source)s, 'retired', NULL, NULL, %(sync)s, %(now)s FROM gone "
        "RETURNING asset_id",
        {"source": source, "sync": sync_run_id, "now": now},
    ).fetchall()
    return sorted(r[0] for r in rows)


def _count_unlisted(conn: psycopg.Connection, source: str) -> int:
    """The source's active assets its snapshot (in asset_stage) does not list."""
    row = conn.execute(
        "SELECT count(*) FROM assets a WHERE a.source = %s AND a.status = 'active' "
        "AND NOT EXISTS (SELECT 1 FROM asset_stage s WHERE s.id = a.id)",
        (source,),
    ).fetchone()
    return int(row[0])


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

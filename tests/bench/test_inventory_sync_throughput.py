"""Inventory sync throughput: a file source and a Backstage catalog, against a raw COPY upsert.

The sync path is the one the inventory_sync stage runs: ``stages.inventory_sync.sync_source``
(read, transform, the Great Expectations suite, ``store.inventory.apply_source_snapshot``, the
sweep). The file source reads a CSV written to a temporary folder; the Backstage source pages
through ``BackstageCatalogServer`` on loopback (page size 500) serving Component entities whose
owners exist as Groups. The baseline, measured in the same run, COPYs the same assets (already
transformed, before its clock starts) into a temp table and runs one ``INSERT ... ON CONFLICT DO
UPDATE`` into an unlogged twin of ``assets``: no parsing, no validation, no diff, no history.

Pass 1 lists every asset for the first time. Pass 2 lists the same assets with 1% changed (every
other changed one a new owner, the rest a new address): the sync must record exactly those as
changes and retire nothing.

Great Expectations takes seconds to import the first time; it is imported before any clock
starts, so that one-off cost is in no figure. Timings are printed, never asserted.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

import autosec.inventory.quality as quality
from autosec.demo.backstage import BackstageCatalogServer
from autosec.domain.models import Asset
from autosec.inventory import backstage
from autosec.inventory import file as file_source
from autosec.inventory.backstage import BackstageEndpoint, BackstageSourceConfig
from autosec.stages import inventory_sync
from autosec.store import db
from autosec.store import inventory as store_inventory

SIZE_VARIABLE = "AUTOSEC_BENCH_ASSETS"
DEFAULT_FILE_ASSETS = 100_000
BACKSTAGE_SHARE = 5  # one Backstage component for every five file assets
MIN_FILE_ASSETS = 500  # so 1% of the Backstage share is at least one asset
PAGE_SIZE = 500
GROUPS = 40
ENTITIES_PER_FILE = 2_000
T1 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=1)

_COLUMNS = (
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
_RAW_STAGE_DDL = (
    "CREATE TEMP TABLE raw_stage (id text PRIMARY KEY, name text, kind text, source text, "
    "owner text, environment text, criticality text, addresses text[], tags text[]) "
    "ON COMMIT DELETE ROWS"
)
# Column names are module constants, never input.
_RAW_UPSERT = (
    f"INSERT INTO raw_assets ({', '.join(_COLUMNS)}, status, first_seen, last_seen) "  # noqa: S608
    f"SELECT {', '.join(_COLUMNS)}, 'active', %(now)s, %(now)s FROM raw_stage "
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, "
    "owner = EXCLUDED.owner, environment = EXCLUDED.environment, "
    "criticality = EXCLUDED.criticality, addresses = EXCLUDED.addresses, tags = EXCLUDED.tags, "
    "last_seen = EXCLUDED.last_seen"
)


def bench_assets() -> tuple[int, int]:
    """(file assets, Backstage components) from ``AUTOSEC_BENCH_ASSETS`` (the file count)."""
    raw = os.environ.get(SIZE_VARIABLE, "").strip().replace("_", "")
    if not raw:
        size = DEFAULT_FILE_ASSETS
    else:
        try:
            size = int(raw)
        except ValueError:
            raise pytest.UsageError(
                f"{SIZE_VARIABLE}={os.environ[SIZE_VARIABLE]!r} is not a whole number of assets"
            ) from None
        if size < MIN_FILE_ASSETS:
            raise pytest.UsageError(
                f"{SIZE_VARIABLE}={size} is too small: at least {MIN_FILE_ASSETS} assets, so 1% "
                "of the Backstage share is not empty"
            )
    return size, size // BACKSTAGE_SHARE


def changed_indices(size: int) -> list[int]:
    """1% of ``range(size)``, spread evenly; even positions change owner, odd ones an address."""
    count = size // 100
    step = size // count
    return [n * step for n in range(count)]


def _address(n: int, generation: int) -> str:
    return f"10.{generation * 64 + n // 65536}.{(n // 256) % 256}.{n % 256}"


# --- the file source ------------------------------------------------------------------------------


def write_csv(path: Path, size: int, changed: dict[int, str]) -> None:
    """The inventory file; ``changed`` maps an index to what changes: "owner" or "address"."""
    kinds = ("host", "service", "web_app", "database")
    environments = ("production", "staging", "development", "test")
    criticalities = ("low", "medium", "high", "business_critical")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "name", "kind", "addresses", "owner", "environment", "criticality", "tags"]
        )
        for n in range(size):
            what = changed.get(n)
            owner = f"team-{(n + (1 if what == 'owner' else 0)) % GROUPS}"
            addresses = [_address(n, 1 if what == "address" else 0)]
            if n % 7 == 0:
                addresses.append(f"host-{n}.corp.example.test")
            writer.writerow(
                [
                    f"file-{n:07d}",
                    f"asset {n}",
                    kinds[n % len(kinds)],
                    "|".join(addresses),
                    owner,
                    environments[(n // 4) % len(environments)],
                    criticalities[(n // 16) % len(criticalities)],
                    "internet-facing|pci" if n % 11 == 0 else "",
                ]
            )


# --- the Backstage source -------------------------------------------------------------------------


def component(n: int, what: str | None) -> dict[str, Any]:
    owner = f"team-{(n + (1 if what == 'owner' else 0)) % GROUPS}"
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": f"svc-{n:06d}",
            "tags": ["python", "criticality:high"] if n % 9 == 0 else ["python"],
            "annotations": {
                "autosec.io/addresses": f"{_address(n, 2 if what == 'address' else 3)}, "
                f"svc-{n}.apps.example.test"
            },
        },
        "spec": {
            "type": ("service", "website", "library")[n % 3],
            "lifecycle": ("production", "experimental", "staging")[(n // 3) % 3],
            "owner": owner,
        },
    }


def group(g: int) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": f"team-{g}"},
        "spec": {"type": "team", "children": []},
    }


def write_entities(folder: Path, size: int, changed: dict[int, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (folder / "groups.yaml").write_text(
        yaml.dump_all([group(g) for g in range(GROUPS)], Dumper=dumper), encoding="utf-8"
    )
    for start in range(0, size, ENTITIES_PER_FILE):
        documents = [
            component(n, changed.get(n)) for n in range(start, min(size, start + ENTITIES_PER_FILE))
        ]
        (folder / f"components-{start:07d}.yaml").write_text(
            yaml.dump_all(documents, Dumper=dumper), encoding="utf-8"
        )


# --- the baseline ---------------------------------------------------------------------------------


def _raw_rows(assets: Sequence[Asset]) -> list[tuple]:
    return [
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
        for a in assets
    ]


def raw_upsert(conn: psycopg.Connection, rows: Sequence[tuple], now: datetime) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY raw_stage ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    conn.execute(_RAW_UPSERT, {"now": now})
    conn.commit()


def create_raw_twin(conn: psycopg.Connection) -> None:
    """``raw_assets``: the assets table's columns, checks and indexes, unlogged, no keys out."""
    conn.execute("CREATE UNLOGGED TABLE raw_assets (LIKE assets INCLUDING ALL)")
    conn.execute(_RAW_STAGE_DDL)
    conn.commit()


# --- timing ---------------------------------------------------------------------------------------


@dataclass
class Phases:
    """Seconds spent in the quality suite and in apply_source_snapshot during one sync."""

    validate_s: float = 0.0
    apply_s: float = 0.0


@contextmanager
def phase_timers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Phases]:
    phases = Phases()

    def timed(original: Callable[..., Any], attribute: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(phases, attribute, getattr(phases, attribute) + time.perf_counter() - t0)

        return wrapper

    with monkeypatch.context() as m:
        m.setattr(quality, "validate_batch", timed(quality.validate_batch, "validate_s"))
        m.setattr(
            store_inventory,
            "apply_source_snapshot",
            timed(store_inventory.apply_source_snapshot, "apply_s"),
        )
        yield phases


@dataclass
class SourceResult:
    name: str
    assets: int
    sync_s: float
    raw_s: float
    phases: Phases
    outcome: inventory_sync.SyncOutcome

    @property
    def sync_rate(self) -> float:
        return self.assets / self.sync_s

    @property
    def raw_rate(self) -> float:
        return self.assets / self.raw_s


def measure(
    name: str,
    sync: Callable[[], inventory_sync.SyncOutcome],
    rows: list[tuple],
    raw: psycopg.Connection,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> SourceResult:
    with phase_timers(monkeypatch) as phases:
        t0 = time.perf_counter()
        outcome = sync()
        sync_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    raw_upsert(raw, rows, now)
    raw_s = time.perf_counter() - t0
    return SourceResult(name, len(rows), sync_s, raw_s, phases, outcome)


def report(title: str, results: Sequence[SourceResult]) -> None:
    print(title)
    for r in results:
        other = r.sync_s - r.phases.validate_s - r.phases.apply_s
        print(
            f"  {r.name:<9} {r.assets:>8,} assets  sync {r.sync_rate:>8,.0f} assets/s"
            f" ({r.sync_s:.2f} s: quality suite {r.phases.validate_s:.2f} s,"
            f" apply_source_snapshot {r.phases.apply_s:.2f} s, read+transform {other:.2f} s)\n"
            f"  {'':<9} {'':>8}         raw COPY upsert {r.raw_rate:>8,.0f} rows/s"
            f" ({r.raw_s:.2f} s)  ratio sync/raw {r.sync_rate / r.raw_rate:.3f}"
        )


def _count(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> int:
    return int(conn.execute(query, params).fetchone()[0])


def _settle(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE assets, asset_changes, raw_assets")
        conn.execute("CHECKPOINT")


# --- the benchmark --------------------------------------------------------------------------------


@pytest.fixture
def inventory_store_url(bench_store_url: str) -> Iterator[str]:
    """The session's bench store, emptied of this benchmark's rows afterwards.

    The store is shared with the other benchmarks, which count the assets they wrote.
    """
    try:
        yield bench_store_url
    finally:
        with psycopg.connect(bench_store_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS raw_assets")
            conn.execute(
                "TRUNCATE asset_changes, input_rejections, assets, sync_runs RESTART IDENTITY"
                " CASCADE"
            )


def test_inventory_sync_throughput_against_raw_copy_upsert(
    inventory_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_store_url = inventory_store_url
    file_size, catalog_size = bench_assets()
    file_changes = {
        n: ("owner" if k % 2 == 0 else "address") for k, n in enumerate(changed_indices(file_size))
    }
    catalog_changes = {
        n: ("owner" if k % 2 == 0 else "address")
        for k, n in enumerate(changed_indices(catalog_size))
    }
    csv_path = tmp_path / "inventory.csv"
    entities_dir = tmp_path / "backstage"
    file_config = file_source_config(csv_path)
    catalog_config = BackstageSourceConfig(name="catalog", kind="backstage", page_size=PAGE_SIZE)

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401  (the one-off import, outside every clock)

    gx_import_s = time.perf_counter() - t0

    with db.connect(bench_store_url) as store, db.connect(bench_store_url) as raw:
        create_raw_twin(raw)
        versions = store.execute("SHOW server_version").fetchone()[0]
        print(
            f"\ninventory sync throughput: {file_size:,} file assets (CSV) + {catalog_size:,}"
            f" Backstage components ({GROUPS} groups, loopback, page size {PAGE_SIZE});"
            f" 1% changed in pass 2 (PostgreSQL {versions}, psycopg {psycopg.__version__})\n"
            f"  great_expectations imported before timing ({gx_import_s:.1f} s, in no figure)"
        )

        results: dict[int, list[SourceResult]] = {}
        for number, now, file_changed, catalog_changed in (
            (1, T1, {}, {}),
            (2, T2, file_changes, catalog_changes),
        ):
            write_csv(csv_path, file_size, file_changed)
            write_entities(entities_dir, catalog_size, catalog_changed)
            file_rows = _raw_rows(
                file_source.transform(file_source.get(csv_path), file_config.name).assets
            )
            with (
                BackstageCatalogServer(entities_dir) as server,
                requests.Session() as session,
            ):
                endpoint = BackstageEndpoint(server.url)
                catalog_rows = _raw_rows(
                    backstage.collect(catalog_config, endpoint, session).assets
                )
                assert (len(file_rows), len(catalog_rows)) == (file_size, catalog_size)
                results[number] = [
                    measure(
                        "file",
                        lambda now=now: inventory_sync.sync_source(
                            store, file_config, str(csv_path), now
                        ),
                        file_rows,
                        raw,
                        now,
                        monkeypatch,
                    ),
                    measure(
                        "backstage",
                        lambda now=now, endpoint=endpoint, session=session: (
                            inventory_sync.sync_source(
                                store,
                                catalog_config,
                                None,
                                now,
                                endpoint=endpoint,
                                session=session,
                            )
                        ),
                        catalog_rows,
                        raw,
                        now,
                        monkeypatch,
                    ),
                ]
            if number == 1:
                report("pass 1 (all new)", results[1])
                for r, size in zip(results[1], (file_size, catalog_size), strict=True):
                    assert r.outcome.status == "succeeded", r.outcome.quarantined[:3]
                    assert r.outcome.counts["new"] == size
                    assert r.outcome.counts["retired"] == r.outcome.counts["conflicts"] == 0
                total = file_size + catalog_size
                assert _count(store, "SELECT count(*) FROM assets") == total
                assert _count(store, "SELECT count(*) FROM asset_changes") == total
                assert _count(raw, "SELECT count(*) FROM raw_assets") == total
                _settle(bench_store_url)

        report("pass 2 (1% changed: half a new owner, half a new address)", results[2])
        for r, changes in zip(results[2], (file_changes, catalog_changes), strict=True):
            sync_run_id = r.outcome.sync_run_id
            written = store.execute(
                "SELECT change, count(*) FROM asset_changes WHERE sync_run_id = %s"
                " GROUP BY change ORDER BY change",
                (sync_run_id,),
            ).fetchall()
            rewritten = _count(
                store, "SELECT count(*) FROM assets WHERE last_sync_run_id = %s", (sync_run_id,)
            )
            changed_rows = sum(n for _, n in written)
            print(
                f"  {r.name}: asset_changes rows written {changed_rows:,} for {len(changes):,}"
                f" changed ({', '.join(f'{c} {n:,}' for c, n in written)});"
                f" assets rows updated {rewritten:,} of {r.assets:,}"
            )
            owners = sum(1 for what in changes.values() if what == "owner")
            assert changed_rows == len(changes)
            assert dict(written) == {"owner_changed": owners, "changed": len(changes) - owners}
            assert r.outcome.status == "succeeded"
            assert r.outcome.counts["retired"] == 0
            assert r.outcome.counts["new"] == 0
            assert r.outcome.counts["changed"] == len(changes)
            assert r.outcome.counts["unchanged"] == r.assets - len(changes)
            assert len(r.outcome.changed_asset_ids) == len(changes)

        assert _count(store, "SELECT count(*) FROM assets WHERE status = 'retired'") == 0
        assert _count(store, "SELECT count(*) FROM asset_changes WHERE change = 'retired'") == 0
        # Both paths hold the same assets with the same identity.
        assert (
            _count(
                store,
                "SELECT count(*) FROM assets a FULL JOIN raw_assets r USING (id)"
                " WHERE a.id IS NULL OR r.id IS NULL OR a.owner <> r.owner"
                " OR a.addresses <> r.addresses OR a.kind <> r.kind",
            )
            == 0
        )


def file_source_config(path: Path) -> Any:
    from autosec.config.estate import InventorySourceConfig

    return InventorySourceConfig(name="inventory", kind="file", path=path, format="csv")

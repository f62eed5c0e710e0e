"""scan: plan which engine runs on which assets, run one batch, keep the raw output as evidence.

Targets are validated before any argv is built; a hostile inventory value is recorded as a
rejection and never reaches an engine. A failed run is recorded (with its evidence) and
closes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autosec.config.estate import ScanConfig
from autosec.domain.targets import InvalidTarget, Target, host_of, validate_target
from autosec.engines.registry import get_engine
from autosec.stages.blobs import BlobStore
from autosec.store import events, inventory, scans
from autosec.store.db import Connection


@dataclass(frozen=True)
class Batch:
    engine: str
    asset_ids: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"engine": self.engine, "asset_ids": list(self.asset_ids)}


def plan_batches(
    conn: Connection,
    config: ScanConfig,
    changed_asset_ids: Sequence[str],
    now: datetime,
    engines: Sequence[str] | None = None,
    only_asset_ids: Sequence[str] | None = None,
    full: bool = False,
) -> list[Batch]:
    """Changed assets at once, plus every asset whose cadence says it is due (or all: full)."""
    batches: list[Batch] = []
    for name in engines or config.engines:
        engine = get_engine(name)
        if only_asset_ids:
            wanted = set(only_asset_ids)
        elif full:
            wanted = {a.id for a in inventory.load_assets(conn)}
        else:
            due = scans.assets_due(
                conn,
                name,
                now,
                timedelta(days=config.cadence_days),
                timedelta(days=config.internet_facing_cadence_days),
            )
            wanted = set(due) | set(changed_asset_ids)
        assets = [a for a in inventory.load_assets(conn, sorted(wanted)) if engine.accepts(a)]
        ids = [a.id for a in assets]
        for start in range(0, len(ids), config.batch_size):
            batches.append(Batch(name, tuple(ids[start : start + config.batch_size])))
    return batches


@dataclass
class BatchOutcome:
    scan_run_id: int | None
    status: str
    observations: int = 0
    rejected_targets: list[str] = field(default_factory=list)
    error: str | None = None
    evidence_sha256: str | None = None


Runner = Callable[..., object]


def run_batch(
    conn: Connection,
    batch: Batch,
    config: ScanConfig,
    blobs: BlobStore,
    runner: Runner,
    clock: Callable[[], datetime],
    run_ref: str | None = None,
) -> BatchOutcome:
    engine = get_engine(batch.engine)
    assets = inventory.load_assets(conn, batch.asset_ids)
    targets: list[Target] = []
    asset_by_host: dict[str, str] = {}
    rejected: list[tuple[str, str | None, str]] = []
    for asset in assets:
        for address in asset.addresses:
            try:
                target = validate_target(address)
            except InvalidTarget as exc:
                rejected.append((f"asset:{asset.id}", address, str(exc)))
                continue
            targets.append(target)
            asset_by_host[host_of(target)] = asset.id
    if rejected:
        inventory.record_rejections(conn, "scan", batch.engine, rejected, run_ref=run_ref)
        events.emit_many(conn, "input.rejected", [(loc, {"reason": r}) for loc, _, r in rejected])
    if not targets:
        conn.commit()
        return BatchOutcome(None, "skipped", rejected_targets=[r for _, _, r in rejected])

    options = {"ports": list(config.ports)} if config.ports else {}
    argv = engine.command(targets, options)
    scope = engine.scope(targets, options)
    version = _engine_version(engine, runner)
    scanned_ids = sorted({asset_by_host[host_of(t)] for t in targets})
    scan_run_id = scans.start_scan_run(
        conn, engine.name, scanned_ids, scope.as_dict(), argv, clock(), run_ref, version
    )
    result = runner(argv, timeout=config.timeout_seconds)
    stored = blobs.put(f"evidence/{engine.name}/scan-run-{scan_run_id}.out", result.stdout)
    scans.add_evidence(conn, scan_run_id, stored.sha256, stored.uri, stored.size, "text/plain")
    outcome = BatchOutcome(
        scan_run_id,
        "succeeded",
        evidence_sha256=stored.sha256,
        rejected_targets=[r for _, _, r in rejected],
    )
    if result.timed_out or result.truncated or result.exit_code != 0:
        outcome.status = "timed_out" if result.timed_out else "failed"
        outcome.error = _failure_text(result)
    else:
        try:
            observations = engine.parse(result.stdout, asset_by_host)
        except ValueError as exc:
            outcome.status, outcome.error = "failed", f"cannot parse {engine.name} output: {exc}"
        else:
            outcome.observations = scans.add_observations(conn, scan_run_id, observations)
    scans.finish_scan_run(
        conn, scan_run_id, outcome.status, clock(), exit_code=result.exit_code, error=outcome.error
    )
    if outcome.status != "succeeded":
        events.emit(conn, "scan.failed", f"scan_run:{scan_run_id}", {"error": outcome.error})
    conn.commit()
    return outcome


def _engine_version(engine, runner: Runner) -> str | None:
    try:
        result = runner(engine.version_command(), timeout=30)
        return engine.parse_version(result.stdout.decode(errors="replace"))
    except Exception:  # noqa: BLE001 - a missing version is worth a gap in the record, not a failed scan
        return None


def _failure_text(result) -> str:
    if result.timed_out:
        return f"timed out after {result.duration_seconds:.0f}s"
    if result.truncated:
        return "output exceeded the size cap"
    stderr = result.stderr.decode(errors="replace").strip()[-500:]
    return f"exit code {result.exit_code}: {stderr}"

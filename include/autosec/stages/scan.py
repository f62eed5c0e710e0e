"""scan: plan which engine runs on which assets, run one batch, keep the raw output as evidence.

Targets are validated before any argv is built; a hostile inventory value is recorded as a
rejection and never reaches an engine. A failed run is recorded (with its evidence) and
closes nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from autosec.config.estate import ScanConfig
from autosec.domain.cadence import cadence_for, is_due
from autosec.domain.models import Asset
from autosec.domain.targets import InvalidTarget, Target, host_of, validate_target
from autosec.engines.registry import get_engine
from autosec.stages.blobs import BlobStore
from autosec.store import events, inventory, remediation, scans
from autosec.store.db import Connection


@dataclass(frozen=True)
class Batch:
    engine: str
    asset_ids: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"engine": self.engine, "asset_ids": list(self.asset_ids)}


# Dynamic task mapping stops at max_map_length (1024 by default): stay well below it.
MAX_BATCHES_PER_ENGINE = 1000


def plan_batches(
    conn: Connection,
    config: ScanConfig,
    changed_asset_ids: Sequence[str],
    now: datetime,
    engines: Sequence[str] | None = None,
    only_asset_ids: Sequence[str] | None = None,
    full: bool = False,
) -> list[Batch]:
    """Which assets each engine scans now, in batches for the mapped scan tasks.

    Changed assets at once (event-based), verification rescans remediation asked for, and
    every asset whose adaptive cadence says it is due (time-based) — or only the named
    assets, or all (full). An engine only gets assets it accepts, and an invasive engine
    only assets whose environment the configuration allows.
    """
    assets = {a.id: a for a in inventory.load_assets(conn)}
    batches: list[Batch] = []
    for name in engines or config.engines:
        engine = get_engine(name)
        if only_asset_ids:
            wanted = set(only_asset_ids)
        elif full:
            wanted = set(assets)
        else:
            wanted = set(changed_asset_ids) | set(remediation.pending_verifications(conn, name))
            wanted |= due_assets(scans.schedule_state(conn, name), assets, config, now)
        ids = sorted(
            asset_id
            for asset_id in wanted
            if asset_id in assets
            and engine.accepts(assets[asset_id])
            and invasive_allowed(engine, assets[asset_id], config)
        )
        size = max(config.batch_size, math.ceil(len(ids) / MAX_BATCHES_PER_ENGINE))
        for start in range(0, len(ids), size):
            batches.append(Batch(name, tuple(ids[start : start + size])))
    return batches


def due_assets(state: dict, assets: dict[str, Asset], config: ScanConfig, now: datetime) -> set:
    policy = config.cadence_policy()
    due = set()
    for asset_id, (last_success, last_changed, has_open) in state.items():
        asset = assets.get(asset_id)
        if asset is None:
            continue
        if is_due(last_success, cadence_for(asset, last_changed, has_open, now, policy), now):
            due.add(asset_id)
    return due


def invasive_allowed(engine, asset: Asset, config: ScanConfig) -> bool:
    return (
        not engine.invasive
        or asset.environment in config.invasive_environments
        or "invasive-scans-allowed" in asset.tags
    )


@dataclass
class RunOutcome:
    """One engine run over one group of targets."""

    scan_run_id: int
    status: str
    observations: int = 0
    error: str | None = None
    evidence_sha256: str | None = None


@dataclass
class BatchOutcome:
    """A batch may need more than one run (nmap scans IPv4 and IPv6 separately)."""

    runs: list[RunOutcome] = field(default_factory=list)
    rejected_targets: list[str] = field(default_factory=list)

    @property
    def scan_run_id(self) -> int | None:
        return self.runs[0].scan_run_id if self.runs else None

    @property
    def status(self) -> str:
        if not self.runs:
            return "skipped"
        failed = [r.status for r in self.runs if r.status != "succeeded"]
        return failed[0] if failed else "succeeded"

    @property
    def observations(self) -> int:
        return sum(r.observations for r in self.runs)

    @property
    def error(self) -> str | None:
        failed = [r for r in self.runs if r.error]
        if len(self.runs) == 1:
            return self.runs[0].error
        return "; ".join(f"run {r.scan_run_id}: {r.error}" for r in failed) or None

    @property
    def evidence_sha256(self) -> str | None:
        return self.runs[0].evidence_sha256 if self.runs else None


Runner = Callable[..., object]


def run_batch(
    conn: Connection,
    batch: Batch,
    config: ScanConfig,
    blobs: BlobStore,
    runner: Runner,
    clock: Callable[[], datetime],
    run_ref: str | None = None,
    max_component_age_days: int | None = None,
) -> BatchOutcome:
    """Validate every target, then one recorded engine run per address family (and per
    ``max_targets_per_run`` targets, for an engine that limits them).

    ``max_component_age_days`` is the policy's freshness limit, for the sbom engine.
    """
    engine = _engine_for_run(conn, batch.engine, clock(), max_component_age_days)
    assets = inventory.load_assets(conn, batch.asset_ids)
    groups: dict[int, list[Target]] = {}
    assets_by_host: dict[str, list[str]] = {}
    rejected: list[tuple[str, str | None, str]] = []
    for asset in assets:
        for address in asset.addresses:
            try:
                target = validate_target(address)
            except InvalidTarget as exc:
                rejected.append((f"asset:{asset.id}", address, str(exc)))
                continue
            if target.kind not in engine.target_kinds:
                continue  # valid, but nothing this engine reads (a path for nmap, a URL for files)
            owners = assets_by_host.setdefault(host_of(target), [])
            group = groups.setdefault(_family(target), [])
            if target not in group:  # each value once; a host's http and https URLs both count
                group.append(target)
            if asset.id not in owners:
                owners.append(asset.id)
    if rejected:
        inventory.record_rejections(conn, "scan", batch.engine, rejected, run_ref=run_ref)
        events.emit_many(conn, "input.rejected", [(loc, {"reason": r}) for loc, _, r in rejected])
        conn.commit()
    outcome = BatchOutcome(rejected_targets=[r for _, _, r in rejected])
    if not groups:
        return outcome
    version = _engine_version(engine, runner)
    size = engine.max_targets_per_run
    for family in sorted(groups):
        group = groups[family]
        for start in range(0, len(group), size or len(group)):
            outcome.runs.append(
                _run_group(
                    conn,
                    engine,
                    group[start : start + size] if size else group,
                    assets_by_host,
                    config,
                    blobs,
                    runner,
                    clock,
                    run_ref,
                    version,
                )
            )
    return outcome


def _run_group(
    conn: Connection,
    engine,
    targets: list[Target],
    assets_by_host: dict[str, list[str]],
    config: ScanConfig,
    blobs: BlobStore,
    runner: Runner,
    clock: Callable[[], datetime],
    run_ref: str | None,
    version: str | None,
) -> RunOutcome:
    options: dict = {"ports": list(config.ports)} if config.ports else {}
    if engine.name == "nmap":
        options["scripts"] = list(config.nmap_scripts)
    scanned_ids = sorted({a for t in targets for a in assets_by_host[host_of(t)]})
    try:
        argv = engine.command(targets, options)
        scope = engine.scope(targets, options)
    except ValueError as exc:
        # The engine refused to build its argv (a target or option it will not take): a
        # recorded failed run for these assets, closing nothing, never an unrecorded crash.
        scan_run_id = scans.start_scan_run(
            conn, engine.name, scanned_ids, {}, None, clock(), run_ref, version
        )
        outcome = RunOutcome(scan_run_id, "failed", error=f"no command could be built: {exc}")
        _finish(conn, outcome, clock, None)
        return outcome
    scan_run_id = scans.start_scan_run(
        conn, engine.name, scanned_ids, scope.as_dict(), argv, clock(), run_ref, version
    )
    outcome = RunOutcome(scan_run_id, "succeeded")
    result = None
    try:
        result = runner(argv, timeout=config.timeout_seconds)
        stored = blobs.put(f"evidence/{engine.name}/scan-run-{scan_run_id}.out", result.stdout)
        scans.add_evidence(conn, scan_run_id, stored.sha256, stored.uri, stored.size, "text/plain")
        conn.commit()
    except Exception as exc:
        conn.rollback()
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        _finish(conn, outcome, clock, result)
        raise
    outcome.evidence_sha256 = stored.sha256
    if result.timed_out or result.truncated or result.exit_code != 0:
        outcome.status = "timed_out" if result.timed_out else "failed"
        outcome.error = _failure_text(result)
    else:
        try:
            observations = _parse(engine, result.stdout, targets, assets_by_host)
        except ValueError as exc:
            outcome.status, outcome.error = "failed", f"cannot parse {engine.name} output: {exc}"
        else:
            outcome.observations = scans.add_observations(conn, scan_run_id, observations)
    _finish(conn, outcome, clock, result)
    return outcome


def _parse(engine, raw: bytes, targets: list[Target], assets_by_host: dict[str, list[str]]):
    """Parse once, then give each observation to every asset that shares the scanned host.

    The engine sees one opaque key per host, so two assets on one address both get findings.
    """
    keys = {host_of(t): f"host:{host_of(t)}" for t in targets}
    owners_by_key = {keys[h]: assets_by_host[h] for h in keys}
    observations = []
    for observation in engine.parse(raw, keys):
        for asset_id in owners_by_key.get(observation.asset_id, [observation.asset_id]):
            observations.append(dataclasses.replace(observation, asset_id=asset_id))
    return observations


def _finish(conn: Connection, outcome: RunOutcome, clock, result) -> None:
    scans.finish_scan_run(
        conn,
        outcome.scan_run_id,
        outcome.status,
        clock(),
        exit_code=getattr(result, "exit_code", None),
        error=outcome.error,
    )
    if outcome.status != "succeeded":
        events.emit(
            conn, "scan.failed", f"scan_run:{outcome.scan_run_id}", {"error": outcome.error}
        )
    conn.commit()


def _engine_for_run(conn: Connection, name: str, now: datetime, max_age_days: int | None):
    """The registry's engine, or for sbom the engine bound to the store's advisories: an
    unbound sbom engine would have nothing to match components against."""
    if name == "sbom":
        from autosec.stages.intel import bind_sbom_engine

        return bind_sbom_engine(conn, now, max_age_days)
    return get_engine(name)


def _family(target: Target) -> int:
    try:
        return ipaddress.ip_network(host_of(target), strict=False).version
    except ValueError:
        return 4  # hostnames: the engine resolves them to IPv4 unless told otherwise


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

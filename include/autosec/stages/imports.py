"""import: a report another tool already wrote -> the same findings path as autosec's engines.

The report is kept as evidence (sha256), parsed by its importer (sniffed when no format is
given), its targets mapped to inventory assets, recorded as a scan run of ``import:<format>``
and triaged at once. So reimporting the same report changes nothing, and reimporting it
without one finding closes exactly that finding: the importer speaks for everything its tool
reports about the assets in the report, and for nothing else.
"""

from __future__ import annotations

import io
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from autosec.engines.importers.base import SNIFF_BYTES, ImportedFinding, ImportFormatError
from autosec.engines.importers.registry import get_importer, sniff_format
from autosec.stages.blobs import BlobStore
from autosec.store import events, inventory, scans
from autosec.store import imports as import_store
from autosec.store.db import Connection

MEDIA_TYPES = {
    "zap": "application/xml",
    "nmap-xml": "application/xml",
    "nuclei": "application/x-ndjson",
}


class ImportRejected(ValueError):
    """The report cannot be imported at all (unknown format, unreadable, unknown asset)."""


@dataclass
class ImportSummary:
    """What one import did, in the words of the person who ran it."""

    file: str
    format: str | None = None
    scan_run_id: int | None = None
    sha256: str | None = None
    findings_in_report: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    reopened: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


Triage = Callable[[Connection, int], Mapping[str, int]]


def import_report(
    conn: Connection,
    path: Path,
    blobs: BlobStore,
    triage: Triage,
    clock: Callable[[], datetime],
    format_name: str | None = None,
    asset_id: str | None = None,
    run_ref: str | None = None,
) -> ImportSummary:
    """Import one report file. Never raises for a bad report: the summary carries the error,
    and nothing already stored is touched by a report that cannot be read."""
    summary = ImportSummary(file=str(path))
    try:
        _import(conn, Path(path), blobs, triage, clock, format_name, asset_id, run_ref, summary)
    except (ImportRejected, ImportFormatError, OSError) as exc:
        conn.rollback()
        summary.errors.append(str(exc))
    return summary


def _import(conn, path, blobs, triage, clock, format_name, asset_id, run_ref, summary) -> None:
    data = path.read_bytes()  # read once: sniffed, parsed and kept as evidence
    head = data[:SNIFF_BYTES]
    if format_name is None:
        format_name = sniff_format(head)
        if format_name is None:
            raise ImportRejected(
                f"{path}: not a report format autosec knows; name one with --format"
            )
    importer = get_importer(format_name)
    summary.format = importer.name
    if asset_id is not None and not inventory.load_assets(conn, [asset_id]):
        raise ImportRejected(f"{path}: no active inventory asset {asset_id!r}")
    # a malformed file stores nothing: it fails here, before any write
    imported = list(importer.parse(io.BytesIO(data), str(path)))
    summary.findings_in_report = len(imported)
    assignments, unmatched = _assign_assets(conn, imported, asset_id)
    for target, count in sorted(unmatched.items()):
        summary.errors.append(
            f"{path}: no inventory asset matches target {target!r} ({count} finding"
            f"{'s' if count != 1 else ''} not imported); pass --asset ID"
        )
    # With --asset, an empty report is news too: everything this tool reported there is gone.
    asset_ids = sorted({a for _, a in assignments} | ({asset_id} if asset_id else set()))
    if not asset_ids:
        return
    engine = importer.engine_name_for(head)
    before = import_store.finding_digests(conn, asset_ids, engine)
    targets = sorted({f.target for f, _ in assignments if f.target})
    scope = {"targets": targets, "file": path.name, "format": importer.name}
    run_id = scans.start_scan_run(conn, engine, asset_ids, scope, None, clock(), run_ref)
    summary.scan_run_id = run_id
    stored = blobs.put(f"evidence/import/{importer.name}/scan-run-{run_id}-{path.name}", data)
    summary.sha256 = stored.sha256
    scans.add_evidence(
        conn,
        run_id,
        stored.sha256,
        stored.uri,
        stored.size,
        MEDIA_TYPES.get(importer.name, "application/json"),
    )
    scans.add_observations(conn, run_id, (f.to_observation(a, engine) for f, a in assignments))
    conn.commit()
    scans.finish_scan_run(conn, run_id, "succeeded", clock())
    counts = triage(conn, run_id)
    after = import_store.finding_digests(conn, asset_ids, engine)
    seen_again = int(counts.get("seen_again", 0))
    changed = sum(1 for fp, digest in after.items() if fp in before and before[fp] != digest)
    summary.created = int(counts.get("new", 0))
    summary.reopened = int(counts.get("reopened", 0))
    summary.closed = int(counts.get("fixed", 0))
    summary.updated = min(changed, seen_again)
    summary.unchanged = seen_again - summary.updated
    events.emit(
        conn,
        "import.finished",
        f"scan_run:{run_id}",
        {k: v for k, v in summary.as_dict().items() if k not in ("errors",)},
    )
    conn.commit()


def _assign_assets(
    conn: Connection, imported: Iterable[ImportedFinding], asset_id: str | None
) -> tuple[list[tuple[ImportedFinding, str]], Counter]:
    """Each finding with the asset it belongs to; targets no asset claims, with counts."""
    imported = list(imported)
    if asset_id is not None:
        return [(f, asset_id) for f in imported], Counter()
    index = _target_index((a.id, a.name, list(a.addresses)) for a in inventory.load_assets(conn))
    assigned: list[tuple[ImportedFinding, str]] = []
    unmatched: Counter = Counter()
    for finding in imported:
        target = finding.target or finding.location.host or finding.location.url
        owner = _lookup(index, target) if target else None
        if owner is None:
            unmatched[target or "(no target in the report)"] += 1
        else:
            assigned.append((finding, owner))
    return assigned, unmatched


def target_keys(value: str) -> list[str]:
    """The ways a target may be written, most exact first: as given, host:port, host."""
    value = value.strip().lower()
    keys = [value]
    parsed = urlsplit(value if "://" in value else f"//{value}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        return keys
    if host:
        if port:
            keys.append(f"{host}:{port}")
        keys.append(host)
    return list(dict.fromkeys(keys))


def _target_index(assets: Iterable[tuple[str, str, list[str]]]) -> dict[str, str | None]:
    """key -> asset id; a key two assets share maps to None (ambiguous, never guessed)."""
    index: dict[str, str | None] = {}
    exact: dict[str, str] = {}
    for asset_id, name, addresses in assets:
        exact[asset_id.lower()] = asset_id
        exact.setdefault(name.lower(), asset_id)
        for address in addresses:
            for key in target_keys(address):
                if key in index and index[key] != asset_id:
                    index[key] = None
                else:
                    index[key] = asset_id
    index.update(exact)
    return index


def _lookup(index: Mapping[str, str | None], target: str) -> str | None:
    for key in target_keys(target):
        if key in index:
            return index[key]
    return None


def triage_now(days_by_severity: Mapping[str, int | None], clock: Callable[[], datetime]) -> Triage:
    """Triage an import's run at once, as the triage DAG would, so the summary is final."""

    def triage(conn: Connection, run_id: int) -> Mapping[str, int]:
        from autosec.stages.triage import triage_runs

        return triage_runs(conn, days_by_severity, clock(), run_ids=[run_id]).counts()

    return triage


# --- the drop folder ------------------------------------------------------------------------

INCOMING, CLAIMED, DONE, FAILED = "incoming", "claimed", "done", "failed"


def claim_dropped(root: Path, min_age_seconds: float, now: float) -> list[Path]:
    """Move settled files from incoming/ to claimed/ (an atomic rename), oldest first.

    A file still being written (modified less than ``min_age_seconds`` ago) is left for the
    next look. Claiming means one report starts one import, however many watchers fire.
    """
    incoming, claimed = root / INCOMING, root / CLAIMED
    claimed.mkdir(parents=True, exist_ok=True)
    if not incoming.is_dir():
        incoming.mkdir(parents=True, exist_ok=True)
        return []
    settled = [
        p
        for p in incoming.iterdir()
        if p.is_file() and not p.name.startswith(".") and now - p.stat().st_mtime >= min_age_seconds
    ]
    moved = []
    for path in sorted(settled, key=lambda p: (p.stat().st_mtime, p.name)):
        destination = claimed / path.name
        try:
            path.rename(destination)
        except FileNotFoundError:
            continue  # another watcher claimed it first
        moved.append(destination)
    return moved


def file_away(root: Path, path: Path, summary: ImportSummary) -> Path:
    """done/ when something was imported without errors, failed/ (with a .error note) if not."""
    ok = summary.scan_run_id is not None and not summary.errors
    folder = root / (DONE if ok else FAILED)
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / path.name
    if destination.exists():
        destination = folder / f"{path.stem}.{summary.scan_run_id or 'x'}{path.suffix}"
    shutil.move(str(path), destination)
    if not ok:
        destination.with_name(destination.name + ".error").write_text(
            "\n".join(summary.errors or ["nothing in the report matched the inventory"]) + "\n"
        )
    return destination

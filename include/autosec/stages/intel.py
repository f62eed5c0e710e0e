"""intel: keep the advisory, KEV and EPSS snapshots in the store current, and never lose one.

Each feed is updated the same way:

1. With a URL configured, download it (``requests``, a timeout, a size cap) beside the local
   snapshot, load it, and only then move it into the snapshot's place. A failed download, or
   a download that does not load, leaves the previous file and the stored data untouched.
2. Load the local snapshot, streamed, in one transaction together with the feed's state
   (source, version, the feed's own date, record count, sha256): a malformed record anywhere
   rolls the whole load back. A snapshot whose sha256 is already loaded is not
   loaded again; a KEV or EPSS snapshot older than the loaded one is refused (a stale mirror
   must not roll the data back).
3. Whatever happened, compare the feed's own date with the freshness limit: an old feed gives
   the warning "kev feed is 9 days old (...)", printed and emitted as ``intel.feed_stale``.

A failure is recorded in the feed's state (``last_error``) and reported in the outcome; the
stored snapshot stays as it was.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autosec.intel.config import FeedSource, IntelConfig
from autosec.intel.epss import EpssError, EpssReader
from autosec.intel.feeds import staleness_warning
from autosec.intel.kev import KevError, read_kev
from autosec.intel.matching import AdvisoryLookup
from autosec.intel.osv import Advisory, OsvError, iter_osv
from autosec.store import events
from autosec.store import intel as intel_store
from autosec.store.db import Connection

if TYPE_CHECKING:
    from autosec.engines.sbom.engine import SbomEngine

KEV = "kev"
EPSS = "epss"
OSV_PREFIX = "osv:"
_CHUNK = 1024 * 1024


class IntelUnavailable(RuntimeError):
    """No advisories are loaded: matching now would report every component clean."""


@dataclass
class FeedOutcome:
    """What one feed update did. ``status``: loaded, unchanged, refused_older, failed."""

    feed: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    version: str | None = None
    feed_date: datetime | None = None
    downloaded: bool = False
    warning: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_dict(self) -> dict[str, Any]:
        """Small and JSON-ready, for XCom and logs."""
        return {
            "feed": self.feed,
            "status": self.status,
            "counts": self.counts,
            "version": self.version,
            "feed_date": self.feed_date.isoformat() if self.feed_date else None,
            "downloaded": self.downloaded,
            "warning": self.warning,
            "error": self.error,
        }


Session = Any  # a requests.Session (or anything with the same get())


# --- the updates the DAG runs ---------------------------------------------------------------


def update_osv_feeds(
    conn: Connection,
    config: IntelConfig,
    resolve: Callable[[Path], Path],
    now: datetime,
    session: Session | None = None,
) -> list[FeedOutcome]:
    return [
        _update(
            conn,
            f"{OSV_PREFIX}{source.name}",
            source,
            resolve,
            config,
            now,
            session,
            lambda path, label, source=source: load_osv_feed(conn, source.name, path, now, label),
        )
        for source in config.osv
    ]


def update_kev_feed(
    conn: Connection,
    config: IntelConfig,
    resolve: Callable[[Path], Path],
    now: datetime,
    session: Session | None = None,
) -> FeedOutcome:
    return _update(
        conn, KEV, config.kev, resolve, config, now, session,
        lambda path, label: load_kev_feed(conn, path, now, label),
    )  # fmt: skip


def update_epss_feed(
    conn: Connection,
    config: IntelConfig,
    resolve: Callable[[Path], Path],
    now: datetime,
    session: Session | None = None,
) -> FeedOutcome:
    return _update(
        conn, EPSS, config.epss, resolve, config, now, session,
        lambda path, label: load_epss_feed(conn, path, now, label),
    )  # fmt: skip


def _update(
    conn: Connection,
    feed: str,
    source: FeedSource,
    resolve: Callable[[Path], Path],
    config: IntelConfig,
    now: datetime,
    session: Session | None,
    load: Callable[[Path, str | None], FeedOutcome],
) -> FeedOutcome:
    """Download (when a URL is set) beside the snapshot, load the download, and only then put
    it in the snapshot's place; otherwise load the snapshot that is there."""
    path = resolve(source.path)
    outcome: FeedOutcome | None = None
    download_error = None
    if source.url:
        fresh = path.with_name(f".download-{path.name}")  # same suffix: .zip, .json, .csv.gz
        try:
            if session is None:
                raise RuntimeError("no HTTP session to download with")
            download(
                session,
                source.url,
                fresh,
                config.download_timeout_seconds,
                config.max_download_mib * 1024 * 1024,
            )
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last snapshot
            download_error = f"download of {source.url} failed: {type(exc).__name__}: {exc}"
        else:
            outcome = load(fresh, source.url)
            outcome.downloaded = True
            if outcome.error:  # name what was downloaded, not the file it went through
                outcome.error = outcome.error.replace(str(fresh), source.url)
            if outcome.status in ("loaded", "unchanged"):
                fresh.replace(path)
            else:  # unreadable or older: the snapshot in place stays the one loaded
                fresh.unlink(missing_ok=True)
    if outcome is None:
        if path.exists():
            # After a failed download this is the previous file: loaded if it never was.
            outcome = load(path, None)
        else:
            missing = f"no snapshot at {path}" + ("" if source.url else " and no download URL")
            outcome = FeedOutcome(feed, "failed", error=missing)
    if download_error:
        outcome.status = "failed"
        outcome.error = "; ".join(e for e in (download_error, outcome.error) if e)
    if outcome.failed:
        _record_failure(conn, feed, outcome.error or "failed", now)
    return _with_warning(conn, outcome, config, now)


def _record_failure(conn: Connection, feed: str, message: str, now: datetime) -> str:
    conn.rollback()
    intel_store.record_feed_failure(conn, feed, message, now)
    conn.commit()
    return message


def _with_warning(
    conn: Connection, outcome: FeedOutcome, config: IntelConfig, now: datetime
) -> FeedOutcome:
    state = intel_store.feed_state(conn, outcome.feed)
    outcome.warning = staleness_warning(
        outcome.feed, state.feed_date if state else None, now, config.max_age_days
    )
    if outcome.version is None and state is not None:
        outcome.version, outcome.feed_date = state.version, state.feed_date
    subject = f"feed:{outcome.feed}"
    # a stale feed is worth one word a day, not one per run
    day = now.date()
    if outcome.warning and not events.emitted_on(conn, "intel.feed_stale", subject, day):
        events.emit(
            conn,
            "intel.feed_stale",
            subject,
            {"warning": outcome.warning, "error": outcome.error, "day": day.isoformat()},
        )
        conn.commit()
    return outcome


def download(session: Session, url: str, destination: Path, timeout: float, max_bytes: int) -> str:
    """Fetch ``url`` into ``destination`` atomically; the sha256 of what was written."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    try:
        with (
            os.fdopen(handle, "wb") as out,
            session.get(url, timeout=timeout, stream=True) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"larger than the {max_bytes}-byte download limit")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ValueError("the server sent an empty file")
        Path(temporary).replace(destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


# --- loading local snapshots (the DAG and `autosec intel load`) ----------------------------


def load_osv_feed(
    conn: Connection, name: str, path: Path, now: datetime, source: str | None = None
) -> FeedOutcome:
    feed = f"{OSV_PREFIX}{name}"
    digest = snapshot_sha256(path)
    state = intel_store.feed_state(conn, feed)
    if state is not None and state.sha256 == digest and state.loaded_at is not None:
        return _unchanged(conn, feed, state, now)
    counter = _Counter()
    try:
        counts = intel_store.load_advisories(conn, counter.count(iter_osv(path)), feed, now)
    except OsvError as exc:
        return FeedOutcome(feed, "failed", error=_record_failure(conn, feed, str(exc), now))
    dates = [d for d in (counter.newest, state.feed_date if state else None) if d is not None]
    feed_date = max(dates) if dates else None
    version = feed_date.isoformat() if feed_date else None
    intel_store.record_feed_loaded(
        conn, feed, source=source or str(path), version=version, feed_date=feed_date,
        record_count=counts.total, sha256=digest, now=now,
    )  # fmt: skip
    conn.commit()
    return FeedOutcome(feed, "loaded", counts.as_dict(), version, feed_date)


def load_kev_feed(
    conn: Connection, path: Path, now: datetime, source: str | None = None
) -> FeedOutcome:
    digest = snapshot_sha256(path)
    state = intel_store.feed_state(conn, KEV)
    if state is not None and state.sha256 == digest and state.loaded_at is not None:
        return _unchanged(conn, KEV, state, now)
    try:
        catalog = read_kev(path)
    except KevError as exc:
        return FeedOutcome(KEV, "failed", error=_record_failure(conn, KEV, str(exc), now))
    if not catalog.entries:
        message = f"{path}: the catalog lists no entries (loading it would empty the KEV table)"
        return FeedOutcome(KEV, "failed", error=_record_failure(conn, KEV, message, now))
    refused = _older(KEV, catalog.feed_date, state, conn, now)
    if refused:
        return refused
    counts = intel_store.load_kev(conn, catalog, now)
    intel_store.record_feed_loaded(
        conn, KEV, source=source or str(path), version=catalog.version, feed_date=catalog.feed_date,
        record_count=len(catalog.entries), sha256=digest, now=now,
    )  # fmt: skip
    conn.commit()
    return FeedOutcome(KEV, "loaded", counts.as_dict(), catalog.version, catalog.feed_date)


def load_epss_feed(
    conn: Connection, path: Path, now: datetime, source: str | None = None
) -> FeedOutcome:
    digest = snapshot_sha256(path)
    state = intel_store.feed_state(conn, EPSS)
    if state is not None and state.sha256 == digest and state.loaded_at is not None:
        return _unchanged(conn, EPSS, state, now)
    try:
        with EpssReader(path) as reader:
            refused = _older(EPSS, reader.score_date, state, conn, now)
            if refused:
                return refused
            counts = intel_store.load_epss(
                conn,
                reader,
                reader.score_date.date() if reader.score_date else None,
                reader.model_version,
            )
            version = reader.model_version
            feed_date = reader.score_date
    except EpssError as exc:
        return FeedOutcome(EPSS, "failed", error=_record_failure(conn, EPSS, str(exc), now))
    intel_store.record_feed_loaded(
        conn, EPSS, source=source or str(path), version=version, feed_date=feed_date,
        record_count=counts.total, sha256=digest, now=now,
    )  # fmt: skip
    conn.commit()
    return FeedOutcome(EPSS, "loaded", counts.as_dict(), version, feed_date)


def _unchanged(
    conn: Connection, feed: str, state: intel_store.FeedState, now: datetime
) -> FeedOutcome:
    intel_store.record_feed_checked(conn, feed, now)
    conn.commit()
    return FeedOutcome(
        feed, "unchanged", {"total": state.record_count or 0}, state.version, state.feed_date
    )


def _older(
    feed: str,
    feed_date: datetime | None,
    state: intel_store.FeedState | None,
    conn: Connection,
    now: datetime,
) -> FeedOutcome | None:
    if state is None or state.feed_date is None or feed_date is None:
        return None
    if feed_date >= state.feed_date:
        return None
    message = (
        f"refused: the snapshot is from {feed_date:%Y-%m-%d}, older than the loaded one "
        f"({state.feed_date:%Y-%m-%d})"
    )
    _record_failure(conn, feed, message, now)
    return FeedOutcome(feed, "refused_older", error=message)


class _Counter:
    """Passes advisories through, noting the newest ``modified`` (the OSV feed's own date)."""

    def __init__(self) -> None:
        self.newest: datetime | None = None

    def count(self, advisories: Iterable[Advisory]) -> Iterator[Advisory]:
        for advisory in advisories:
            if self.newest is None or advisory.modified > self.newest:
                self.newest = advisory.modified
            yield advisory


def snapshot_sha256(path: Path) -> str:
    """sha256 of a file; of a folder, over its record files' relative names and contents."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        return digest.hexdigest()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- matching from the store ----------------------------------------------------------------


def advisory_lookup(conn: Connection) -> AdvisoryLookup:
    """A lookup backed by the store; :class:`IntelUnavailable` when no OSV feed is loaded."""
    loaded = [
        s for s in intel_store.feed_states(conn) if s.feed.startswith(OSV_PREFIX) and s.loaded_at
    ]
    if not loaded and intel_store.advisory_count(conn) == 0:
        raise IntelUnavailable(
            "no advisories are loaded: load an OSV feed first (the intel_feeds DAG, or "
            "`autosec intel load --osv PATH`)"
        )
    return lambda keys: intel_store.advisories_for(conn, keys)


def bind_sbom_engine(
    conn: Connection, now: datetime, max_age_days: int | None = None
) -> SbomEngine:
    """The sbom engine bound to the store's advisories and the freshness policy: what the scan
    stage runs instead of the registry's unbound engine."""
    from autosec.engines.sbom.engine import SbomEngine

    return SbomEngine(advisory_lookup(conn), max_age_days=max_age_days, today=now.date())


def osv_feed_date(conn: Connection) -> datetime | None:
    """How current the loaded advisories are: the newest OSV feed's own date, or the newest
    advisory's ``modified`` when advisories were loaded without a feed (None: nothing loaded)."""
    dates = [
        s.feed_date
        for s in intel_store.feed_states(conn)
        if s.feed.startswith(OSV_PREFIX) and s.feed_date is not None
    ]
    return max(dates) if dates else intel_store.newest_advisory_modified(conn)

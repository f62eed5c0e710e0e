"""The scan stage against the real store, with a fake runner that records every argv it is given.

Inventory values are untrusted: a lax source can put anything into ``assets.addresses``, and the
scan stage is the last wall before an argv. A failed, timed-out or unreadable run is recorded
with its evidence and produces nothing triage could close findings with.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.engines.runner import RunResult
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.scan import Batch, plan_batches, run_batch
from autosec.store import inventory, scans

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
HOSTILE = ("a;rm -rf /", "$(id)", "--script=x")
VERSION_OUTPUT = b"Nmap version 7.93 ( https://nmap.org )\nPlatform: x86_64-pc-linux-gnu\n"


def nmap_xml(*hosts: str) -> bytes:
    """A complete nmap report: each host up with 80/tcp open (Apache httpd 2.4.49)."""
    body = "".join(
        f'<host><status state="up" reason="user-set"/>'
        f'<address addr="{h}" addrtype="{"ipv6" if ":" in h else "ipv4"}"/>'
        '<hostnames></hostnames><ports><port protocol="tcp" portid="80">'
        '<state state="open" reason="syn-ack"/><service name="http" product="Apache httpd" '
        'version="2.4.49" method="probed" conf="10"/></port></ports></host>'
        for h in hosts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE nmaprun>'
        '<nmaprun scanner="nmap" args="nmap" version="7.93" xmloutputversion="1.05">'
        f'{body}<runstats><finished time="1" elapsed="1.0" exit="success"/>'
        f'<hosts up="{len(hosts)}" down="0" total="{len(hosts)}"/></runstats></nmaprun>'
    ).encode()


class FakeRunner:
    """Answers ``nmap --version`` and the scan; records every argv.

    Without a fixed ``scan`` result it reports every target after ``--`` up with 80/tcp open.
    """

    def __init__(self, scan: RunResult | None = None) -> None:
        self.scan = scan
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float) -> RunResult:
        assert all(isinstance(a, str) for a in argv), argv
        assert timeout > 0
        self.calls.append(tuple(argv))
        if list(argv[1:]) == ["--version"]:
            return result(VERSION_OUTPUT, argv=argv)
        if self.scan is None:
            return result(nmap_xml(*argv[list(argv).index("--") + 1 :]), argv=argv)
        return self.scan

    @property
    def scan_calls(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if "--version" not in c]


def result(
    stdout: bytes,
    exit_code: int = 0,
    stderr: bytes = b"",
    timed_out: bool = False,
    truncated: bool = False,
    argv: Sequence[str] = ("/usr/bin/nmap",),
) -> RunResult:
    return RunResult(
        argv=tuple(argv),
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        duration_seconds=12.0,
        timed_out=timed_out,
        truncated=truncated,
    )


def host(asset_id: str, *addresses: str, kind=AssetKind.HOST, tags=()) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        kind,
        "lax-cmdb",
        "team-ops",
        Environment.STAGING,
        Criticality.MEDIUM,
        tuple(addresses),
        tuple(tags),
    )


def seed(conn, *assets: Asset) -> None:
    """Straight into the store, as a source without validation would write them."""
    sync = inventory.start_sync(conn, "lax-cmdb", "file")
    inventory.apply_source_snapshot(conn, sync, "lax-cmdb", list(assets), T0)
    conn.commit()


def clock() -> datetime:
    return T0


CONFIG = ScanConfig(ports=[80, 443], timeout_seconds=60, batch_size=2)


def _runs(conn) -> list[tuple]:
    return conn.execute(
        "SELECT id, status, exit_code, error, asset_ids FROM scan_runs ORDER BY id"
    ).fetchall()


# --- hostile inventory values -----------------------------------------------------------------


def test_hostile_addresses_are_recorded_and_never_reach_an_argv(conn, tmp_path) -> None:
    seed(conn, host("mixed", *HOSTILE, "127.0.0.11"))
    runner = FakeRunner()

    outcome = run_batch(
        conn, Batch("nmap", ("mixed",)), CONFIG, LocalBlobStore(tmp_path), runner, clock, "run-1"
    )

    assert outcome.status == "succeeded"
    assert outcome.observations >= 1
    assert len(outcome.rejected_targets) == 3
    assert len(runner.scan_calls) == 1
    for argv in runner.calls:
        for value in HOSTILE:
            assert value not in argv
            assert not any(value in arg for arg in argv), (value, argv)
    scan_argv = runner.scan_calls[0]
    assert scan_argv[0] == "nmap"
    assert scan_argv[scan_argv.index("--") + 1 :] == ("127.0.0.11",)

    rejections = conn.execute(
        "SELECT stage, source, location, value, reason, run_ref FROM input_rejections ORDER BY id"
    ).fetchall()
    assert [r[3] for r in rejections] == list(HOSTILE)
    assert all(r[:3] == ("scan", "nmap", "asset:mixed") for r in rejections)
    assert all(r[5] == "run-1" for r in rejections)
    assert all(value in reason for _, _, _, value, reason, _ in rejections)
    assert conn.execute(
        "SELECT count(*) FROM events WHERE name = 'input.rejected' AND subject = 'asset:mixed'"
    ).fetchone() == (3,)

    (run_id, status, exit_code, error, asset_ids) = _runs(conn)[0]
    assert (status, exit_code, error, asset_ids) == ("succeeded", 0, None, ["mixed"])
    stored_argv = conn.execute("SELECT argv FROM scan_runs WHERE id = %s", (run_id,)).fetchone()[0]
    assert tuple(stored_argv) == scan_argv
    assert conn.execute(
        "SELECT engine_version FROM scan_runs WHERE id = %s", (run_id,)
    ).fetchone() == ("7.93",)
    observed = conn.execute(
        "SELECT DISTINCT asset_id, payload->'location'->>'host' FROM observations"
    ).fetchall()
    assert observed == [("mixed", "127.0.0.11")]


def test_an_asset_with_only_hostile_addresses_is_skipped(conn, tmp_path) -> None:
    seed(conn, host("evil", *HOSTILE))
    runner = FakeRunner()

    outcome = run_batch(
        conn, Batch("nmap", ("evil",)), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )

    assert outcome.status == "skipped" and outcome.scan_run_id is None
    assert runner.calls == []
    assert _runs(conn) == []
    assert conn.execute(
        "SELECT value FROM input_rejections WHERE stage = 'scan' ORDER BY id"
    ).fetchall() == [(v,) for v in HOSTILE]
    assert list(tmp_path.iterdir()) == []
    # The planner does not even offer it to the engine.
    assert plan_batches(conn, CONFIG, ["evil"], T0, full=True) == []


# --- failed runs ------------------------------------------------------------------------------


def _evidence(conn, run_id: int) -> tuple[str, str, int]:
    return conn.execute(
        "SELECT sha256, path, size_bytes FROM evidence WHERE scan_run_id = %s", (run_id,)
    ).fetchone()


def _events(conn, name: str) -> list[tuple]:
    return conn.execute(
        "SELECT subject, payload->>'error' FROM events WHERE name = %s ORDER BY id", (name,)
    ).fetchall()


def test_a_non_zero_exit_is_a_failed_run_with_evidence_and_no_observations(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"))
    partial = nmap_xml("127.0.0.11")[:200]
    runner = FakeRunner(result(partial, exit_code=1, stderr=b"QUITTING! socket troubles\n"))
    blobs = LocalBlobStore(tmp_path)

    outcome = run_batch(conn, Batch("nmap", ("web",)), CONFIG, blobs, runner, clock)

    assert outcome.status == "failed" and outcome.observations == 0
    (run_id, status, exit_code, error, _) = _runs(conn)[0]
    assert (status, exit_code) == ("failed", 1)
    assert "exit code 1" in error and "socket troubles" in error
    sha, uri, size = _evidence(conn, run_id)
    assert sha == hashlib.sha256(partial).hexdigest() == outcome.evidence_sha256
    assert size == len(partial)
    assert blobs.get(uri) == partial
    assert Path(uri.removeprefix("file://")).is_relative_to(tmp_path)
    assert _events(conn, "scan.failed") == [(f"scan_run:{run_id}", error)]
    assert conn.execute("SELECT count(*) FROM observations").fetchone() == (0,)
    # A failed run never counts as a successful scan of the asset.
    assert conn.execute(
        "SELECT last_success_at FROM asset_scan_state WHERE asset_id = 'web'"
    ).fetchone() == (None,)


def test_a_timed_out_run_is_recorded_as_timed_out(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"))
    runner = FakeRunner(result(b"<?xml", exit_code=-9, timed_out=True))

    outcome = run_batch(
        conn, Batch("nmap", ("web",)), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )

    assert outcome.status == "timed_out"
    (run_id, status, exit_code, error, _) = _runs(conn)[0]
    assert (status, exit_code) == ("timed_out", -9)
    assert "timed out" in error
    assert _evidence(conn, run_id)[0] == hashlib.sha256(b"<?xml").hexdigest()
    assert [s for s, _ in _events(conn, "scan.failed")] == [f"scan_run:{run_id}"]
    assert conn.execute("SELECT count(*) FROM observations").fetchone() == (0,)


def test_malformed_xml_fails_the_run_with_the_parse_error(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"))
    broken = b'<?xml version="1.0"?><nmaprun><host><status state="up"/></nmaprun>'
    runner = FakeRunner(result(broken))

    outcome = run_batch(
        conn, Batch("nmap", ("web",)), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )

    assert outcome.status == "failed"
    (run_id, status, exit_code, error, _) = _runs(conn)[0]
    assert (status, exit_code) == ("failed", 0)
    assert error.startswith("cannot parse nmap output: malformed nmap XML at line 1")
    assert error == outcome.error
    assert _evidence(conn, run_id)[0] == hashlib.sha256(broken).hexdigest()
    assert conn.execute("SELECT count(*) FROM observations").fetchone() == (0,)
    assert [s for s, _ in _events(conn, "scan.failed")] == [f"scan_run:{run_id}"]


def test_a_report_that_misses_a_target_closes_nothing(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"), host("db", "127.0.0.12"))
    runner = FakeRunner(result(nmap_xml("127.0.0.11")))

    outcome = run_batch(
        conn, Batch("nmap", ("db", "web")), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )

    assert outcome.status == "failed"
    assert "127.0.0.12" in outcome.error
    assert conn.execute("SELECT count(*) FROM observations").fetchone() == (0,)


# --- planning ---------------------------------------------------------------------------------


def _finish(conn, asset_ids: list[str], at: datetime, status: str = "succeeded") -> None:
    run = scans.start_scan_run(conn, "nmap", asset_ids, {}, ["nmap"], at)
    scans.finish_scan_run(conn, run, status, at)


def _planned(batches) -> list[str]:
    return sorted(a for b in batches for a in b.asset_ids)


def test_plan_batches_changed_plus_due_in_bounded_batches(conn) -> None:
    seed(
        conn,
        host("a-fresh", "127.0.0.21"),
        host("b-stale", "127.0.0.22"),
        host("c-never", "127.0.0.23"),
        host("d-changed", "127.0.0.24"),
        host("e-exposed", "127.0.0.25", tags=("internet-facing",)),
        host("f-failed", "127.0.0.26"),
        host("g-repo", "https://git.example.com/x", kind=AssetKind.REPOSITORY),
        host("h-hostile", "$(id)"),
    )
    now = T0 + timedelta(days=30)
    _finish(conn, ["a-fresh", "d-changed"], now - timedelta(days=1))
    _finish(conn, ["b-stale"], now - timedelta(days=8))
    _finish(conn, ["e-exposed"], now - timedelta(days=2))
    _finish(conn, ["f-failed"], now - timedelta(days=1))
    _finish(conn, ["f-failed"], now - timedelta(hours=1), status="failed")

    batches = plan_batches(conn, CONFIG, ["d-changed"], now)

    assert all(b.engine == "nmap" for b in batches)
    assert all(1 <= len(b.asset_ids) <= CONFIG.batch_size for b in batches)
    # a-fresh and f-failed succeeded a day ago (a later failed run does not make f due);
    # e-exposed is internet-facing, so two days is overdue; d-changed changed.
    assert _planned(batches) == ["b-stale", "c-never", "d-changed", "e-exposed"]
    assert len(batches) == 2

    everything = plan_batches(conn, CONFIG, [], now, full=True)
    assert _planned(everything) == [
        "a-fresh",
        "b-stale",
        "c-never",
        "d-changed",
        "e-exposed",
        "f-failed",
    ]
    assert [len(b.asset_ids) for b in everything] == [2, 2, 2]

    only = plan_batches(conn, CONFIG, [], now, only_asset_ids=["a-fresh", "g-repo"])
    assert [b.as_dict() for b in only] == [{"engine": "nmap", "asset_ids": ["a-fresh"]}]


def test_a_successful_batch_makes_its_assets_not_due(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"), host("db", "127.0.0.12"))
    assert _planned(plan_batches(conn, CONFIG, [], T0)) == ["db", "web"]

    run_batch(conn, Batch("nmap", ("web",)), CONFIG, LocalBlobStore(tmp_path), FakeRunner(), clock)

    assert _planned(plan_batches(conn, CONFIG, [], T0 + timedelta(days=1))) == ["db"]
    assert _planned(plan_batches(conn, CONFIG, [], T0 + timedelta(days=8))) == ["db", "web"]


# --- known defects (strict xfail: they start failing loudly once fixed) -----------------------


class _Crash(OSError):
    pass


class CrashingRunner(FakeRunner):
    """The runner itself fails (scanner missing, fork failed) instead of returning a result."""

    def __call__(self, argv: Sequence[str], *, timeout: float) -> RunResult:
        if "--version" not in argv:
            self.calls.append(tuple(argv))
            raise _Crash("cannot run 'nmap': not found on PATH")
        return super().__call__(argv, timeout=timeout)


def test_a_runner_that_raises_is_recorded_as_a_failed_run(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"))
    runner = CrashingRunner()
    # Re-raising (so the task fails) is fine, once the run is recorded.
    with contextlib.suppress(_Crash):
        run_batch(conn, Batch("nmap", ("web",)), CONFIG, LocalBlobStore(tmp_path), runner, clock)
    conn.rollback()
    [(run_id, status, _, error, _)] = _runs(conn)
    assert status == "failed"
    assert "not found on PATH" in (error or "")
    assert [s for s, _ in _events(conn, "scan.failed")] == [f"scan_run:{run_id}"]


def test_a_dual_stack_asset_is_scanned_on_both_families(conn, tmp_path) -> None:
    seed(conn, host("dual", "127.0.0.11", "::1"), host("web", "127.0.0.12"))
    runner = FakeRunner()
    blobs = LocalBlobStore(tmp_path)
    for batch in plan_batches(conn, ScanConfig(ports=[80], batch_size=10), [], T0):
        run_batch(conn, batch, CONFIG, blobs, runner, clock)
    scanned = {a for argv in runner.scan_calls for a in argv[argv.index("--") + 1 :]}
    assert scanned == {"127.0.0.11", "::1", "127.0.0.12"}
    assert all(("-6" in argv) == ("::1" in argv) for argv in runner.scan_calls)
    assert {r[1] for r in _runs(conn)} == {"succeeded"}


def test_evidence_can_be_read_back_from_a_path_with_a_space(conn, tmp_path) -> None:
    seed(conn, host("web", "127.0.0.11"))
    blobs = LocalBlobStore(tmp_path / "evidence store")
    outcome = run_batch(conn, Batch("nmap", ("web",)), CONFIG, blobs, FakeRunner(), clock)
    _, uri, _ = _evidence(conn, outcome.scan_run_id)
    assert hashlib.sha256(blobs.get(uri)).hexdigest() == outcome.evidence_sha256


def test_assets_that_share_an_address_are_scanned_once_and_both_get_findings(conn, tmp_path):
    seed(conn, host("box", "127.0.0.11"), host("box-web", "127.0.0.11", kind=AssetKind.WEB_APP))
    runner = FakeRunner()
    outcome = run_batch(
        conn, Batch("nmap", ("box", "box-web")), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )
    assert outcome.status == "succeeded"
    assert [argv[argv.index("--") + 1 :] for argv in runner.scan_calls] == [("127.0.0.11",)]
    owners = {o.asset_id for o in scans.load_observations(conn, outcome.scan_run_id)}
    assert owners == {"box", "box-web"}
    scanned = conn.execute(
        "SELECT asset_ids FROM scan_runs WHERE id = %s", (outcome.scan_run_id,)
    ).fetchone()[0]
    assert sorted(scanned) == ["box", "box-web"]


def test_an_engine_that_refuses_to_build_its_command_is_a_recorded_failed_run(
    conn, tmp_path, monkeypatch
) -> None:
    from autosec.engines.nmap.engine import NmapEngine

    seed(conn, host("web", "127.0.0.11"))
    previous = _runs(conn)

    def refuse(self, targets, options):
        raise ValueError("nmap will not take option 'scripts': ['evil']")

    monkeypatch.setattr(NmapEngine, "command", refuse)
    runner = FakeRunner()

    outcome = run_batch(
        conn, Batch("nmap", ("web",)), CONFIG, LocalBlobStore(tmp_path), runner, clock
    )

    assert outcome.status == "failed"
    assert all("--version" in call for call in runner.calls)  # no scan process was started
    (run_id, status, _, error, asset_ids) = _runs(conn)[len(previous)]
    assert (status, asset_ids) == ("failed", ["web"])
    assert error == "no command could be built: nmap will not take option 'scripts': ['evil']"
    assert [s for s, _ in _events(conn, "scan.failed")] == [f"scan_run:{run_id}"]
    assert conn.execute(
        "SELECT last_success_at FROM asset_scan_state WHERE asset_id = 'web'"
    ).fetchone() == (None,)

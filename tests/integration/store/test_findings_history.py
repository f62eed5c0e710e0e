"""History that engineers can trust: new, seen again, fixed only by a covering rescan, reopened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.stages.triage import triage_runs
from autosec.store import inventory, scans

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
ASSET = Asset(
    "web",
    "web",
    AssetKind.WEB_APP,
    "file",
    "team-web",
    Environment.PRODUCTION,
    Criticality.HIGH,
    ("127.0.0.11",),
)


def _obs(port: int, rule: str = "nmap.open-port", title: str = "open") -> Observation:
    return Observation(
        "web",
        "nmap",
        rule,
        title,
        Severity.LOW,
        Location(host="127.0.0.11", port=port, protocol="tcp"),
    )


def _scan(conn, observations, now, status="succeeded", ports=(80, 443)) -> int:
    run = scans.start_scan_run(
        conn, "nmap", ["web"], {"targets": ["127.0.0.11"], "ports": list(ports)}, ["nmap"], now
    )
    scans.add_observations(conn, run, observations)
    scans.finish_scan_run(conn, run, status, now)
    return run


@pytest.fixture
def seeded(conn):
    sync = inventory.start_sync(conn, "file", "file")
    inventory.apply_source_snapshot(conn, sync, "file", [ASSET], T0)
    conn.commit()
    return conn


def _statuses(conn) -> dict[int, str]:
    return dict(conn.execute("SELECT (location->>'port')::int, status FROM findings").fetchall())


def test_status_machine_and_history(seeded) -> None:
    conn = seeded
    _scan(conn, [_obs(80), _obs(443)], T0)
    first = triage_runs(conn, DAYS, T0)
    assert (first.new, first.fixed) == (2, 0)

    # Same report again, reworded: a no-op apart from last_seen.
    _scan(conn, [_obs(80, title="still open"), _obs(443)], T0 + timedelta(days=1))
    again = triage_runs(conn, DAYS, T0 + timedelta(days=1))
    assert (again.new, again.seen_again, again.fixed) == (0, 2, 0)
    assert conn.execute("SELECT count(*) FROM finding_history").fetchone()[0] == 2

    # A failed scan and a narrower scan close nothing.
    _scan(conn, [], T0 + timedelta(days=2), status="failed")
    _scan(conn, [_obs(80)], T0 + timedelta(days=2), ports=(80,))
    triage_runs(conn, DAYS, T0 + timedelta(days=2))
    assert _statuses(conn) == {80: "open", 443: "open"}

    # A covering rescan without 443 fixes exactly that one.
    _scan(conn, [_obs(80)], T0 + timedelta(days=3))
    assert triage_runs(conn, DAYS, T0 + timedelta(days=3)).fixed == 1
    assert _statuses(conn) == {80: "open", 443: "fixed"}

    # Seen again later: reopened, with a fresh due date from the reopen day.
    _scan(conn, [_obs(80), _obs(443)], T0 + timedelta(days=10))
    assert triage_runs(conn, DAYS, T0 + timedelta(days=10)).reopened == 1
    assert _statuses(conn) == {80: "open", 443: "reopened"}
    due = conn.execute("SELECT due_date FROM findings WHERE location->>'port' = '443'").fetchone()[
        0
    ]
    assert due == (T0 + timedelta(days=10 + 180)).date()
    transitions = conn.execute(
        "SELECT from_status, to_status, scan_run_id IS NOT NULL FROM finding_history h "
        "JOIN findings f ON f.id = h.finding_id WHERE f.location->>'port' = '443' ORDER BY h.id"
    ).fetchall()
    assert transitions == [
        (None, "open", True),
        ("open", "fixed", True),
        ("fixed", "reopened", True),
    ]


def test_each_run_is_triaged_once(seeded) -> None:
    conn = seeded
    _scan(conn, [_obs(80)], T0)
    assert triage_runs(conn, DAYS, T0).runs == 1
    assert triage_runs(conn, DAYS, T0).runs == 0

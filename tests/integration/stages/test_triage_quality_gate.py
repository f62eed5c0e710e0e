"""The data contract stops a bad batch before it writes: nothing of the run is stored, the run
is marked rejected with the failing expectations, people are told, other runs go on."""

from __future__ import annotations

from datetime import UTC, datetime

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
from autosec.store import findings
from support.store import nmap_run, sync_inventory

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
WEB = Asset(
    "web",
    "web",
    AssetKind.WEB_APP,
    "cmdb",
    "team-web",
    Environment.PRODUCTION,
    Criticality.HIGH,
    ("127.0.0.11",),
)
SCOPE = {"targets": ["127.0.0.11"], "ports": [80, 443, 8080]}


def _obs(port: int, score: float | None = None) -> Observation:
    return Observation(
        "web",
        "nmap",
        "nmap.open-port",
        f"port {port} open",
        Severity.HIGH,
        Location(host="127.0.0.11", port=port, protocol="tcp"),
        cvss_score=score,
    )


def _count(conn, query: str) -> int:
    return conn.execute(query).fetchone()[0]


def test_a_bad_batch_is_stopped_before_it_writes_and_the_others_go_on(conn) -> None:
    sync_inventory(conn, [WEB], T0)
    bad = nmap_run(conn, "web", [_obs(80), _obs(443, score=12.5), _obs(8080)], T0, SCOPE)
    good = nmap_run(conn, "web", [_obs(22)], T0, {"targets": ["127.0.0.11"], "ports": [22]})

    outcome = triage_runs(conn, DAYS, T0)

    assert (outcome.runs, outcome.rejected, outcome.new) == (2, 1, 1)
    [failure] = outcome.rejected_runs[bad]
    assert failure.startswith("cvss_score must be between 0 and 10")
    assert "1 of 3 rows fail" in failure and "12.5" in failure
    # Nothing of the bad run: no finding, no history, no finding.new event.
    assert conn.execute("SELECT last_scan_run_id FROM findings").fetchall() == [(good,)]
    assert _count(conn, "SELECT count(*) FROM finding_history") == 1
    assert _count(conn, "SELECT count(*) FROM events WHERE name = 'finding.new'") == 1
    status, error, triaged_at = conn.execute(
        "SELECT triage_status, triage_error, triaged_at FROM scan_runs WHERE id = %s", (bad,)
    ).fetchone()
    assert (status, triaged_at) == ("rejected", T0)
    assert error == failure
    [(subject, payload)] = conn.execute(
        "SELECT subject, payload FROM events WHERE name = 'triage.rejected'"
    ).fetchall()
    assert subject == f"scan_run:{bad}"
    assert payload["failed_expectations"] == [failure]
    assert payload["error"].startswith(f"nmap run {bad}: nothing stored; cvss_score")
    assert [r["id"] for r in findings.rejected_runs(conn, T0)] == [bad]
    # A rejected run is not taken up again, and closes nothing.
    assert triage_runs(conn, DAYS, T0).runs == 0


def test_a_rejected_run_closes_nothing_that_a_good_run_opened(conn) -> None:
    sync_inventory(conn, [WEB], T0)
    nmap_run(conn, "web", [_obs(80), _obs(443)], T0, SCOPE)
    assert triage_runs(conn, DAYS, T0).new == 2
    # The rescan reports 80 only, with a broken score: were it stored, 443 would be fixed.
    nmap_run(conn, "web", [_obs(80, score=-3.0)], T0, SCOPE)
    outcome = triage_runs(conn, DAYS, T0)
    assert (outcome.rejected, outcome.fixed) == (1, 0)
    assert conn.execute("SELECT DISTINCT status FROM findings").fetchall() == [("open",)]

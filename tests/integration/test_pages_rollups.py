"""Daily rollups: today's snapshot equals what the store holds, past days rebuilt from history
equal a replay of every finding's status changes, and refreshing is idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from autosec.config.estate import ScanConfig
from autosec.stages import rollups as stage
from autosec.store import rollups
from browser.pages_support import (
    add_approval,
    add_assets,
    add_blind_spot,
    add_finding,
    add_kev,
    assert_same_figures,
    host,
    midnight,
    replay,
    rollup_rows,
)
from support.store import nmap_run

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
TODAY = NOW.date()
SCAN = ScanConfig(engines=["nmap"])
KEV = ["CVE-2024-0001"]


def days_ago(n: int, hour: int = 10) -> datetime:
    return midnight(TODAY - timedelta(days=n)) + timedelta(hours=hour)


@pytest.fixture
def estate(conn):
    """Three teams' hosts (synced 20 days ago) with findings whose histories span the weeks."""
    add_assets(
        conn,
        [
            host("web-1", "payments", "10.0.0.1"),
            host("web-2", "payments", "10.0.0.2"),
            host("db-1", "data", "10.0.0.3"),
            host("ci-1", 'ops "core"', "10.0.0.4"),
        ],
        days_ago(20, 8),
    )
    add_kev(conn, KEV[0], date(2024, 1, 2), date(2024, 1, 23))
    f = []
    # payments: a critical past due (breach since its due date), a high fixed 3 days ago.
    f.append(
        add_finding(
            conn,
            "web-1",
            "payments",
            "critical",
            [(days_ago(12), "open")],
            due_date=TODAY - timedelta(days=5),
            known_exploited=True,
        )
    )
    f.append(
        add_finding(
            conn,
            "web-1",
            "payments",
            "high",
            [(days_ago(10), "open"), (days_ago(3, 14), "fixed")],
            due_date=TODAY + timedelta(days=20),
        )
    )
    # fixed, then reopened 2 days ago and past its (fresh) due date since yesterday
    f.append(
        add_finding(
            conn,
            "web-2",
            "payments",
            "high",
            [(days_ago(15), "open"), (days_ago(9), "fixed"), (days_ago(2), "reopened")],
            due_date=TODAY - timedelta(days=2),
            cve_ids=["CVE-2024-0001"],
        )
    )
    # data: medium fixed today, low accepted a week ago, critical opened and fixed the same day
    f.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "medium",
            [(days_ago(8), "open"), (days_ago(0, 9), "fixed")],
            due_date=TODAY + timedelta(days=60),
        )
    )
    f.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "low",
            [(days_ago(14), "open"), (days_ago(7), "accepted")],
            due_date=TODAY - timedelta(days=1),
        )
    )
    f.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "critical",
            [(days_ago(6, 8), "open"), (days_ago(6, 20), "fixed")],
            due_date=TODAY - timedelta(days=10),
        )
    )
    # nobody's: an info finding opened today with no due date
    f.append(add_finding(conn, "ci-1", None, "info", [(days_ago(0, 8), "open")]))
    # a team name that needs escaping everywhere it is shown
    f.append(
        add_finding(
            conn,
            "ci-1",
            'ops "core"',
            "medium",
            [(days_ago(4), "open")],
            due_date=TODAY + timedelta(days=1),
        )
    )
    conn.commit()
    return f


def test_todays_snapshot_equals_what_the_store_holds(conn, estate) -> None:
    outcome = stage.refresh(conn, SCAN, NOW, backfill_days=0)
    assert outcome.day == TODAY and outcome.rebuilt_days == []

    # Independently: group the findings table and today's history by owner and severity.
    expected: dict[tuple[str, str], dict] = {}
    for team, severity, open_, breached, kev in conn.execute(
        "SELECT coalesce(owner, ''), severity, count(*), "
        "count(*) FILTER (WHERE due_date < %s), "
        "count(*) FILTER (WHERE known_exploited OR cve_ids && "
        "  (SELECT array_agg(cve_id) FROM intel_kev)) "
        "FROM findings WHERE status IN ('open', 'reopened') GROUP BY 1, 2",
        (TODAY,),
    ):
        expected[(team, severity)] = {
            "open_findings": open_,
            "sla_breached": breached,
            "kev_open": kev,
        }
    for team, severity, fixed in conn.execute(
        "SELECT coalesce(f.owner, ''), f.severity, count(*) FROM findings f "
        "JOIN finding_history h ON h.finding_id = f.id "
        "WHERE h.to_status = 'fixed' AND h.at >= %s GROUP BY 1, 2",
        (midnight(TODAY),),
    ):
        expected.setdefault((team, severity), {})["fixed"] = fixed
    got = rollup_rows(conn, TODAY)
    assert set(got) == set(expected)
    for key, figures in expected.items():
        for name, value in figures.items():
            assert got[key][name] == value, (key, name)
    # And against the replay of the seeded events, every figure, fix times included.
    assert_same_figures(got, replay(estate, TODAY, KEV))
    assert got[("payments", "critical")]["sla_breached"] == 1
    assert got[("payments", "high")]["kev_open"] == 1  # through the KEV catalog, not the flag
    assert got[("", "info")] == {
        "open_findings": 1,
        "sla_breached": 0,
        "kev_open": 0,
        "opened": 1,
        "fixed": 0,
        "fix_seconds": 0,
    }


def test_past_days_are_rebuilt_from_history_as_a_replay_shows_them(conn, estate) -> None:
    outcome = stage.refresh(conn, SCAN, NOW, backfill_days=30)
    # The store began 20 days ago (the inventory sync): nothing is made up before it.
    assert outcome.rebuilt_days == [TODAY - timedelta(days=n) for n in range(20, 0, -1)]
    for n in range(21):
        day = TODAY - timedelta(days=n)
        assert_same_figures(rollup_rows(conn, day), replay(estate, day, KEV), day)
    two_days_ago = rollup_rows(conn, TODAY - timedelta(days=2))
    assert two_days_ago[("payments", "high")]["opened"] == 1  # the reopen
    six_days_ago = rollup_rows(conn, TODAY - timedelta(days=6))
    # opened and fixed the same day: not open at the end of it, but counted in and out
    assert six_days_ago[("data", "critical")] == pytest.approx(
        {
            "open_findings": 0,
            "sla_breached": 0,
            "kev_open": 0,
            "opened": 1,
            "fixed": 1,
            "fix_seconds": 12 * 3600,
        }
    )


def test_a_rebuild_of_today_agrees_with_the_snapshot(conn, estate) -> None:
    """Two ways to the same figures: the snapshot reads findings, the rebuild reads history."""
    stage.refresh(conn, SCAN, NOW, backfill_days=0)
    snapshot = rollup_rows(conn, TODAY)
    conn.execute("DELETE FROM rollup_findings_daily WHERE day = %s", (TODAY,))
    conn.execute("DELETE FROM rollup_daily WHERE day = %s", (TODAY,))
    assert rollups.rebuild(conn, [TODAY], NOW, ["nmap"], timedelta(days=7)) == 1
    assert_same_figures(rollup_rows(conn, TODAY), snapshot)


def test_refresh_is_idempotent_and_keeps_past_snapshots(conn, estate) -> None:
    stage.refresh(conn, SCAN, NOW - timedelta(days=1), backfill_days=0)
    yesterday = rollup_rows(conn, TODAY - timedelta(days=1))
    stage.refresh(conn, SCAN, NOW, backfill_days=30)
    first = rollup_rows(conn, TODAY)
    again = stage.refresh(conn, SCAN, NOW + timedelta(hours=1), backfill_days=30)
    assert again.rebuilt_days == []
    assert rollup_rows(conn, TODAY) == first
    basis = dict(conn.execute("SELECT day, basis FROM rollup_daily").fetchall())
    assert basis[TODAY] == "snapshot" and basis[TODAY - timedelta(days=1)] == "snapshot"
    assert basis[TODAY - timedelta(days=2)] == "history"
    assert rollup_rows(conn, TODAY - timedelta(days=1)) == yesterday

    # Something changes later today: the next refresh replaces today, and only today.
    conn.execute(
        "UPDATE findings SET status = 'fixed', fixed_at = %s WHERE id = %s",
        (NOW + timedelta(hours=2), estate[0].id),
    )
    conn.execute(
        "INSERT INTO finding_history (finding_id, from_status, to_status, reason, at) "
        "VALUES (%s, 'open', 'fixed', 'rescan', %s)",
        (estate[0].id, NOW + timedelta(hours=2)),
    )
    conn.commit()
    stage.refresh(conn, SCAN, NOW + timedelta(hours=3), backfill_days=30)
    after = rollup_rows(conn, TODAY)
    assert ("payments", "critical") in after
    assert after[("payments", "critical")]["open_findings"] == 0
    assert after[("payments", "critical")]["fixed"] == 1
    assert rollup_rows(conn, TODAY - timedelta(days=1)) == yesterday


def test_estate_figures_today_and_in_the_past(conn, estate) -> None:
    # web-1 and db-1 scanned successfully yesterday; web-2 only 10 days ago; ci-1 never.
    for asset_id, ago in (("web-1", 1), ("db-1", 1), ("web-2", 10)):
        nmap_run(conn, asset_id, [], days_ago(ago), {"ports": "1-1024"})
    add_blind_spot(conn, "10.0.9.1", days_ago(12))
    add_blind_spot(conn, "10.0.9.2", days_ago(12), resolved_at=days_ago(3))
    add_approval(conn, days_ago(5))
    add_approval(conn, days_ago(9), decided=days_ago(4))
    conn.commit()

    stage.refresh(conn, SCAN, NOW, backfill_days=30)
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT day, assets_total, assets_within_cadence, blind_spots_open, "
            "approvals_waiting FROM rollup_daily"
        )
    }
    # Today: the planner's own cadence (7 days for development hosts) says who is overdue.
    assert rows[TODAY] == (4, 2, 1, 1)
    # Five days ago: web-2's run 10 days ago was within 7 days; both spots open; one pending.
    assert rows[TODAY - timedelta(days=5)] == (4, 1, 2, 2)
    assert rows[TODAY - timedelta(days=4)] == (4, 1, 2, 1)
    assert rows[TODAY - timedelta(days=3)] == (4, 0, 1, 1)
    assert rows[TODAY - timedelta(days=1)] == (4, 2, 1, 1)
    assert rows[TODAY - timedelta(days=20)] == (4, 0, 0, 0)
    overdue = conn.execute(
        "SELECT asset_id, engines FROM rollup_overdue_assets ORDER BY asset_id"
    ).fetchall()
    assert overdue == [("ci-1", ["nmap"]), ("web-2", ["nmap"])]
    completeness = conn.execute(
        "SELECT inventoried, open_blind_spots, ratio FROM inventory_completeness WHERE day = %s",
        (TODAY,),
    ).fetchone()
    assert completeness[:2] == (4, 1) and float(completeness[2]) == pytest.approx(0.8)


def test_bad_arguments_are_refused_with_their_reason(conn) -> None:
    with pytest.raises(ValueError, match="backfill_days must be 0 or more"):
        stage.refresh(conn, SCAN, NOW, backfill_days=-1)
    with pytest.raises(ValueError, match=r"assets within cadence \(5\) must be between 0"):
        rollups.snapshot(conn, TODAY, NOW, assets_total=3, assets_within_cadence=5)
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        rollups.FindingFilter(severity="urgent")

"""Exceptions on the real store: second-person approval (the table refuses self-approval too),
scoped matching, new findings set aside at once, expiry that reopens and tells the owners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
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
from autosec.stages.triage import sweep_expired_exceptions, triage_runs
from autosec.store import exceptions
from autosec.triage.exceptions import (
    ActiveException,
    ExceptionRefused,
    ExceptionRequest,
    choose,
)
from support.store import nmap_run, sync_inventory

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
LOG4SHELL, OTHER = "CVE-2021-44228", "CVE-2023-0001"
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
DB = Asset(
    "db",
    "db",
    AssetKind.DATABASE,
    "cmdb",
    "team-db",
    Environment.PRODUCTION,
    Criticality.HIGH,
    ("127.0.0.12",),
)


def _obs(asset: Asset, port: int, cves=(), severity=Severity.HIGH) -> Observation:
    return Observation(
        asset.id,
        "nmap",
        f"vuln.{port}",
        f"issue on {port}",
        severity,
        Location(host=asset.addresses[0], port=port, protocol="tcp"),
        cve_ids=tuple(cves),
    )


def _scan(conn, asset: Asset, observations, at: datetime) -> None:
    nmap_run(conn, asset.id, observations, at, {"targets": list(asset.addresses)})
    triage_runs(conn, DAYS, at)


@pytest.fixture
def store(conn):
    """web: 80 (Log4Shell), 443 (other CVE), 8080; db: 5432 (Log4Shell)."""
    sync_inventory(conn, [WEB, DB], T0)
    _scan(conn, WEB, [_obs(WEB, 80, [LOG4SHELL]), _obs(WEB, 443, [OTHER]), _obs(WEB, 8080)], T0)
    _scan(conn, DB, [_obs(DB, 5432, [LOG4SHELL])], T0)
    return conn


def _request(conn, scope: str, target: str, kind="risk_acceptance", days=30, by="alice", at=T0):
    row = exceptions.request_exception(
        conn,
        ExceptionRequest(kind, scope, target, "WAF rule blocks it", by, at + timedelta(days=days)),
        at,
    )
    conn.commit()
    return row["id"]


def _statuses(conn) -> dict[tuple[str, int], tuple[str, int | None]]:
    rows = conn.execute(
        "SELECT asset_id, (location->>'port')::int, status, exception_id FROM findings"
    ).fetchall()
    return {(a, p): (s, e) for a, p, s, e in rows}


def _fingerprint(conn, asset_id: str, port: int) -> str:
    return conn.execute(
        "SELECT fingerprint FROM findings WHERE asset_id = %s AND (location->>'port')::int = %s",
        (asset_id, port),
    ).fetchone()[0]


def test_nobody_approves_their_own_exception_not_even_past_the_code(store) -> None:
    conn = store
    exception_id = _request(conn, "cve", LOG4SHELL, by="alice")
    with pytest.raises(ExceptionRefused, match="cannot approve it"):
        exceptions.approve_exception(conn, exception_id, " ALICE ", T0)
    conn.rollback()
    # Straight to the table, past every check in the code: the table refuses it.
    with pytest.raises(psycopg.errors.CheckViolation, match="not_self_approved"):
        conn.execute(
            "UPDATE finding_exceptions SET status = 'approved', approved_by = 'Alice', "
            "approved_at = now() WHERE id = %s",
            (exception_id,),
        )
    conn.rollback()
    assert exceptions.load_exception(conn, exception_id)["status"] == "requested"
    assert all(status == "open" for status, _ in _statuses(conn).values())


def test_a_cve_exception_sets_aside_that_cve_on_every_asset_with_history(store) -> None:
    conn = store
    exception_id = _request(conn, "cve", "cve-2021-44228")
    approved = exceptions.approve_exception(conn, exception_id, "bob", T0 + timedelta(hours=1))
    conn.commit()
    assert approved["findings"] == 2 and approved["approved_by"] == "bob"
    assert _statuses(conn) == {
        ("web", 80): ("accepted", exception_id),
        ("web", 443): ("open", None),
        ("web", 8080): ("open", None),
        ("db", 5432): ("accepted", exception_id),
    }
    [history] = conn.execute(
        "SELECT h.from_status, h.to_status, h.exception_id, h.reason FROM finding_history h "
        "JOIN findings f ON f.id = h.finding_id WHERE f.asset_id = 'db' AND h.to_status = "
        "'accepted'"
    ).fetchall()
    assert history[:3] == ("open", "accepted", exception_id)
    assert history[3].startswith(f"exception #{exception_id} (risk acceptance, approved by bob")
    log = exceptions.load_exception(conn, exception_id)["log"]
    assert [(s["step"], s["actor"], s["findings"]) for s in log] == [
        ("requested", "alice", 0),
        ("approved", "bob", 2),
    ]


def test_finding_and_asset_scopes_and_false_positives(store) -> None:
    conn = store
    by_finding = _request(conn, "finding", _fingerprint(conn, "web", 8080), kind="false_positive")
    exceptions.approve_exception(conn, by_finding, "bob", T0)
    by_asset = _request(conn, "asset", "db")
    exceptions.approve_exception(conn, by_asset, "bob", T0)
    conn.commit()
    assert _statuses(conn) == {
        ("web", 80): ("open", None),
        ("web", 443): ("open", None),
        ("web", 8080): ("false_positive", by_finding),
        ("db", 5432): ("accepted", by_asset),
    }


@pytest.mark.parametrize(
    ("scope", "target", "message"),
    [
        ("finding", "ab" * 32, "no finding has fingerprint"),
        ("asset", "nowhere", "not in the inventory"),
        ("cve", "Log4Shell", "not a CVE id"),
    ],
)
def test_a_request_for_nothing_is_refused(store, scope, target, message) -> None:
    with pytest.raises(ExceptionRefused, match=message):
        _request(store, scope, target)


def test_new_findings_matching_an_active_exception_are_set_aside_at_once(store) -> None:
    conn = store
    exception_id = _request(conn, "cve", LOG4SHELL)
    exceptions.approve_exception(conn, exception_id, "bob", T0)
    conn.commit()
    later = T0 + timedelta(days=1)
    _scan(conn, WEB, [_obs(WEB, 80, [LOG4SHELL]), _obs(WEB, 9090, [LOG4SHELL])], later)
    assert _statuses(conn)[("web", 9090)] == ("accepted", exception_id)
    history = conn.execute(
        "SELECT h.from_status, h.to_status, h.scan_run_id IS NOT NULL FROM finding_history h "
        "JOIN findings f ON f.id = h.finding_id WHERE (f.location->>'port')::int = 9090 "
        "ORDER BY h.id"
    ).fetchall()
    assert history == [(None, "open", True), ("open", "accepted", True)]


def test_expiry_reopens_the_findings_and_tells_their_owners(store) -> None:
    conn = store
    exception_id = _request(conn, "cve", LOG4SHELL, days=10)
    exceptions.approve_exception(conn, exception_id, "bob", T0)
    pending = _request(conn, "asset", "web", days=5)  # never approved
    conn.commit()

    assert sweep_expired_exceptions(conn, T0 + timedelta(days=4)) == []
    expired = sweep_expired_exceptions(conn, T0 + timedelta(days=10))
    assert [(e["id"], e["was"], e["findings"], e["owners"]) for e in expired] == [
        (exception_id, "approved", 2, ["team-db", "team-web"]),
        (pending, "requested", 0, []),
    ]
    assert _statuses(conn)[("web", 80)] == ("open", None)
    assert _statuses(conn)[("db", 5432)] == ("open", None)
    [(subject, payload)] = conn.execute(
        "SELECT subject, payload FROM events WHERE name = 'exception.expired'"
    ).fetchall()
    assert subject == f"exception:{exception_id}"
    assert payload["owners"] == ["team-db", "team-web"] and payload["findings"] == 2
    assert "open again for team-db, team-web" in payload["summary"]
    reopened = conn.execute(
        "SELECT h.from_status, h.to_status, h.exception_id, h.reason FROM finding_history h "
        "JOIN findings f ON f.id = h.finding_id WHERE f.asset_id = 'db' ORDER BY h.id DESC "
        "LIMIT 1"
    ).fetchone()
    assert reopened[:3] == ("accepted", "open", exception_id)
    assert reopened[3] == f"exception #{exception_id} expired on 2026-11-11"
    assert exceptions.load_exception(conn, exception_id)["status"] == "expired"
    # The sweep is idempotent, and a new finding no longer matches the expired exception.
    assert sweep_expired_exceptions(conn, T0 + timedelta(days=11)) == []
    _scan(
        conn,
        WEB,
        [_obs(WEB, 80, [LOG4SHELL]), _obs(WEB, 7070, [LOG4SHELL])],
        T0 + timedelta(days=11),
    )
    assert _statuses(conn)[("web", 7070)] == ("open", None)


def test_on_expiry_a_longer_exception_that_still_applies_takes_over(store) -> None:
    conn = store
    short = _request(conn, "finding", _fingerprint(conn, "web", 80), days=5)
    long = _request(conn, "asset", "web", days=60)
    exceptions.approve_exception(conn, short, "bob", T0)
    exceptions.approve_exception(conn, long, "bob", T0)
    conn.commit()
    assert _statuses(conn)[("web", 80)] == ("accepted", short)
    sweep_expired_exceptions(conn, T0 + timedelta(days=6))
    assert _statuses(conn)[("web", 80)] == ("accepted", long)


def test_revoking_reopens_at_once(store) -> None:
    conn = store
    exception_id = _request(conn, "asset", "web")
    exceptions.approve_exception(conn, exception_id, "bob", T0)
    conn.commit()
    with pytest.raises(ExceptionRefused, match="needs a reason"):
        exceptions.revoke_exception(conn, exception_id, "carol", " ", T0)
    revoked = exceptions.revoke_exception(conn, exception_id, "carol", "patched", T0)
    conn.commit()
    assert revoked["status"] == "revoked" and revoked["findings"] == 3
    assert {s for (a, _), (s, _) in _statuses(conn).items() if a == "web"} == {"open"}
    assert (
        conn.execute("SELECT count(*) FROM events WHERE name = 'exception.revoked'").fetchone()[0]
        == 1
    )


def test_the_store_picks_the_exception_the_pure_rules_pick(store) -> None:
    conn = store
    ids = [
        _request(conn, "asset", "web", days=90),
        _request(conn, "cve", LOG4SHELL, days=20),
        _request(conn, "cve", LOG4SHELL, days=40),
        _request(conn, "finding", _fingerprint(conn, "web", 443), days=3),
    ]
    for exception_id in ids:
        exceptions.approve_exception(conn, exception_id, "bob", T0)
    conn.commit()
    active = exceptions.active_exceptions(conn, T0)
    assert all(isinstance(e, ActiveException) for e in active) and len(active) == 4
    rows = conn.execute(
        "SELECT fingerprint, asset_id, cve_ids, exception_id FROM findings ORDER BY id"
    ).fetchall()
    for fingerprint, asset_id, cve_ids, exception_id in rows:
        expected = choose(active, fingerprint.strip(), asset_id, cve_ids, T0)
        assert exception_id == (expected.id if expected else None)
    assert _statuses(conn)[("web", 80)][1] == ids[2]  # the longer of the two CVE exceptions


def test_list_filters_and_counts(store) -> None:
    conn = store
    first = _request(conn, "cve", LOG4SHELL)
    _request(conn, "asset", "db", kind="false_positive")
    exceptions.approve_exception(conn, first, "bob", T0)
    conn.commit()
    approved = exceptions.list_exceptions(conn, status="approved")
    assert [(r["id"], r["findings_set_aside"], r["target"]) for r in approved] == [
        (first, 2, LOG4SHELL)
    ]
    assert [r["kind"] for r in exceptions.list_exceptions(conn, kind="false_positive")] == [
        "false_positive"
    ]
    with pytest.raises(ValueError, match="exception status 'live'"):
        exceptions.list_exceptions(conn, status="live")

"""Verification rescans: asked for after a fix, settled only by a covering rescan after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.cli import main as autosec
from autosec.domain.models import Severity
from autosec.stages.remediate import (
    VerificationRefused,
    apply_planned,
    decide_findings,
    request_verification,
    settle_verifications,
)
from autosec.store import inventory
from autosec.store import remediation as ledger

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
ASKED = T0 + timedelta(hours=1)


def _applied(estate, actions, session) -> dict:
    estate.scan("runner", {8080: Severity.MEDIUM}, T0)
    plan = decide_findings(estate.conn, estate.policy, T0, requester="autosec-scheduler")
    apply_planned(estate.conn, plan.apply_now, actions, session, T0)
    return estate.action(estate.finding("runner", 8080)["id"])


def _history(conn) -> int:
    return conn.execute("SELECT count(*) FROM finding_history").fetchone()[0]


def test_a_fix_is_confirmed_only_by_a_covering_rescan_after_the_request(
    estate, actions, session
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)

    request = request_verification(conn, action["id"], ASKED)

    assert request.created
    assert (request.finding_id, request.asset_id, request.engine) == (
        action["finding_id"],
        "runner",
        "nmap",
    )
    assert ledger.pending_verifications(conn, "nmap") == ["runner"]
    assert ledger.pending_verifications(conn, "tls") == []
    [(subject, payload)] = estate.events("verification.requested")
    assert subject == f"verification:{request.id}" and payload["action_id"] == action["id"]
    again = request_verification(conn, action["id"], ASKED + timedelta(minutes=1))
    assert (again.id, again.created) == (request.id, False)
    assert len(estate.events("verification.requested")) == 1

    # Nothing rescanned yet; then a failed scan and a narrower one (another port): still pending.
    assert settle_verifications(conn, ASKED) == {
        "confirmed_fixed": 0,
        "still_present": 0,
        "pending": 1,
    }
    estate.scan("runner", {}, ASKED + timedelta(hours=1), status="failed")
    estate.scan("runner", {}, ASKED + timedelta(hours=1), ports=(22,))
    assert settle_verifications(conn, ASKED + timedelta(hours=1))["pending"] == 1
    assert estate.finding("runner", 8080)["status"] == "open"

    # A covering rescan without the finding: triage fixes it, the verification confirms it.
    rescan = estate.scan("runner", {}, ASKED + timedelta(hours=2))
    assert estate.finding("runner", 8080)["status"] == "fixed"
    history = _history(conn)
    counts = settle_verifications(conn, ASKED + timedelta(hours=2))

    assert counts == {"confirmed_fixed": 1, "still_present": 0, "pending": 0}
    [row] = ledger.verifications_for(conn, action["id"])
    assert (row["outcome"], row["scan_run_id"], row["settled_at"]) == (
        "confirmed_fixed",
        rescan,
        ASKED + timedelta(hours=2),
    )
    assert ledger.pending_verifications(conn, "nmap") == []
    [(_, settled)] = estate.events("verification.settled")
    assert (settled["outcome"], settled["scan_run_id"]) == ("confirmed_fixed", rescan)
    assert _history(conn) == history  # settling changed no finding
    assert settle_verifications(conn, ASKED + timedelta(hours=3))["confirmed_fixed"] == 0


def test_a_finding_seen_again_is_still_present_and_stays_open(estate, actions, session) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)
    estate.scan("runner", {8080: Severity.MEDIUM}, ASKED - timedelta(minutes=30))  # too early
    request = request_verification(conn, action["id"], ASKED)

    assert settle_verifications(conn, ASKED)["pending"] == 1

    rescan = estate.scan("runner", {8080: Severity.MEDIUM}, ASKED + timedelta(hours=1))
    history = _history(conn)
    counts = settle_verifications(conn, ASKED + timedelta(hours=1))

    assert counts == {"confirmed_fixed": 0, "still_present": 1, "pending": 0}
    [row] = ledger.verifications_for(conn, action["id"])
    assert (row["id"], row["outcome"], row["scan_run_id"]) == (request.id, "still_present", rescan)
    assert estate.finding("runner", 8080)["status"] == "open"
    assert _history(conn) == history

    # A new request after a settled one is a new verification.
    later = request_verification(conn, action["id"], ASKED + timedelta(hours=2))
    assert later.created and later.id != request.id


def test_what_cannot_be_verified(estate, actions, session, conn) -> None:
    estate.scan("runner", {8080: Severity.MEDIUM}, T0)
    dry = decide_findings(conn, estate.policy, T0, requester="autosec-scheduler", dry_run=True)
    with pytest.raises(VerificationRefused, match="dry run"):
        request_verification(conn, dry.apply_now[0], ASKED)
    with pytest.raises(VerificationRefused, match="does not exist"):
        request_verification(conn, 999_999, ASKED)

    real = decide_findings(conn, estate.policy, T0, requester="autosec-scheduler")
    apply_planned(conn, real.apply_now, actions, session, T0)
    sync = inventory.start_sync(conn, "cmdb", "file")
    web = inventory.load_assets(conn, ["web"])
    inventory.apply_source_snapshot(conn, sync, "cmdb", web, ASKED)
    conn.commit()
    with pytest.raises(VerificationRefused, match=r"runner of action \d+ is retired"):
        request_verification(conn, real.apply_now[0], ASKED)
    assert ledger.verifications_for(conn, real.apply_now[0]) == []


def test_cli_verify(estate, actions, session, store_url, capsys) -> None:
    action = _applied(estate, actions, session)
    argv = ["--database-url", store_url, "actions", "verify", str(action["id"]), "--as", "alice"]

    assert autosec(argv) == 0
    assert "verification #1 requested" in capsys.readouterr().out
    assert autosec(argv) == 0
    assert "verification #1 already pending" in capsys.readouterr().out
    [row] = ledger.verifications_for(estate.conn, action["id"])
    assert row["requested_by"] == "alice"
    assert autosec(["--database-url", store_url, "actions", "verify", "424242"]) == 1
    assert "action 424242 does not exist" in capsys.readouterr().err

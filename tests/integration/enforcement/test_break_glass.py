"""Break glass: who may open it, for how long, what it suspends, and that every use is on record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autosec.cli import main as autosec
from autosec.config.policy import load_policy
from autosec.domain.models import Severity
from autosec.stages.break_glass import (
    BreakGlassRefused,
    active_suspension,
    close_session,
    open_session,
    sessions,
)
from autosec.stages.remediate import decide_findings
from autosec.store import approvals
from autosec.store import remediation as ledger

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
DEFAULT_POLICY = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"
GATE = "prod-high-ticket-approval"
REASON = "SEC-1 incident: contain the exposed admin panel now"


def _decision(conn, finding_id: int) -> dict:
    [row] = ledger.decision_for(conn, finding_id)
    return row


def test_opening_is_refused_unless_allowed_short_enough_and_reasoned(default_estate) -> None:
    conn, loaded = default_estate.conn, default_estate.policy

    for user, reason, minutes, error in (
        ("mallory", REASON, None, "mallory may not open it"),
        ("ciso", REASON, 61, r"longer than break_glass.max_minutes \(60\)"),
        ("ciso", "   ", None, "a reason is required"),
        ("ciso", REASON, 0, "not a duration"),
    ):
        with pytest.raises(BreakGlassRefused, match=error):
            open_session(conn, loaded, user, reason, T0, minutes=minutes)

    assert conn.execute("SELECT count(*) FROM break_glass_sessions").fetchone()[0] == 0
    assert active_suspension(conn, loaded, T0) is None
    refused = default_estate.events("break_glass.refused")
    assert [s for s, _ in refused] == ["user:mallory", "user:ciso", "user:ciso", "user:ciso"]
    assert "longer than" in refused[1][1]["error"]


def test_suspension_changes_decisions_only_while_open(default_estate) -> None:
    conn, loaded, estate = default_estate.conn, default_estate.policy, default_estate
    requester = "autosec-scheduler"

    # No session: the production gate decides a high finding on web.
    estate.scan("web", {443: Severity.HIGH}, T0)
    before = decide_findings(conn, loaded, T0, requester=requester)
    first = _decision(conn, estate.finding("web", 443)["id"])
    assert (first["rule_id"], first["break_glass_session_id"]) == (GATE, None)
    assert before.break_glass_session_id is None

    opened_at = T0 + timedelta(hours=1)
    session = open_session(conn, loaded, "ciso", REASON, opened_at, minutes=30)
    assert session["expires_at"] == opened_at + timedelta(minutes=30)
    assert session["suspended_rules"] == [GATE]
    assert session["policy_hash"] == loaded.sha256
    [(subject, payload)] = estate.events("break_glass.opened")
    assert subject == f"break_glass:{session['id']}" and payload["reason"] == REASON

    # While it is open the gate is skipped; the next rule decides, and still fails closed.
    estate.scan("web", {443: Severity.HIGH, 8443: Severity.HIGH}, opened_at)
    during = decide_findings(conn, loaded, opened_at + timedelta(minutes=1), requester=requester)
    assert (during.decisions, during.break_glass_uses) == (1, 1)
    assert during.break_glass_session_id == session["id"]
    changed = _decision(conn, estate.finding("web", 8443)["id"])
    assert changed["rule_id"] == "ticket-medium-up"
    assert changed["mode"] == "in_the_loop"
    assert changed["break_glass_session_id"] == session["id"]
    assert changed["reasons"][0].startswith(f"rule {GATE} matched")
    assert f"suspended by break glass #{session['id']}: skipped" in changed["reasons"][0]
    assert changed["inputs"]["inputs"]["break_glass"] == {
        "session_id": session["id"],
        "suspended_rules": [GATE],
    }
    assert changed["inputs"]["skipped_rules"] == [GATE]
    [gate] = [a for a in approvals.list_approvals(conn) if a["id"] in during.approval_ids]
    assert gate["approvers"] == ["secops-lead", "group:secops"]  # the fallback, not the CISO
    [(subject, used)] = estate.events("break_glass.used")
    assert subject == f"break_glass:{session['id']}"
    assert (used["finding_id"], used["skipped_rules"]) == (changed["finding_id"], [GATE])

    # Expired: the gate decides again.
    expired_at = opened_at + timedelta(minutes=30)
    estate.scan("web", {443: Severity.HIGH, 8443: Severity.HIGH, 9443: Severity.HIGH}, expired_at)
    after = decide_findings(conn, loaded, expired_at, requester=requester)
    late = _decision(conn, estate.finding("web", 9443)["id"])
    assert (late["rule_id"], late["break_glass_session_id"]) == (GATE, None)
    assert "break_glass" not in late["inputs"]["inputs"]
    assert (after.break_glass_session_id, after.break_glass_uses) == (None, 0)

    # Closed early: the gate decides again at once.
    second = open_session(conn, loaded, "ciso", "second incident", T0 + timedelta(hours=3))
    close_session(conn, loaded, second["id"], "ciso", T0 + timedelta(hours=3, minutes=5))
    [(subject, closed)] = estate.events("break_glass.closed")
    assert subject == f"break_glass:{second['id']}" and closed["closed_by"] == "ciso"
    at = T0 + timedelta(hours=3, minutes=6)
    estate.scan(
        "web",
        {443: Severity.HIGH, 8443: Severity.HIGH, 9443: Severity.HIGH, 10443: Severity.HIGH},
        at,
    )
    decide_findings(conn, loaded, at, requester=requester)
    assert _decision(conn, estate.finding("web", 10443)["id"])["rule_id"] == GATE
    assert len(estate.events("break_glass.used")) == 1

    # What the report lists: both sessions, how each ended, and what each changed.
    listed = sessions(conn, at, since=T0)
    assert [(s["id"], s["state"], s["uses"]) for s in listed] == [
        (session["id"], "expired", 1),
        (second["id"], "closed", 0),
    ]
    assert listed[0]["ended_at"] == expired_at
    assert listed[1]["ended_at"] == T0 + timedelta(hours=3, minutes=5)
    assert ledger.break_glass_sessions(conn, at) == []
    [use] = ledger.break_glass_uses(conn, session["id"])
    assert (use["finding_id"], use["rule_id"]) == (changed["finding_id"], "ticket-medium-up")


def test_only_one_session_at_a_time_and_who_may_close(estate) -> None:
    conn, loaded = estate.conn, estate.policy  # who: [ciso, group:incident], max 30 minutes

    with pytest.raises(BreakGlassRefused, match="dana may not open"):
        open_session(conn, loaded, "dana", REASON, T0)
    session = open_session(conn, loaded, "dana", REASON, T0, groups=["incident"])
    assert session["expires_at"] == T0 + timedelta(minutes=30)  # the policy's maximum
    with pytest.raises(BreakGlassRefused, match=f"#{session['id']} is already open"):
        open_session(conn, loaded, "ciso", "another", T0 + timedelta(minutes=1))

    with pytest.raises(BreakGlassRefused, match="mallory may not close"):
        close_session(conn, loaded, session["id"], "mallory", T0 + timedelta(minutes=2))
    with pytest.raises(BreakGlassRefused, match="does not exist"):
        close_session(conn, loaded, 999, "ciso", T0 + timedelta(minutes=2))
    closed = close_session(conn, loaded, session["id"], "ciso", T0 + timedelta(minutes=3))
    assert (closed["closed_by"], closed["closed_at"]) == ("ciso", T0 + timedelta(minutes=3))
    with pytest.raises(BreakGlassRefused, match=r"already closed \(by ciso"):
        close_session(conn, loaded, session["id"], "dana", T0 + timedelta(minutes=4))

    # Its opener may close it even without the group; an expired one is already over.
    third = open_session(conn, loaded, "dana", REASON, T0 + timedelta(hours=1), groups=["incident"])
    assert close_session(conn, loaded, third["id"], "dana", T0 + timedelta(hours=1, minutes=1))
    fourth = open_session(conn, loaded, "ciso", REASON, T0 + timedelta(hours=2), minutes=5)
    with pytest.raises(BreakGlassRefused, match="already expired"):
        close_session(conn, loaded, fourth["id"], "ciso", T0 + timedelta(hours=2, minutes=5))
    assert [s for s, _ in estate.events("break_glass.opened")] == [
        f"break_glass:{i}" for i in (session["id"], third["id"], fourth["id"])
    ]
    assert len(estate.events("break_glass.closed")) == 2


def test_a_policy_that_stops_suspending_a_rule_ends_the_suspension(
    default_estate, tmp_path
) -> None:
    conn, loaded = default_estate.conn, default_estate.policy
    session = open_session(conn, loaded, "ciso", REASON, T0)
    changed = tmp_path / "policy.yaml"
    changed.write_text(DEFAULT_POLICY.read_text().replace(f"suspends: [{GATE}]", "suspends: []"))
    stricter = load_policy(changed)

    suspension = active_suspension(conn, loaded, T0 + timedelta(minutes=1))
    assert suspension is not None
    assert (suspension.session_id, suspension.rules) == (session["id"], frozenset({GATE}))
    assert active_suspension(conn, stricter, T0 + timedelta(minutes=1)) is None


def test_cli_open_status_close(default_estate, store_url, capsys) -> None:
    base = ["--database-url", store_url, "break-glass"]
    policy = ["--policy", str(DEFAULT_POLICY)]

    assert autosec([*base, "open", "--as", "mallory", "--reason", REASON, *policy]) == 1
    assert "mallory may not open it" in capsys.readouterr().err
    assert (
        autosec([*base, "open", "--as", "ciso", "--reason", REASON, "--minutes", "90", *policy])
        == 1
    )
    assert "longer than break_glass.max_minutes (60)" in capsys.readouterr().err
    assert autosec([*base, "open", "--as", "ciso", "--reason", "", *policy]) == 1
    assert "a reason is required" in capsys.readouterr().err

    assert (
        autosec([*base, "open", "--as", "ciso", "--reason", REASON, "--minutes", "15", *policy])
        == 0
    )
    out = capsys.readouterr().out
    assert "break glass #1 open by ciso" in out and GATE in out

    assert autosec([*base, "status"]) == 0
    assert "break glass is OPEN: #1" in capsys.readouterr().out
    assert autosec([*base, "status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["state"], row["suspended_rules"], row["reason"]) == (
        1,
        "open",
        [GATE],
        REASON,
    )

    assert autosec([*base, "close", "1", "--as", "mallory", *policy]) == 1
    assert "mallory may not close" in capsys.readouterr().err
    assert autosec([*base, "close", "1", "--as", "ciso", *policy]) == 0
    assert "break glass #1 closed by ciso" in capsys.readouterr().out
    assert autosec([*base, "status"]) == 0
    out = capsys.readouterr().out
    assert "no break glass session is open" in out and "#1 [closed]" in out
    assert len(default_estate.events("break_glass.refused")) == 4

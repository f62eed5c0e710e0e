"""After acting: the ticket follows its finding, and a fix reported on the remote side asks for a
verification rescan. Against the real store and the demo ticketing and Git hosting APIs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autosec.config.policy import load_policy
from autosec.demo.githost import GitHostServer
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import Location, Observation, Severity
from autosec.policy.engine import FindingFacts, decide
from autosec.remediation.actions.patch_request import GitHostEndpoint, PatchRequestAction
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.remediate import (
    apply_planned,
    decide_findings,
    follow_up,
    rollback_action,
    settle_verifications,
)
from autosec.stages.triage import triage_runs
from autosec.store import inventory, scans
from autosec.store import remediation as ledger
from support.http import Forward, ForwardingGateway, failure, serving

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)
NOTHING = {"closed": 0, "commented": 0, "verifications_requested": 0, "errors": 0}
REPO = "acme/runner-tools"


@pytest.fixture
def ticketing(ticket_token) -> Iterator[TicketingServer]:
    """The ticketing API on a clock one second further at each reading, so two resolutions of
    one ticket never share a timestamp (the API keeps whole seconds)."""
    ticks = itertools.count()
    with TicketingServer(
        token=ticket_token, clock=lambda: T0 + timedelta(seconds=next(ticks))
    ) as server:
        yield server


def _applied(estate, actions, session, found=None) -> dict:
    """A ticket filed (on the loop, at once) for each finding of one nmap run over the runner."""
    estate.scan("runner", found or {8080: Severity.MEDIUM}, T0)
    plan = decide_findings(estate.conn, estate.policy, T0, requester="autosec-scheduler")
    apply_planned(estate.conn, plan.apply_now, actions, session, T0)
    return estate.action(estate.finding("runner", 8080)["id"])


def _ticket(ticketing, action: dict) -> dict:
    [ticket] = [t for t in ticketing.tickets() if t["external_id"] == action["idempotency_key"]]
    return ticket


def _kinds(entries: list[dict]) -> list[str]:
    return [e["kind"] for e in entries]


def test_a_fixed_finding_closes_its_ticket_once_naming_the_scan_run(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)

    # Still open: the ticket is read, what it says is logged once, nothing else happens.
    assert follow_up(conn, actions, session, T0 + HOUR) == NOTHING
    assert follow_up(conn, actions, session, T0 + 2 * HOUR) == NOTHING
    logged = estate.action(action["finding_id"])["follow_up"]
    assert [(e["kind"], e["state"]) for e in logged] == [("seen", "open")]

    rescan = estate.scan("runner", {}, T0 + 3 * HOUR)
    assert estate.finding("runner", 8080)["status"] == "fixed"
    at = T0 + 4 * HOUR
    counts = follow_up(conn, actions, session, at)

    assert counts == {**NOTHING, "closed": 1}
    ticket = _ticket(ticketing, action)
    assert ticket["status"] == "closed"
    [comment] = ticket["comments"]
    assert f"Scan run {rescan} (nmap, 2026-11-01 12:00 UTC) rescanned runner" in comment["body"]
    row = estate.action(action["finding_id"])
    assert row["closed_at"] == at
    closed = row["follow_up"][-1]
    assert (closed["kind"], closed["scan_run_id"], closed["at"]) == (
        "closed",
        rescan,
        at.isoformat(),
    )
    assert closed["result"]["status"] == "applied"
    assert closed["result"]["detail"]["closed"] is True
    [(subject, payload)] = estate.events("ticket.closed")
    assert subject == f"action:{action['id']}"
    assert (payload["scan_run_id"], payload["ticket"]) == (rescan, ticket["key"])

    # Never twice: a second run sends nothing and writes nothing.
    calls = len(session.calls)
    assert follow_up(conn, actions, session, at + HOUR) == NOTHING
    assert len(session.calls) == calls
    assert session.closes() == 1
    assert estate.action(action["finding_id"])["follow_up"] == row["follow_up"]
    assert len(_ticket(ticketing, action)["comments"]) == 1
    assert len(estate.events("ticket.closed")) == 1


def test_a_reopened_finding_gets_one_comment_per_reopen(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)

    # Fixed and seen again before any follow-up: a comment, and the ticket stays open.
    estate.scan("runner", {}, T0 + HOUR)
    first = estate.scan("runner", {8080: Severity.MEDIUM}, T0 + 2 * HOUR)
    assert estate.finding("runner", 8080)["status"] == "reopened"
    assert follow_up(conn, actions, session, T0 + 3 * HOUR) == {**NOTHING, "commented": 1}
    assert follow_up(conn, actions, session, T0 + 4 * HOUR) == NOTHING
    ticket = _ticket(ticketing, action)
    assert ticket["status"] == "open"
    [seen_again] = [c["body"] for c in ticket["comments"]]
    assert f"seen again in scan run {first} on 2026-11-01 11:00 UTC" in seen_again
    assert "no reopen" not in seen_again

    # Fixed: closed. Seen again: a comment on the closed ticket, which stays closed.
    estate.scan("runner", {}, T0 + 5 * HOUR)
    assert follow_up(conn, actions, session, T0 + 6 * HOUR) == {**NOTHING, "closed": 1}
    second = estate.scan("runner", {8080: Severity.MEDIUM}, T0 + 7 * HOUR)
    assert follow_up(conn, actions, session, T0 + 8 * HOUR) == {**NOTHING, "commented": 1}
    assert follow_up(conn, actions, session, T0 + 9 * HOUR) == NOTHING
    ticket = _ticket(ticketing, action)
    assert ticket["status"] == "closed"
    note = ticket["comments"][-1]["body"]
    assert f"seen again in scan run {second}" in note
    assert "closed as fixed on 2026-11-01 15:00 UTC" in note and "offers no reopen" in note

    # Fixed once more: the ticket is never closed twice; reopened again: one more comment.
    estate.scan("runner", {}, T0 + 10 * HOUR)
    assert follow_up(conn, actions, session, T0 + 11 * HOUR) == NOTHING
    third = estate.scan("runner", {8080: Severity.MEDIUM}, T0 + 12 * HOUR)
    assert follow_up(conn, actions, session, T0 + 13 * HOUR) == {**NOTHING, "commented": 1}

    assert session.closes() == 1
    assert len(_ticket(ticketing, action)["comments"]) == 4  # 3 reopens + the close
    row = estate.action(action["finding_id"])
    assert row["closed_at"] == T0 + 6 * HOUR  # kept from the first close
    commented = [e for e in row["follow_up"] if e["kind"] == "commented"]
    assert [e["scan_run_id"] for e in commented] == [first, second, third]
    assert len({e["history_id"] for e in commented}) == 3
    events = estate.events("ticket.commented")
    assert [(p["reason"], p["scan_run_id"]) for _, p in events] == [
        ("reopened", first),
        ("reopened", second),
        ("reopened", third),
    ]


def test_a_resolved_ticket_asks_for_a_rescan_and_only_the_rescan_closes_it(
    estate, actions, session, ticketing, ticket_token
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)
    ticket = _ticket(ticketing, action)
    auth = {"Authorization": f"Bearer {ticket_token}"}
    resolve = f"{ticketing.url}/api/tickets/{ticket['id']}/resolve"
    assert requests.post(resolve, json={"comment": "closed the port"}, headers=auth, timeout=5).ok

    asked = T0 + HOUR
    assert follow_up(conn, actions, session, asked) == {**NOTHING, "verifications_requested": 1}
    [verification] = ledger.verifications_for(conn, action["id"])
    assert (verification["requested_by"], verification["outcome"]) == ("ticketing", None)
    assert verification["requested_at"] == asked
    assert ledger.pending_verifications(conn, "nmap") == ["runner"]
    # The same resolution asks once, however often follow-up runs; the finding stays open.
    assert follow_up(conn, actions, session, asked + HOUR) == NOTHING
    assert len(ledger.verifications_for(conn, action["id"])) == 1
    assert estate.finding("runner", 8080)["status"] == "open"
    assert _ticket(ticketing, action)["status"] == "resolved"
    logged = estate.action(action["finding_id"])["follow_up"]
    assert _kinds(logged) == ["seen", "verification_requested"]
    assert (logged[0]["state"], logged[1]["verification_id"]) == ("resolved", verification["id"])

    rescan = estate.scan("runner", {}, asked + 2 * HOUR)
    assert settle_verifications(conn, asked + 2 * HOUR)["confirmed_fixed"] == 1
    assert follow_up(conn, actions, session, asked + 3 * HOUR) == {**NOTHING, "closed": 1}
    ticket = _ticket(ticketing, action)
    assert ticket["status"] == "closed"
    assert f"Scan run {rescan} " in ticket["comments"][-1]["body"]
    assert follow_up(conn, actions, session, asked + 4 * HOUR) == NOTHING


def test_a_fix_that_did_not_hold_is_said_on_the_ticket_and_a_new_resolution_asks_again(
    estate, actions, session, ticketing, ticket_token
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)
    ticket = _ticket(ticketing, action)
    auth = {"Authorization": f"Bearer {ticket_token}"}
    resolve = f"{ticketing.url}/api/tickets/{ticket['id']}/resolve"
    requests.post(resolve, json={"comment": "patched"}, headers=auth, timeout=5)
    assert follow_up(conn, actions, session, T0 + HOUR)["verifications_requested"] == 1

    rescan = estate.scan("runner", {8080: Severity.MEDIUM}, T0 + 2 * HOUR)
    assert settle_verifications(conn, T0 + 2 * HOUR)["still_present"] == 1
    assert follow_up(conn, actions, session, T0 + 3 * HOUR) == {**NOTHING, "commented": 1}
    assert follow_up(conn, actions, session, T0 + 4 * HOUR) == NOTHING

    note = _ticket(ticketing, action)["comments"][-1]["body"]
    assert f"verification rescan (scan run {rescan}) still finds this" in note
    assert len(ledger.verifications_for(conn, action["id"])) == 1
    [(_, payload)] = estate.events("ticket.commented")
    assert payload["reason"] == "still_present"

    # The engineer resolves it again: a new resolution, a new verification.
    requests.post(resolve, json={"comment": "really patched"}, headers=auth, timeout=5)
    assert follow_up(conn, actions, session, T0 + 5 * HOUR)["verifications_requested"] == 1
    assert [v["outcome"] for v in ledger.verifications_for(conn, action["id"])] == [
        "still_present",
        None,
    ]


# --- pull requests --------------------------------------------------------------------------

PR_POLICY = """\
version: "pr-1"
enforcement:
  auto_action_allowlist: [runner]
  fallback_approvers: [secops-lead]
  rules:
    - id: upgrade
      action: patch_request
      mode: out_of_loop
      requires: {allowlisted: true}
"""


@pytest.fixture
def githost(ticket_token) -> Iterator[GitHostServer]:
    with GitHostServer(token=ticket_token, repositories=[REPO]) as server:
        yield server


def test_a_merged_pull_request_asks_for_a_rescan(
    conn, estate, githost, session, ticket_token, tmp_path: Path
) -> None:
    policy = load_policy(_write(tmp_path / "pr.yaml", PR_POLICY))
    # A dependency finding on the runner (the engine that reports it is the one registered).
    purl = "pkg:pypi/django@3.2.1"
    run = scans.start_scan_run(conn, "nmap", ["runner"], {}, None, T0)
    scans.add_observations(
        conn,
        run,
        [
            Observation(
                "runner",
                "nmap",
                "osv/GHSA-vm8q-m57g-pff3",
                "Django: denial of service",
                Severity.HIGH,
                Location(host="127.0.0.21", port=8000, protocol="tcp", purl=purl),
            )
        ],
    )
    scans.finish_scan_run(conn, run, "succeeded", T0)
    triage_runs(conn, policy.policy.patching.days_by_severity(), T0)
    [(finding_id,)] = conn.execute("SELECT id FROM findings").fetchall()
    finding = ledger.find_finding(conn, finding_id)
    [asset] = inventory.load_assets(conn, ["runner"])
    decision = decide(FindingFacts.from_row(finding), asset, policy)
    patch = PatchRequestAction(GitHostEndpoint(githost.url, ticket_token, timeout=5.0))
    request = patch.plan(
        {**finding, "fixed_version": "3.2.25", "asset_tags": [f"repo:{REPO}"]}, decision
    )
    decision_id = ledger.record_decision(conn, finding["id"], decision, T0, None)
    action_id = ledger.record_action(conn, decision_id, finding["id"], request, decision.mode, T0)
    conn.commit()
    actions = {"patch_request": patch}
    assert apply_planned(conn, [action_id], actions, session, T0) == {"applied": 1}

    assert follow_up(conn, actions, session, T0 + HOUR) == NOTHING  # open: nothing reported
    [pull] = githost.pulls(REPO)
    githost.merge(REPO, pull["number"])

    assert follow_up(conn, actions, session, T0 + 2 * HOUR) == {
        **NOTHING,
        "verifications_requested": 1,
    }
    assert follow_up(conn, actions, session, T0 + 3 * HOUR) == NOTHING
    [verification] = ledger.verifications_for(conn, action_id)
    assert (verification["requested_by"], verification["engine"]) == ("git_host", "nmap")
    logged = ledger.load_action(conn, action_id)["follow_up"]
    assert [(e["kind"], e.get("state")) for e in logged] == [
        ("seen", "open"),
        ("seen", "merged"),
        ("verification_requested", None),
    ]
    assert logged[-1]["remote"]["number"] == pull["number"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- what is skipped, and what fails --------------------------------------------------------


def test_dry_runs_and_rolled_back_tickets_are_not_followed(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    estate.scan("runner", {8080: Severity.MEDIUM, 8443: Severity.HIGH}, T0)
    dry = decide_findings(conn, estate.policy, T0, requester="autosec-scheduler", dry_run=True)
    apply_planned(conn, dry.apply_now, actions, session, T0)
    real = decide_findings(conn, estate.policy, T0, requester="autosec-scheduler")
    apply_planned(conn, real.apply_now, actions, session, T0)
    rolled = estate.action(estate.finding("runner", 8443)["id"])
    outcome = rollback_action(conn, rolled["id"], actions, session, "alice", "noise", T0)
    assert outcome.outcome == "rolled_back"
    estate.scan("runner", {}, T0 + HOUR)  # both findings fixed

    assert follow_up(conn, actions, session, T0 + 2 * HOUR) == {**NOTHING, "closed": 1}
    kept = estate.action(estate.finding("runner", 8080)["id"])
    assert kept["closed_at"] is not None
    assert estate.action(estate.finding("runner", 8443)["id"])["follow_up"] == []
    dry_rows = conn.execute(
        "SELECT count(*) FROM actions WHERE dry_run AND (follow_up <> '[]' OR closed_at "
        "IS NOT NULL)"
    ).fetchone()[0]
    assert dry_rows == 0
    assert session.closes() == 2  # the rollback and the one follow-up close


def test_no_configured_ticket_action_is_an_error_and_the_others_go_on(
    estate, actions, session, ticketing
) -> None:
    conn = estate.conn
    action = _applied(estate, actions, session)
    estate.scan("runner", {}, T0 + HOUR)

    counts = follow_up(conn, {}, session, T0 + 2 * HOUR)

    assert counts == {**NOTHING, "errors": 1}
    [entry] = estate.action(action["finding_id"])["follow_up"]
    assert (entry["kind"], entry["step"]) == ("error", "close")
    assert entry["error"] == "no connection is configured for the ticket action"
    assert follow_up(conn, actions, session, T0 + 3 * HOUR) == {**NOTHING, "closed": 1}


class _Gateway(ForwardingGateway):
    """In front of the ticketing API: answers 500 to the paths in ``failing``, forwards the rest."""

    def __init__(self, upstream: str) -> None:
        self.failing: set[str] = set()
        super().__init__(upstream)

    def answer(self, method: str, path: str, forward: Forward) -> tuple[int, bytes]:
        return failure("ticketing is down") if path in self.failing else forward()


@pytest.fixture
def gateway(ticketing) -> Iterator[_Gateway]:
    with serving(_Gateway(ticketing.url)) as server:
        yield server


def test_a_failing_close_is_recorded_counted_and_retried(
    estate, session, ticketing, gateway, ticket_token
) -> None:
    conn = estate.conn
    actions = {"ticket": TicketAction(TicketEndpoint(gateway.url, ticket_token, timeout=5))}
    first = _applied(estate, actions, session, {8080: Severity.MEDIUM, 8443: Severity.MEDIUM})
    other = estate.action(estate.finding("runner", 8443)["id"])
    failing = _ticket(ticketing, first)
    gateway.failing = {f"/api/tickets/{failing['id']}/close"}
    estate.scan("runner", {}, T0 + HOUR)  # both fixed

    # One close fails and is recorded; the other ticket is closed all the same.
    assert follow_up(conn, actions, session, T0 + 2 * HOUR) == {
        **NOTHING,
        "closed": 1,
        "errors": 1,
    }
    assert _ticket(ticketing, first)["status"] == "open"
    assert _ticket(ticketing, other)["status"] == "closed"
    row = estate.action(first["finding_id"])
    assert row["closed_at"] is None
    [error] = row["follow_up"]
    assert (error["kind"], error["step"], error["http_status"]) == ("error", "close", 500)
    assert (
        error["error"] == f"ticketing API answered 500 to POST /api/tickets/{failing['id']}/close"
    )
    assert "ticketing is down" in error["body"]
    assert estate.events("ticket.closed")[0][1]["action_id"] == other["id"]

    # Still down an hour later: counted again, kept on the same entry.
    assert follow_up(conn, actions, session, T0 + 3 * HOUR) == {**NOTHING, "errors": 1}
    [error] = estate.action(first["finding_id"])["follow_up"]
    assert (error["repeats"], error["at"], error["last_at"]) == (
        2,
        (T0 + 2 * HOUR).isoformat(),
        (T0 + 3 * HOUR).isoformat(),
    )

    # Back up: the close goes through, once.
    gateway.failing = set()
    assert follow_up(conn, actions, session, T0 + 4 * HOUR) == {**NOTHING, "closed": 1}
    assert follow_up(conn, actions, session, T0 + 5 * HOUR) == NOTHING
    ticket = _ticket(ticketing, first)
    assert ticket["status"] == "closed" and len(ticket["comments"]) == 1
    row = estate.action(first["finding_id"])
    assert _kinds(row["follow_up"]) == ["error", "closed"]
    assert row["closed_at"] == T0 + 4 * HOUR

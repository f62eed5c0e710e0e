"""Follow-up on the remote object after acting, against the demo APIs over real HTTP: comment on
and close a ticket, read its state (open, resolved, closed), and read a pull request's state
(open, merged, closed); failures come back as "failed" results, never as exceptions."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from autosec.config.policy import LoadedPolicy, Policy
from autosec.demo.githost import GitHostServer
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import Decision, FindingFacts, decide
from autosec.remediation.actions.base import ActionResult
from autosec.remediation.actions.patch_request import (
    GitHostEndpoint,
    PatchRequestAction,
    PullState,
)
from autosec.remediation.actions.ticket import (
    TicketAction,
    TicketEndpoint,
    TicketEndpointMissing,
    TicketState,
)

TOKEN = "follow-up-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FP = "f" * 64
REPO = "acme/shop-api"


def _decision(action: str, dry_run: bool = False) -> Decision:
    policy = Policy.model_validate(
        {
            "version": "f-1",
            "enforcement": {
                "dry_run": dry_run,
                "rules": [
                    {"id": "r", "action": action, "mode": "in_the_loop", "approvers": ["ciso"]}
                ],
            },
        }
    )
    asset = Asset(
        "shop-api",
        "shop-api",
        AssetKind.WEB_APP,
        "file",
        "team-shop",
        Environment.DEVELOPMENT,
        Criticality.LOW,
    )
    loaded = LoadedPolicy(policy, "cd" * 32, Path("p.yaml"))
    return decide(FindingFacts(FP, "osv/GHSA-x", "sbom", "high"), asset, loaded)


def _finding() -> dict[str, Any]:
    return {
        "fingerprint": FP,
        "asset_id": "shop-api",
        "engine": "sbom",
        "rule_id": "osv/GHSA-x",
        "title": "Django: denial of service",
        "severity": "high",
        "location": {"purl": "pkg:pypi/django@3.2.1", "file": "requirements.txt"},
        "evidence": {"fixed_version": "3.2.25"},
        "asset_repository": REPO,
    }


@pytest.fixture
def ticketing() -> Iterator[TicketingServer]:
    with TicketingServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def githost() -> Iterator[GitHostServer]:
    with GitHostServer(token=TOKEN, repositories=[REPO]) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _ticket(server: TicketingServer, session, dry_run: bool = False) -> tuple[TicketAction, Any]:
    action = TicketAction(TicketEndpoint(server.url, TOKEN, timeout=5.0))
    result = action.apply(action.plan(_finding(), _decision("ticket", dry_run)), session)
    assert result.status == ("dry_run" if dry_run else "applied")
    return action, result


def _unreachable_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- tickets ---------------------------------------------------------------------------------


def test_comment_adds_one_comment_and_reports_the_ticket(ticketing, session) -> None:
    action, result = _ticket(ticketing, session)

    commented = action.comment(result, session, "seen again in scan run 7")

    assert commented.status == "applied"
    assert commented.idempotency_key == result.idempotency_key
    assert commented.external_ref == "SEC-1"
    assert commented.detail == {
        "ticket_id": "1",
        "ticket_key": "SEC-1",
        "commented": True,
        "status": "open",
        "http_status": 201,
    }
    [ticket] = ticketing.tickets()
    assert [c["body"] for c in ticket["comments"]] == ["seen again in scan run 7"]
    assert ticket["status"] == "open"


def test_close_closes_with_the_comment_and_a_second_close_changes_nothing(
    ticketing, session
) -> None:
    action, result = _ticket(ticketing, session)

    closed = action.close(result, session, "fixed: scan run 9 no longer finds it")
    again = action.close(result, session, "fixed twice?")

    assert closed.status == again.status == "applied"
    assert closed.detail["closed"] is True and closed.detail["status"] == "closed"
    [ticket] = ticketing.tickets()
    assert ticket["status"] == "closed"
    assert [c["body"] for c in ticket["comments"]] == ["fixed: scan run 9 no longer finds it"]
    # A closed ticket can still be told what happened next.
    assert action.comment(result, session, "seen again").detail["status"] == "closed"
    assert len(ticketing.tickets()[0]["comments"]) == 2


def test_read_follows_the_ticket_from_open_to_resolved_to_closed(ticketing, session) -> None:
    action, result = _ticket(ticketing, session)

    first = action.read(result, session)
    assert isinstance(first, TicketState)
    assert (first.ticket_id, first.ticket_key, first.status, first.resolved_at) == (
        "1",
        "SEC-1",
        "open",
        None,
    )

    resolved = requests.post(
        f"{ticketing.url}/api/tickets/1/resolve",
        json={"comment": "upgraded"},
        headers=AUTH,
        timeout=5,
    )
    assert resolved.status_code == 200
    second = action.read(result, session)
    assert second.status == "resolved"
    assert second.resolved_at == resolved.json()["resolved_at"] is not None

    action.close(result, session, "verified")
    assert action.read("1", session).status == "closed"  # a bare ticket id works too


def test_a_bare_ticket_id_is_the_key_of_what_comes_back(ticketing, session) -> None:
    _ticket(ticketing, session)
    action = TicketAction(TicketEndpoint(ticketing.url, TOKEN, timeout=5.0))

    commented = action.comment("1", session, "note")
    missing = action.read("99", session)

    assert (commented.idempotency_key, commented.status) == ("1", "applied")
    assert isinstance(missing, ActionResult)
    assert (missing.idempotency_key, missing.status) == ("99", "failed")
    assert missing.detail["http_status"] == 404
    assert missing.detail["error"] == "ticketing API answered 404 to GET /api/tickets/99"


def test_refusals_come_back_as_failed_results_naming_the_request(ticketing, session) -> None:
    _, result = _ticket(ticketing, session)
    wrong = TicketAction(TicketEndpoint(ticketing.url, "wrong-token", timeout=5.0))

    closing = wrong.close(result, session, "x")
    commenting = wrong.comment(result, session, "x")

    assert closing.status == commenting.status == "failed"
    assert closing.detail["http_status"] == 401
    assert closing.detail["error"] == "ticketing API answered 401 to POST /api/tickets/1/close"
    assert commenting.detail["error"] == (
        "ticketing API answered 401 to POST /api/tickets/1/comments"
    )
    assert ticketing.tickets()[0]["status"] == "open"
    assert ticketing.tickets()[0]["comments"] == []


def test_an_unreachable_api_is_a_failed_result(ticketing, session) -> None:
    _, result = _ticket(ticketing, session)
    offline = TicketAction(TicketEndpoint(_unreachable_url(), TOKEN, timeout=1.0))

    read = offline.read(result, session)

    assert isinstance(read, ActionResult) and read.status == "failed"
    assert read.detail["http_status"] is None
    assert read.detail["error"].startswith("GET /api/tickets/1 did not complete: ConnectionError")


def test_dry_runs_send_nothing_and_what_has_no_ticket_is_refused(ticketing, session) -> None:
    action, dry = _ticket(ticketing, session, dry_run=True)

    assert action.comment(dry, session, "x").status == "dry_run"
    assert action.close(dry, session, "x").status == "dry_run"
    with pytest.raises(ValueError, match="is a dry run"):
        action.read(dry, session)
    assert ticketing.tickets() == []

    failed = ActionResult("k", "failed", detail={"error": "boom"})
    with pytest.raises(ValueError, match=r"no ticket to close for result k \(status failed"):
        action.close(failed, session, "x")
    with pytest.raises(ValueError, match="non-empty text"):
        action.comment("1", session, "  ")
    with pytest.raises(TicketEndpointMissing, match="no ticketing endpoint"):
        TicketAction().read("1", session)


def test_rollback_still_closes_through_close(ticketing, session) -> None:
    action, result = _ticket(ticketing, session)

    rolled = action.rollback(result, session, comment="rolled back by alice")

    assert rolled.status == "rolled_back"
    assert rolled.detail == {
        "ticket_id": "1",
        "ticket_key": "SEC-1",
        "closed": True,
        "http_status": 200,
    }
    [ticket] = ticketing.tickets()
    assert ticket["status"] == "closed"
    assert [c["body"] for c in ticket["comments"]] == ["rolled back by alice"]


# --- pull requests ---------------------------------------------------------------------------


def _pull(githost: GitHostServer, session) -> tuple[PatchRequestAction, ActionResult]:
    action = PatchRequestAction(GitHostEndpoint(githost.url, TOKEN, timeout=5.0))
    result = action.apply(action.plan(_finding(), _decision("patch_request")), session)
    assert result.status == "applied"
    return action, result


def test_pull_state_reads_open_then_merged(githost, session) -> None:
    action, result = _pull(githost, session)

    opened = action.pull_state(result, session)
    assert opened == PullState(REPO, 1, "open", None, None, f"{githost.url}/web/{REPO}/pull/1", 200)

    merged_pull = githost.merge(REPO, 1)
    merged = action.pull_state(result, session)

    assert (merged.state, merged.merged_at) == ("merged", merged_pull["merged_at"])
    assert action.pull_state(f"{REPO}#1", session) == merged


def test_pull_state_tells_closed_without_a_merge(githost, session) -> None:
    action, result = _pull(githost, session)
    assert action.rollback(result, session).status == "rolled_back"

    state = action.pull_state(result, session)

    assert (state.state, state.merged_at) == ("closed", None)
    assert state.closed_at is not None


def test_pull_state_failures_and_bad_references(githost, session) -> None:
    action = PatchRequestAction(GitHostEndpoint(githost.url, TOKEN, timeout=5.0))

    missing = action.pull_state(f"{REPO}#42", session)

    assert isinstance(missing, ActionResult) and missing.status == "failed"
    assert missing.detail["http_status"] == 404
    assert missing.detail["error"] == f"git host answered 404 to GET /repos/{REPO}/pulls/42"
    with pytest.raises(ValueError, match="is not owner/name#number"):
        action.pull_state("acme/shop-api", session)
    with pytest.raises(ValueError, match="no pull request to read"):
        action.pull_state(ActionResult("k", "failed"), session)

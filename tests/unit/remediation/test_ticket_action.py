"""TicketAction against real HTTP on loopback: bodies and headers sent, idempotent retries,
dry runs that send nothing, failures that name the status, and rollback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from autosec.config.policy import LoadedPolicy, Policy
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import Decision, FindingFacts, decide
from autosec.remediation.actions.base import ActionResult, idempotency_key
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint, TicketEndpointMissing
from support.http import RecordingServer, Reply, serving

TOKEN = "t0ken-for-tests"
FP = "c" * 64


class _Recorder(RecordingServer):
    """Records every request; keeps tickets by external_id like the real API."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.delay = 0.0
        self.conflict_always = False
        self.created_body: dict[str, Any] | None = None

    def respond(self, method: str, path: str, query: dict, body: Any) -> Reply:
        if method == "GET":
            if self.fail_with:
                return self.fail_with, {"error": "boom"}
            external_id = query.get("external_id", [None])[0]
            with self.lock:
                return 200, [t for t in self.tickets if t["external_id"] == external_id]
        parts = [p for p in path.split("/") if p]
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with:
            return self.fail_with, {"error": "boom", "detail": "x" * 2000}
        with self.lock:
            tickets = self.tickets
            if parts == ["api", "tickets"]:
                if self.conflict_always or any(
                    t["external_id"] == body["external_id"] for t in tickets
                ):
                    return 409, {"error": "duplicate"}
                number = len(tickets) + 1
                ticket = {"id": str(number), "key": f"SEC-{number}", "status": "open", **body}
                tickets.append(ticket)
                return 201, self.created_body or ticket
            if parts[:2] == ["api", "tickets"] and parts[3:] == ["close"]:
                for ticket in tickets:
                    if ticket["id"] == parts[2]:
                        ticket["status"] = "closed"
                        return 200, ticket
                return 404, {"error": "not_found"}
            return 404, {"error": "no route"}


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    with serving(_Recorder()) as server:
        yield server


def _endpoint(server: _Recorder, token: str | None = TOKEN, **kw: Any) -> TicketEndpoint:
    host, port = server.server_address[:2]
    return TicketEndpoint(f"http://{host}:{port}/", token, **kw)


def _finding(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "fingerprint": FP,
        "asset_id": "web-frontend",
        "engine": "nmap",
        "rule_id": "open-port/3306",
        "title": "MySQL reachable",
        "description": "The database port answers on the network.",
        "severity": "high",
        "priority": "act",
        "owner": "team-web",
        "due_date": date(2026, 4, 1),
        "cve_ids": ["CVE-2024-1111"],
        "cvss_score": 7.5,
        "location": {"host": "127.0.0.11", "port": 3306, "protocol": "tcp"},
    }
    row.update(overrides)
    return row


def _decision(dry_run: bool = False, fingerprint: str = FP, action: str = "ticket") -> Decision:
    policy = Policy.model_validate(
        {
            "version": "t-1",
            "enforcement": {
                "dry_run": dry_run,
                "rules": [
                    {
                        "id": "prod-high",
                        "action": action,
                        "mode": "in_the_loop",
                        "approvers": ["ciso"],
                    }
                ],
            },
        }
    )
    loaded = LoadedPolicy(policy, "ab" * 32, Path("p.yaml"))
    asset = Asset(
        "web-frontend",
        "web",
        AssetKind.WEB_APP,
        "file",
        "team-web",
        Environment.PRODUCTION,
        Criticality.HIGH,
    )
    return decide(FindingFacts(fingerprint, "open-port/3306", "nmap", "high"), asset, loaded)


# --- plan -----------------------------------------------------------------------------------------


def test_plan_builds_the_ticket_from_the_finding_and_decision():
    request = TicketAction().plan(_finding(), _decision())
    key = idempotency_key(FP, "ticket", "ab" * 32)
    assert (request.idempotency_key, request.action, request.asset_id) == (
        key,
        "ticket",
        "web-frontend",
    )
    assert request.finding_fingerprint == FP
    assert request.dry_run is False
    payload = request.payload
    assert set(payload) == {
        "title",
        "description",
        "priority",
        "assignee",
        "labels",
        "external_id",
        "due_date",
    }
    assert payload["title"] == "[high] MySQL reachable on web-frontend"
    assert payload["priority"] == "high"  # SSVC "act"
    assert payload["assignee"] == "team-web"
    assert payload["labels"] == ["autosec", "severity-high", "engine-nmap", "policy-prod-high"]
    assert payload["external_id"] == key
    assert payload["due_date"] == "2026-04-01"
    description = payload["description"]
    assert description.startswith("The database port answers on the network.")
    for part in (
        "CVE-2024-1111",
        "host=127.0.0.11",
        "port=3306",
        "CVSS 7.5",
        f"Finding fingerprint: {FP}",
        "rule prod-high",
        "ab" * 32,
    ):
        assert part in description


def test_plan_falls_back_to_severity_priority_and_handles_missing_owner_and_due_date():
    request = TicketAction().plan(
        _finding(priority=None, owner=None, due_date=None, severity="critical"), _decision()
    )
    assert request.payload["priority"] == "highest"
    assert request.payload["assignee"] is None
    assert request.payload["due_date"] is None


def test_plan_takes_dry_run_from_the_decision_and_caps_the_title():
    request = TicketAction().plan(_finding(title="x" * 600), _decision(dry_run=True))
    assert request.dry_run is True
    assert len(request.payload["title"]) == 255


@pytest.mark.parametrize(
    ("finding", "decision", "message"),
    [
        (_finding(title=""), _decision(), "finding is missing title"),
        (_finding(), _decision(fingerprint="d" * 64), "decision is about finding dddd"),
        (_finding(), _decision(action="none"), "cannot plan a decision for action 'none'"),
        (_finding(due_date="next week"), _decision(), "due_date 'next week' is not an ISO date"),
    ],
)
def test_plan_refuses_inconsistent_input(finding, decision, message):
    with pytest.raises(ValueError, match=message):
        TicketAction().plan(finding, decision)


# --- apply ----------------------------------------------------------------------------------------


def test_apply_posts_the_ticket_with_auth_and_returns_its_key(recorder):
    action = TicketAction(_endpoint(recorder))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        result = action.apply(request, session)
    assert result == ActionResult(
        request.idempotency_key,
        "applied",
        "SEC-1",
        {"ticket_id": "1", "ticket_key": "SEC-1", "created": True, "http_status": 201},
    )
    [sent] = recorder.requests
    assert (sent["method"], sent["path"]) == ("POST", "/api/tickets")
    assert sent["body"] == request.payload
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Accept"] == "application/json"


def test_a_retry_finds_the_existing_ticket_instead_of_opening_another(recorder):
    action = TicketAction(_endpoint(recorder))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        first = action.apply(request, session)
        again = action.apply(request, session)
    assert len(recorder.tickets) == 1
    assert [(r["method"], r["path"]) for r in recorder.requests] == [
        ("POST", "/api/tickets"),
        ("POST", "/api/tickets"),
        ("GET", "/api/tickets"),
    ]
    assert recorder.requests[2]["query"] == {"external_id": [request.idempotency_key]}
    assert recorder.requests[2]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert again.status == "applied"
    assert again.external_ref == first.external_ref == "SEC-1"
    assert again.detail["created"] is False and again.detail["duplicate"] is True


def test_dry_run_sends_nothing_and_needs_no_endpoint(recorder):
    action = TicketAction(_endpoint(recorder))
    request = action.plan(_finding(), _decision(dry_run=True))
    with requests.Session() as session:
        result = action.apply(request, session)
        offline = TicketAction().apply(request, session)
    assert result.status == offline.status == "dry_run"
    assert result.external_ref is None
    assert recorder.requests == []


def test_a_server_error_is_a_failed_result_naming_the_status(recorder):
    recorder.fail_with = 500
    action = TicketAction(_endpoint(recorder))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["http_status"] == 500
    assert result.detail["error"] == "ticketing API answered 500 to POST /api/tickets"
    assert result.detail["body"].startswith('{"error": "boom"')
    assert len(result.detail["body"]) <= 501
    assert TOKEN not in json.dumps(result.as_dict())


def test_no_token_means_no_authorization_header(recorder):
    action = TicketAction(_endpoint(recorder, token=None))
    with requests.Session() as session:
        assert action.apply(action.plan(_finding(), _decision()), session).status == "applied"
    assert "Authorization" not in recorder.requests[0]["headers"]


def test_every_call_has_a_timeout(recorder):
    recorder.delay = 0.5
    action = TicketAction(_endpoint(recorder, timeout=(2.0, 0.1)))
    started = time.monotonic()
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert time.monotonic() - started < 0.45
    assert result.status == "failed"
    assert "ReadTimeout" in result.detail["error"]


def test_an_unreachable_api_is_a_failed_result():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    action = TicketAction(TicketEndpoint(f"http://127.0.0.1:{port}", TOKEN, timeout=1.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["http_status"] is None
    assert result.detail["error"].startswith("POST /api/tickets did not complete: ConnectionError")


def test_a_conflict_without_a_listed_ticket_fails(recorder):
    recorder.conflict_always = True
    action = TicketAction(_endpoint(recorder))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert [r["method"] for r in recorder.requests] == ["POST", "GET"]
    assert result.status == "failed"
    assert result.detail["http_status"] == 409
    assert "lists no ticket with it" in result.detail["error"]


def test_a_created_answer_without_a_ticket_id_fails(recorder):
    recorder.created_body = {"ok": True}
    action = TicketAction(_endpoint(recorder))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["error"] == "POST /api/tickets answered 201 without a ticket id"


def test_apply_without_an_endpoint_is_a_configuration_error():
    request = TicketAction().plan(_finding(), _decision())
    with pytest.raises(TicketEndpointMissing, match="no ticketing endpoint configured"):
        TicketAction().apply(request, requests.Session())


def test_apply_refuses_a_request_whose_external_id_is_not_its_key(recorder):
    action = TicketAction(_endpoint(recorder))
    request = action.plan(_finding(), _decision())
    tampered = type(request)(
        **{**request.as_dict(), "payload": {**request.payload, "external_id": "other"}}
    )
    with pytest.raises(ValueError, match="external_id must be the request's idempotency key"):
        action.apply(tampered, requests.Session())
    assert recorder.requests == []


# --- rollback -------------------------------------------------------------------------------------


def test_rollback_closes_the_ticket_with_a_comment(recorder):
    action = TicketAction(_endpoint(recorder))
    with requests.Session() as session:
        applied = action.apply(action.plan(_finding(), _decision()), session)
        rolled = action.rollback(applied, session, comment="false alarm")
    assert rolled.status == "rolled_back"
    assert rolled.external_ref == "SEC-1"
    assert rolled.detail["closed"] is True
    close = recorder.requests[-1]
    assert (close["method"], close["path"], close["body"]) == (
        "POST",
        "/api/tickets/1/close",
        {"comment": "false alarm"},
    )
    assert close["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert recorder.tickets[0]["status"] == "closed"


def test_rollback_of_a_missing_ticket_fails_with_the_status(recorder):
    action = TicketAction(_endpoint(recorder))
    ghost = ActionResult("k", "applied", "SEC-99", {"ticket_id": "99"})
    with requests.Session() as session:
        result = action.rollback(ghost, session)
    assert result.status == "failed"
    assert result.detail["http_status"] == 404
    assert result.detail["error"] == "ticketing API answered 404 to POST /api/tickets/99/close"


def test_rollback_of_a_dry_run_sends_nothing_and_of_a_failure_is_refused(recorder):
    action = TicketAction(_endpoint(recorder))
    with requests.Session() as session:
        assert action.rollback(ActionResult("k", "dry_run"), session).status == "dry_run"
        with pytest.raises(ValueError, match="nothing to roll back"):
            action.rollback(ActionResult("k", "failed"), session)
    assert recorder.requests == []


# --- endpoint -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["", "ftp://host", "http://", "tickets.example", "http://h/?a=1"])
def test_endpoint_needs_an_http_url(url):
    with pytest.raises(ValueError, match="ticketing base_url"):
        TicketEndpoint(url)


def test_endpoint_hides_its_token_and_normalises_the_url():
    endpoint = TicketEndpoint("https://tickets.example/base/", "secret-value")
    assert "secret-value" not in repr(endpoint)
    assert endpoint.url("/api/tickets") == "https://tickets.example/base/api/tickets"


# --- the demo ticketing API -----------------------------------------------------------------------


def test_against_the_demo_ticketing_api_one_ticket_per_finding_and_close():
    with TicketingServer(token=TOKEN) as server, requests.Session() as session:
        action = TicketAction(TicketEndpoint(server.url, TOKEN, timeout=5.0))
        request = action.plan(_finding(), _decision())
        first = action.apply(request, session)
        retry = action.apply(request, session)
        assert first.status == retry.status == "applied"
        assert first.external_ref == retry.external_ref == "SEC-1"
        [ticket] = server.tickets()
        assert ticket["assignee"] == "team-web"
        assert ticket["external_id"] == request.idempotency_key
        assert ticket["due_date"] == "2026-04-01"
        assert action.rollback(first, session).status == "rolled_back"
        assert server.tickets()[0]["status"] == "closed"
        wrong = TicketAction(TicketEndpoint(server.url, "wrong", timeout=5.0))
        other = _finding(fingerprint="e" * 64)
        denied = wrong.apply(wrong.plan(other, _decision(fingerprint="e" * 64)), session)
        assert denied.status == "failed" and denied.detail["http_status"] == 401

"""QuarantineAction over real HTTP on loopback: the block request sent, hostile addresses
refused before anything is sent, idempotent retries, dry runs, failures, and release."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from autosec.config.policy import LoadedPolicy, Policy
from autosec.demo.enforcement import EnforcementServer
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import Decision, FindingFacts, decide
from autosec.remediation.actions.base import ActionResult, idempotency_key
from autosec.remediation.actions.quarantine import (
    QuarantineAction,
    QuarantineEndpoint,
    QuarantineEndpointMissing,
    quarantine_addresses,
)
from support.http import Reply

TOKEN = "enf-t0ken"
FP = "a" * 64
POLICY_HASH = "cd" * 32


@pytest.fixture
def enforcement() -> Iterator[EnforcementServer]:
    with EnforcementServer(token=TOKEN) as server:
        yield server


def _finding(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 11,
        "fingerprint": FP,
        "asset_id": "db-legacy",
        "engine": "nmap",
        "rule_id": "open-port/3306",
        "title": "MySQL\nexposed",
        "severity": "critical",
        "asset_addresses": ["10.0.0.5", "10.0.1.0/24", "DB.Example.org."],
    }
    row.update(overrides)
    return row


def _decision(dry_run: bool = False, fingerprint: str = FP, action: str = "quarantine") -> Decision:
    policy = Policy.model_validate(
        {
            "version": "q-1",
            "enforcement": {
                "dry_run": dry_run,
                "rules": [
                    {
                        "id": "contain-exposed-db",
                        "action": action,
                        "mode": "in_the_loop",
                        "approvers": ["ciso"],
                    }
                ],
            },
        }
    )
    loaded = LoadedPolicy(policy, POLICY_HASH, Path("p.yaml"))
    asset = Asset(
        "db-legacy",
        "legacy db",
        AssetKind.DATABASE,
        "file",
        "team-db",
        Environment.PRODUCTION,
        Criticality.HIGH,
    )
    return decide(FindingFacts(fingerprint, "open-port/3306", "nmap", "critical"), asset, loaded)


def _created(method: str, path: str, query: dict, body: Any) -> Reply:
    return 201, {"id": "b-1", "state": "blocked", **(body or {})}


# --- plan -----------------------------------------------------------------------------------------


def test_plan_builds_the_block_from_the_finding_and_asset_addresses():
    request = QuarantineAction().plan(_finding(), _decision())
    key = idempotency_key(FP, "quarantine", POLICY_HASH)
    assert (request.idempotency_key, request.action, request.asset_id) == (
        key,
        "quarantine",
        "db-legacy",
    )
    assert request.payload == {
        "asset_id": "db-legacy",
        "addresses": ["10.0.0.5", "10.0.1.0/24", "db.example.org"],
        "reason": "autosec: [critical] MySQL exposed (finding aaaaaaaaaaaa, policy rule "
        "contain-exposed-db, mode in_the_loop)",
        "finding_fingerprint": FP,
        "external_id": key,
        "expires_at": None,
    }


def test_plan_takes_a_url_address_by_its_host_and_an_expiry():
    request = QuarantineAction().plan(
        _finding(
            asset_addresses=["https://shop.example.org:8443/login", "10.0.0.5", "10.0.0.5"],
            quarantine_expires_at="2026-03-08T12:00:00+00:00",
        ),
        _decision(),
    )
    assert request.payload["addresses"] == ["shop.example.org", "10.0.0.5"]
    assert request.payload["expires_at"] == "2026-03-08T12:00:00+00:00"


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (["10.0.0.5", "10.0.0.6; rm -rf /"], r"invalid target '10\.0\.0\.6; rm -rf /'"),
        (["$(curl evil.example)"], r"invalid target '\$\(curl evil\.example\)'"),
        (["--script=x"], "starts with '-'"),
        (["10.0.0.0/8"], "range larger than 65536 addresses"),
        (["ftp://files.example"], "URL scheme 'ftp'"),
        ([], "has no asset_addresses"),
        (None, "has no asset_addresses"),
        ({"ip": "10.0.0.5"}, "must be a list of addresses"),
        ([f"10.0.{i // 256}.{i % 256}" for i in range(65)], "65 addresses is more than 64"),
    ],
)
def test_plan_refuses_hostile_or_missing_addresses(addresses, message):
    with pytest.raises(ValueError, match=message):
        QuarantineAction().plan(_finding(asset_addresses=addresses), _decision())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "finding is missing title"),
        ({"quarantine_expires_at": "tomorrow"}, "'tomorrow' is not an ISO date-time"),
        ({"quarantine_expires_at": "2026-03-08T12:00:00"}, "has no time zone"),
    ],
)
def test_plan_refuses_inconsistent_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        QuarantineAction().plan(_finding(**overrides), _decision())


def test_plan_refuses_a_decision_for_another_action():
    with pytest.raises(ValueError, match="cannot plan a decision for action 'ticket'"):
        QuarantineAction().plan(_finding(), _decision(action="ticket"))


def test_addresses_are_canonical_and_stable():
    once = quarantine_addresses(["2001:DB8::1", "192.168.1.7/24", "Host.Example."])
    assert once == ["2001:db8::1", "192.168.1.0/24", "host.example"]
    assert quarantine_addresses(once) == once


# --- apply against a recorder ---------------------------------------------------------------------


def test_apply_posts_the_block_with_auth(recorder_factory):
    server = recorder_factory(_created)
    action = QuarantineAction(QuarantineEndpoint(server.url + "/", TOKEN, timeout=5.0))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        result = action.apply(request, session)
    assert result == ActionResult(
        request.idempotency_key,
        "applied",
        "b-1",
        {"block_id": "b-1", "state": "blocked", "created": True, "http_status": 201},
    )
    [sent] = server.requests
    assert (sent["method"], sent["path"], sent["body"]) == (
        "POST",
        "/api/quarantine",
        request.payload,
    )
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Content-Type"] == "application/json"


def test_a_server_error_is_a_failed_result_naming_the_status(recorder_factory):
    server = recorder_factory(lambda *_: (500, {"error": "boom", "detail": "x" * 2000}))
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN, timeout=5.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["http_status"] == 500
    assert result.detail["error"] == "enforcement API answered 500 to POST /api/quarantine"
    assert result.detail["body"].startswith('{"error": "boom"')
    assert len(result.detail["body"]) <= 501
    assert TOKEN not in json.dumps(result.as_dict())


def test_a_conflict_without_the_block_in_its_body_is_looked_up(recorder_factory):
    def respond(method: str, path: str, query: dict, body: Any) -> Reply:
        if method == "POST":
            return 409, {"error": "duplicate"}
        return 200, [
            {"id": "other", "external_id": "not-this-one", "state": "blocked"},
            {"id": "b-7", "external_id": query["external_id"][0], "state": "blocked"},
        ]

    server = recorder_factory(respond)
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN, timeout=5.0))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        result = action.apply(request, session)
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("POST", "/api/quarantine"),
        ("GET", "/api/quarantine"),
    ]
    assert server.requests[1]["query"] == {"external_id": [request.idempotency_key]}
    assert result.status == "applied" and result.external_ref == "b-7"
    assert result.detail["duplicate"] is True and result.detail["created"] is False


def test_a_conflict_nobody_can_find_fails(recorder_factory):
    server = recorder_factory(
        lambda method, *_: (409, {"error": "duplicate"}) if method == "POST" else (200, [])
    )
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN, timeout=5.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert "lists no block with it" in result.detail["error"]


def test_a_created_answer_without_an_id_and_a_release_that_did_not_release_fail(
    recorder_factory,
):
    server = recorder_factory(
        lambda method, *_: (201, {"ok": True}) if method == "POST" else (200, {"state": "blocked"})
    )
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN, timeout=5.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
        release = action.rollback(ActionResult("k", "applied", "b-1", {"block_id": "b-1"}), session)
    assert result.status == "failed"
    assert result.detail["error"] == "POST /api/quarantine answered 201 without a block id"
    assert release.status == "failed"
    assert "is in state 'blocked', not released" in release.detail["error"]


def test_every_call_has_a_timeout(recorder_factory):
    def slow(*_: Any) -> Reply:
        time.sleep(0.5)
        return _created("POST", "", {}, {})

    server = recorder_factory(slow)
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN, timeout=(2.0, 0.1)))
    started = time.monotonic()
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert time.monotonic() - started < 0.45
    assert result.status == "failed" and "ReadTimeout" in result.detail["error"]


def test_an_unreachable_api_is_a_failed_result():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    action = QuarantineAction(QuarantineEndpoint(f"http://127.0.0.1:{port}", TOKEN, timeout=1.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed" and result.detail["http_status"] is None
    assert result.detail["error"].startswith("POST /api/quarantine did not complete")


def test_dry_run_sends_nothing_and_needs_no_endpoint(recorder_factory):
    server = recorder_factory(_created)
    request = QuarantineAction().plan(_finding(), _decision(dry_run=True))
    with requests.Session() as session:
        result = QuarantineAction(QuarantineEndpoint(server.url, TOKEN)).apply(request, session)
        offline = QuarantineAction().apply(request, session)
        undo = QuarantineAction().rollback(result, session)
    assert result.status == offline.status == undo.status == "dry_run"
    assert result.detail == {"would_send": "POST /api/quarantine", "body": request.payload}
    assert server.requests == []


def test_apply_refuses_tampered_requests_before_sending(recorder_factory):
    server = recorder_factory(_created)
    action = QuarantineAction(QuarantineEndpoint(server.url, TOKEN))
    request = action.plan(_finding(), _decision())

    def tampered(**payload: Any):
        return type(request)(**{**request.as_dict(), "payload": {**request.payload, **payload}})

    with pytest.raises(ValueError, match="external_id must be the request's idempotency key"):
        action.apply(tampered(external_id="x"), requests.Session())
    with pytest.raises(ValueError, match="refusing asset address"):
        action.apply(tampered(addresses=["10.0.0.5;reboot"]), requests.Session())
    with pytest.raises(QuarantineEndpointMissing, match="no enforcement endpoint configured"):
        QuarantineAction().apply(request, requests.Session())
    assert server.requests == []


# --- against the demo enforcement API -------------------------------------------------------------


def test_block_retry_and_release_against_the_demo_api(enforcement):
    action = QuarantineAction(QuarantineEndpoint(enforcement.url, TOKEN, timeout=5.0))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        first = action.apply(request, session)
        retry = action.apply(request, session)
        assert first.status == retry.status == "applied"
        assert first.external_ref == retry.external_ref == "1"
        assert first.detail["created"] is True and retry.detail["duplicate"] is True
        [block] = enforcement.blocks()
        assert block["state"] == "blocked"
        assert block["addresses"] == ["10.0.0.5", "10.0.1.0/24", "db.example.org"]
        assert block["external_id"] == request.idempotency_key
        assert block["finding_fingerprint"] == FP

        released = action.rollback(first, session)
        assert released.status == "rolled_back"
        assert released.detail == {"block_id": "1", "state": "released", "http_status": 200}
        assert enforcement.blocks()[0]["state"] == "released"

        again = action.apply(request, session)
        assert again.status == "failed"
        assert "was released; autosec does not block again" in again.detail["error"]
        assert len(enforcement.blocks()) == 1


def test_a_wrong_token_is_a_401_failure_and_blocks_nothing(enforcement):
    action = QuarantineAction(QuarantineEndpoint(enforcement.url, "wrong", timeout=5.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
        ghost = action.rollback(ActionResult("k", "applied", "1", {"block_id": "1"}), session)
    assert result.status == "failed" and result.detail["http_status"] == 401
    assert "unauthorized" in result.detail["body"]
    assert ghost.status == "failed" and ghost.detail["http_status"] == 401
    assert enforcement.blocks() == []


def test_rollback_of_an_unknown_block_fails_and_of_a_failure_is_refused(enforcement):
    action = QuarantineAction(QuarantineEndpoint(enforcement.url, TOKEN, timeout=5.0))
    with requests.Session() as session:
        ghost = action.rollback(ActionResult("k", "applied", "99", {"block_id": "99"}), session)
        with pytest.raises(ValueError, match="nothing to roll back"):
            action.rollback(ActionResult("k", "failed"), session)
    assert ghost.status == "failed"
    assert ghost.detail["error"] == "enforcement API answered 404 to DELETE /api/quarantine/99"


# --- endpoint -------------------------------------------------------------------------------------


def test_endpoint_from_connection_fields():
    conn = SimpleNamespace(
        conn_type="http",
        host="enforce.internal",
        port=8090,
        schema="fw/v1",
        password="s3cret",
        extra_dejson={"timeout": 7},
    )
    endpoint = QuarantineEndpoint.from_connection(conn)
    assert endpoint.base_url == "http://enforce.internal:8090/fw/v1"
    assert endpoint.url("/api/quarantine") == "http://enforce.internal:8090/fw/v1/api/quarantine"
    assert endpoint.token == "s3cret" and "s3cret" not in repr(endpoint)
    assert endpoint.timeout == (5.0, 7.0)
    secure = QuarantineEndpoint.from_connection(
        SimpleNamespace(conn_type="generic", host="enforce.example", port=None, password=None)
    )
    assert (secure.base_url, secure.token) == ("https://enforce.example", None)
    with pytest.raises(ValueError, match="enforcement connection has no host"):
        QuarantineEndpoint.from_connection(SimpleNamespace(host=""))
    with pytest.raises(ValueError, match="must be an http"):
        QuarantineEndpoint("enforce.example")

"""The demo ticketing API over real HTTP: auth, validation, idempotency, persistence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from autosec.demo.ticketing import TicketingServer
from support.demo_servers import assert_refused, bad_credentials, foreground

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIXED_NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _ticket(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Apache httpd 2.4.49 on web-frontend (CVE-2021-41773)",
        "description": "Upgrade to 2.4.51 or later.",
        "priority": "high",
        "assignee": "team-web",
        "labels": ["autosec", "critical"],
        "external_id": "fp-1:ticket:abc",
        "due_date": "2026-03-08",
    }
    body.update(overrides)
    return body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TicketingServer]:
    with TicketingServer(
        token=TOKEN, store_path=tmp_path / "tickets.json", clock=lambda: FIXED_NOW
    ) as running:
        yield running


def test_create_get_list_and_close(server: TicketingServer) -> None:
    created = requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
    assert created.status_code == 201
    ticket = created.json()
    assert (ticket["id"], ticket["key"], ticket["status"]) == ("1", "SEC-1", "open")
    assert ticket["labels"] == ["autosec", "critical"]
    assert ticket["due_date"] == "2026-03-08"
    assert ticket["created_at"] == "2026-03-01T09:30:00+00:00"
    assert created.headers["Location"] == "/api/tickets/1"

    second = requests.post(
        f"{server.url}/api/tickets", json=_ticket(external_id="fp-2"), headers=AUTH, timeout=5
    )
    assert second.json()["key"] == "SEC-2"

    one = requests.get(f"{server.url}/api/tickets/1", headers=AUTH, timeout=5)
    assert one.status_code == 200 and one.json()["title"] == ticket["title"]

    listed = requests.get(f"{server.url}/api/tickets", headers=AUTH, timeout=5).json()
    assert [t["key"] for t in listed] == ["SEC-1", "SEC-2"]
    filtered = requests.get(
        f"{server.url}/api/tickets", params={"external_id": "fp-2"}, headers=AUTH, timeout=5
    ).json()
    assert [t["id"] for t in filtered] == ["2"]

    closed = requests.post(
        f"{server.url}/api/tickets/1/close",
        json={"comment": "fixed, verified"},
        headers=AUTH,
        timeout=5,
    )
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert closed.json()["comments"] == [
        {"body": "fixed, verified", "at": "2026-03-01T09:30:00+00:00"}
    ]
    again = requests.post(
        f"{server.url}/api/tickets/1/close", json={"comment": "twice"}, headers=AUTH, timeout=5
    )
    assert again.status_code == 200 and len(again.json()["comments"]) == 1
    open_only = requests.get(
        f"{server.url}/api/tickets", params={"status": "open"}, headers=AUTH, timeout=5
    ).json()
    assert [t["id"] for t in open_only] == ["2"]
    assert [t["status"] for t in server.tickets()] == ["closed", "open"]


def test_duplicate_external_id_is_409_with_the_existing_ticket(server: TicketingServer) -> None:
    first = requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
    dup = requests.post(
        f"{server.url}/api/tickets", json=_ticket(title="retry"), headers=AUTH, timeout=5
    )
    assert dup.status_code == 409
    assert dup.json()["error"] == "duplicate"
    assert (dup.json()["id"], dup.json()["key"]) == (first.json()["id"], first.json()["key"])
    assert len(server.tickets()) == 1


def test_tickets_without_external_id_are_never_duplicates(server: TicketingServer) -> None:
    for _ in range(2):
        r = requests.post(
            f"{server.url}/api/tickets", json={"title": "manual"}, headers=AUTH, timeout=5
        )
        assert r.status_code == 201
        assert r.json()["priority"] == "medium" and r.json()["external_id"] is None


@bad_credentials(TOKEN)
def test_token_is_required(server: TicketingServer, headers: dict[str, str]) -> None:
    post, _ = assert_refused(
        server.url, headers, [("POST", "/api/tickets", _ticket()), ("GET", "/api/tickets", None)]
    )
    assert post.headers["WWW-Authenticate"] == "Bearer"
    assert server.tickets() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"description": "no title"}).encode(), "'title' is required"),
        (json.dumps({"title": "   "}).encode(), "'title' is required"),
        (json.dumps({"title": "t", "labels": "a,b"}).encode(), "'labels' must be a list"),
        (json.dumps({"title": "t", "due_date": "next week"}).encode(), "'due_date' is not"),
        (json.dumps({"title": "t", "priority": 3}).encode(), "'priority' must be a string"),
        (json.dumps({"title": "t", "severity": "high"}).encode(), "unknown field"),
    ],
)
def test_invalid_requests_are_400(server: TicketingServer, body: bytes, message: str) -> None:
    r = requests.post(
        f"{server.url}/api/tickets",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    assert message in r.json()["message"]
    assert server.tickets() == []


def test_unknown_ticket_and_route(server: TicketingServer) -> None:
    assert requests.get(f"{server.url}/api/tickets/99", headers=AUTH, timeout=5).status_code == 404
    closing = requests.post(f"{server.url}/api/tickets/99/close", json={}, headers=AUTH, timeout=5)
    assert closing.status_code == 404
    assert requests.get(f"{server.url}/nowhere", headers=AUTH, timeout=5).status_code == 404
    assert (
        requests.delete(f"{server.url}/api/tickets/1", headers=AUTH, timeout=5).status_code == 405
    )
    assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}


def test_no_token_configured_means_open_access() -> None:
    with TicketingServer() as server:
        r = requests.post(f"{server.url}/api/tickets", json={"title": "x"}, timeout=5)
        assert r.status_code == 201


def test_tickets_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "tickets.json"
    with TicketingServer(token=TOKEN, store_path=store) as server:
        requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
    on_disk = json.loads(store.read_text())
    assert [t["key"] for t in on_disk["tickets"]] == ["SEC-1"]
    with TicketingServer(token=TOKEN, store_path=store) as server:
        dup = requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
        assert dup.status_code == 409 and dup.json()["key"] == "SEC-1"
        new = requests.post(
            f"{server.url}/api/tickets", json=_ticket(external_id="fp-9"), headers=AUTH, timeout=5
        )
        assert new.json()["key"] == "SEC-2"


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    store.write_text("{oops")
    with pytest.raises(ValueError, match=r"tickets\.json: cannot read it as JSON"):
        TicketingServer(store_path=store).start()


def test_module_runs_in_the_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    with foreground(
        "autosec.demo.ticketing",
        *("--port", "0", "--store", str(store)),
        env={"AUTOSEC_TICKETING_TOKEN": TOKEN},
    ) as running:
        assert "bearer token required" in running.line, running.line
        url = running.url
        assert requests.post(f"{url}/api/tickets", json=_ticket(), timeout=5).status_code == 401
        r = requests.post(f"{url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
        assert r.status_code == 201
    assert json.loads(store.read_text())["tickets"][0]["external_id"] == "fp-1:ticket:abc"


# --- comments and resolutions ---------------------------------------------------------------


def test_comments_are_appended_whatever_the_status(server: TicketingServer) -> None:
    requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)

    first = requests.post(
        f"{server.url}/api/tickets/1/comments", json={"body": "seen again"}, headers=AUTH, timeout=5
    )
    assert first.status_code == 201
    assert first.headers["Location"] == "/api/tickets/1"
    assert first.json()["comments"] == [{"body": "seen again", "at": "2026-03-01T09:30:00+00:00"}]
    assert first.json()["status"] == "open"

    requests.post(
        f"{server.url}/api/tickets/1/close", json={"comment": "fixed"}, headers=AUTH, timeout=5
    )
    after_close = requests.post(
        f"{server.url}/api/tickets/1/comments", json={"body": "again"}, headers=AUTH, timeout=5
    )
    assert after_close.status_code == 201
    assert after_close.json()["status"] == "closed"
    assert [c["body"] for c in server.tickets()[0]["comments"]] == ["seen again", "fixed", "again"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "'body' is required"),
        ({"body": "  "}, 400, "'body' is required"),
        ({"body": 3}, 400, "'body' must be a string"),
        ({"body": "x" * 30_001}, 400, "longer than 30000"),
        (["body"], 400, "JSON object"),
    ],
)
def test_invalid_comments_are_refused(
    server: TicketingServer, body: object, status: int, message: str
) -> None:
    requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)

    r = requests.post(f"{server.url}/api/tickets/1/comments", json=body, headers=AUTH, timeout=5)

    assert r.status_code == status
    assert message in r.json()["message"]
    assert server.tickets()[0]["comments"] == []


def test_comment_needs_a_token_a_body_and_a_ticket(server: TicketingServer) -> None:
    requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
    url = f"{server.url}/api/tickets/1/comments"

    assert requests.post(url, json={"body": "x"}, timeout=5).status_code == 401
    no_length = requests.post(url, headers=AUTH, timeout=5)  # requests sends Content-Length: 0
    assert no_length.status_code == 400
    missing = requests.post(
        f"{server.url}/api/tickets/99/comments", json={"body": "x"}, headers=AUTH, timeout=5
    )
    assert missing.status_code == 404
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 405
    assert server.tickets()[0]["comments"] == []


def test_resolve_marks_the_work_done_and_close_still_closes(server: TicketingServer) -> None:
    requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)

    resolved = requests.post(
        f"{server.url}/api/tickets/1/resolve",
        json={"comment": "upgraded to 2.4.51"},
        headers=AUTH,
        timeout=5,
    )

    assert resolved.status_code == 200
    ticket = resolved.json()
    assert (ticket["status"], ticket["resolved_at"], ticket["closed_at"]) == (
        "resolved",
        "2026-03-01T09:30:00+00:00",
        None,
    )
    assert [c["body"] for c in ticket["comments"]] == ["upgraded to 2.4.51"]
    listed = requests.get(
        f"{server.url}/api/tickets", params={"status": "resolved"}, headers=AUTH, timeout=5
    ).json()
    assert [t["id"] for t in listed] == ["1"]
    # Resolving again (more work done) is a new resolution, with its comment.
    again = requests.post(f"{server.url}/api/tickets/1/resolve", json={}, headers=AUTH, timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "resolved"

    closed = requests.post(
        f"{server.url}/api/tickets/1/close", json={"comment": "verified"}, headers=AUTH, timeout=5
    )
    assert closed.json()["status"] == "closed"
    refused = requests.post(
        f"{server.url}/api/tickets/1/resolve", json={"comment": "x"}, headers=AUTH, timeout=5
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "closed"
    assert server.tickets()[0]["status"] == "closed"
    missing = requests.post(
        f"{server.url}/api/tickets/99/resolve", json={}, headers=AUTH, timeout=5
    )
    assert missing.status_code == 404


def test_resolutions_and_comments_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "tickets.json"
    with TicketingServer(token=TOKEN, store_path=store) as server:
        requests.post(f"{server.url}/api/tickets", json=_ticket(), headers=AUTH, timeout=5)
        requests.post(
            f"{server.url}/api/tickets/1/comments", json={"body": "n"}, headers=AUTH, timeout=5
        )
        requests.post(f"{server.url}/api/tickets/1/resolve", json={}, headers=AUTH, timeout=5)
    with TicketingServer(token=TOKEN, store_path=store) as server:
        [ticket] = server.tickets()
    assert ticket["status"] == "resolved" and ticket["resolved_at"] is not None
    assert [c["body"] for c in ticket["comments"]] == ["n"]

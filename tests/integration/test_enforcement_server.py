"""The demo enforcement API over real HTTP: auth, validation, idempotency, release, persistence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from autosec.demo.enforcement import EnforcementServer
from support.demo_servers import assert_refused, bad_credentials, foreground

TOKEN = "enf-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIXED_NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _block(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "asset_id": "db-legacy",
        "addresses": ["10.0.0.5", "10.0.1.0/24", "db.example.org"],
        "reason": "autosec: exposed database",
        "finding_fingerprint": "f" * 64,
        "external_id": "key-1",
        "expires_at": "2026-03-08T12:00:00+02:00",
    }
    body.update(overrides)
    return body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EnforcementServer]:
    with EnforcementServer(
        token=TOKEN, store_path=tmp_path / "blocks.json", clock=lambda: FIXED_NOW
    ) as running:
        yield running


def test_block_get_list_and_release(server: EnforcementServer) -> None:
    created = requests.post(f"{server.url}/api/quarantine", json=_block(), headers=AUTH, timeout=5)
    assert created.status_code == 201
    block = created.json()
    assert (block["id"], block["state"]) == ("1", "blocked")
    assert block["addresses"] == ["10.0.0.5", "10.0.1.0/24", "db.example.org"]
    assert block["expires_at"] == "2026-03-08T10:00:00+00:00"
    assert block["created_at"] == "2026-03-01T09:30:00+00:00"
    assert created.headers["Location"] == "/api/quarantine/1"

    other = requests.post(
        f"{server.url}/api/quarantine",
        json=_block(external_id="key-2", expires_at=None, asset_id="web-7"),
        headers=AUTH,
        timeout=5,
    )
    assert other.json()["id"] == "2" and other.json()["expires_at"] is None

    one = requests.get(f"{server.url}/api/quarantine/1", headers=AUTH, timeout=5)
    assert one.status_code == 200 and one.json()["external_id"] == "key-1"
    by_key = requests.get(
        f"{server.url}/api/quarantine", params={"external_id": "key-2"}, headers=AUTH, timeout=5
    ).json()
    assert [b["id"] for b in by_key] == ["2"]

    released = requests.delete(f"{server.url}/api/quarantine/1", headers=AUTH, timeout=5)
    assert released.status_code == 200
    assert (released.json()["state"], released.json()["released_at"]) == (
        "released",
        "2026-03-01T09:30:00+00:00",
    )
    again = requests.post(f"{server.url}/api/quarantine/2/release", headers=AUTH, timeout=5)
    assert again.status_code == 200 and again.json()["state"] == "released"
    twice = requests.delete(f"{server.url}/api/quarantine/1", headers=AUTH, timeout=5)
    assert twice.status_code == 200 and twice.json()["state"] == "released"
    blocked = requests.get(
        f"{server.url}/api/quarantine", params={"state": "blocked"}, headers=AUTH, timeout=5
    ).json()
    assert blocked == []
    assert [b["state"] for b in server.blocks()] == ["released", "released"]


def test_duplicate_external_id_is_409_with_the_existing_block(server: EnforcementServer) -> None:
    first = requests.post(f"{server.url}/api/quarantine", json=_block(), headers=AUTH, timeout=5)
    dup = requests.post(
        f"{server.url}/api/quarantine",
        json=_block(addresses=["10.9.9.9"]),
        headers=AUTH,
        timeout=5,
    )
    assert dup.status_code == 409
    assert dup.json()["error"] == "duplicate"
    assert (dup.json()["id"], dup.json()["state"]) == (first.json()["id"], "blocked")
    assert dup.json()["addresses"] == first.json()["addresses"]
    assert len(server.blocks()) == 1


@bad_credentials(TOKEN)
def test_token_is_required(server: EnforcementServer, headers: dict[str, str]) -> None:
    post, _, _ = assert_refused(
        server.url,
        headers,
        [
            ("POST", "/api/quarantine", _block()),
            ("GET", "/api/quarantine", None),
            ("DELETE", "/api/quarantine/1", None),
        ],
    )
    assert post.headers["WWW-Authenticate"] == "Bearer"
    assert server.blocks() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps(_block(addresses=[])).encode(), "non-empty list of strings"),
        (json.dumps(_block(addresses="10.0.0.5")).encode(), "non-empty list of strings"),
        (json.dumps(_block(addresses=["10.0.0.5;reboot"])).encode(), "invalid target"),
        (json.dumps(_block(addresses=["$(id)"])).encode(), "shell characters"),
        (json.dumps(_block(addresses=["https://x.example/"])).encode(), "is a URL"),
        (json.dumps(_block(external_id="")).encode(), "'external_id' is required"),
        (json.dumps(_block(expires_at="2026-03-08T12:00:00")).encode(), "has no time zone"),
        (json.dumps(_block(expires_at="soon")).encode(), "not an ISO date-time"),
        (json.dumps(_block(action="drop")).encode(), "unknown field"),
    ],
)
def test_invalid_requests_are_400(server: EnforcementServer, body: bytes, message: str) -> None:
    r = requests.post(
        f"{server.url}/api/quarantine",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    assert message in r.json()["message"]
    assert server.blocks() == []


def test_unknown_block_and_route(server: EnforcementServer) -> None:
    base = server.url
    assert requests.get(f"{base}/api/quarantine/99", headers=AUTH, timeout=5).status_code == 404
    assert requests.delete(f"{base}/api/quarantine/99", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(f"{base}/nowhere", headers=AUTH, timeout=5).status_code == 404
    assert requests.put(f"{base}/api/quarantine/1", headers=AUTH, timeout=5).status_code == 405
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}


def test_no_token_configured_means_open_access() -> None:
    with EnforcementServer() as server:
        r = requests.post(f"{server.url}/api/quarantine", json=_block(), timeout=5)
        assert r.status_code == 201


def test_blocks_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "blocks.json"
    with EnforcementServer(token=TOKEN, store_path=store) as server:
        requests.post(f"{server.url}/api/quarantine", json=_block(), headers=AUTH, timeout=5)
    assert [b["external_id"] for b in json.loads(store.read_text())["blocks"]] == ["key-1"]
    with EnforcementServer(token=TOKEN, store_path=store) as server:
        dup = requests.post(f"{server.url}/api/quarantine", json=_block(), headers=AUTH, timeout=5)
        assert dup.status_code == 409 and dup.json()["id"] == "1"
        new = requests.post(
            f"{server.url}/api/quarantine",
            json=_block(external_id="key-9"),
            headers=AUTH,
            timeout=5,
        )
        assert new.json()["id"] == "2"


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "blocks.json"
    store.write_text('{"blocks": "nope"}')
    with pytest.raises(ValueError, match=r"blocks\.json: expected an object with a 'blocks' list"):
        EnforcementServer(store_path=store).start()


def test_module_runs_in_the_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "blocks.json"
    with foreground(
        "autosec.demo.enforcement",
        *("--port", "0", "--store", str(store)),
        env={"AUTOSEC_ENFORCEMENT_TOKEN": TOKEN},
    ) as running:
        assert "bearer token required" in running.line, running.line
        url = running.url
        assert requests.post(f"{url}/api/quarantine", json=_block(), timeout=5).status_code == 401
        r = requests.post(f"{url}/api/quarantine", json=_block(), headers=AUTH, timeout=5)
        assert r.status_code == 201
    assert json.loads(store.read_text())["blocks"][0]["state"] == "blocked"

"""The demo Git hosting API over real HTTP: GitHub's shapes for pull requests, auth, 422s,
the head/state filters, close, persistence, and the foreground command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from autosec.demo.githost import GitHostServer
from support.demo_servers import assert_refused, bad_credentials, foreground

TOKEN = "ghp_s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIXED_NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PULLS = "/repos/acme/shop-api/pulls"


def _pr(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "autosec: upgrade django to 3.2.25",
        "head": "autosec/upgrade-django-0123456789ab",
        "base": "main",
        "body": "Fixes CVE-2024-27351.",
    }
    body.update(overrides)
    return body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHostServer]:
    with GitHostServer(
        token=TOKEN,
        store_path=tmp_path / "pulls.json",
        repositories=["acme/shop-api", "acme/platform"],
        clock=lambda: FIXED_NOW,
    ) as running:
        yield running


def test_open_list_get_and_close(server: GitHostServer) -> None:
    created = requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
    assert created.status_code == 201
    pull = created.json()
    assert (pull["number"], pull["state"], pull["merged"], pull["merged_at"]) == (
        1,
        "open",
        False,
        None,
    )
    assert pull["head"]["ref"] == "autosec/upgrade-django-0123456789ab"
    assert pull["head"]["label"] == "acme:autosec/upgrade-django-0123456789ab"
    assert pull["head"]["repo"]["full_name"] == "acme/shop-api"
    assert pull["base"]["ref"] == "main"
    assert pull["html_url"] == f"{server.url}/web/acme/shop-api/pull/1"
    assert pull["url"] == f"{server.url}{PULLS}/1"
    assert created.headers["Location"] == pull["url"]
    assert pull["created_at"] == "2026-03-01T09:30:00Z"

    other_repo = requests.post(
        f"{server.url}/repos/acme/platform/pulls", json=_pr(), headers=AUTH, timeout=5
    )
    assert other_repo.json()["number"] == 1  # numbers count per repository
    second = requests.post(
        f"{server.url}{PULLS}", json=_pr(head="acme:feature/x"), headers=AUTH, timeout=5
    )
    assert second.json()["number"] == 2

    def listed(**params: str) -> list[int]:
        r = requests.get(f"{server.url}{PULLS}", params=params, headers=AUTH, timeout=5)
        assert r.status_code == 200
        return [p["number"] for p in r.json()]

    assert listed() == [1, 2]
    assert listed(head="acme:autosec/upgrade-django-0123456789ab", state="all") == [1]
    assert listed(head="feature/x") == [2]  # a head without an owner means the repo's owner
    assert listed(head="someone-else:feature/x") == []

    one = requests.get(f"{server.url}{PULLS}/2", headers=AUTH, timeout=5)
    assert one.status_code == 200 and one.json()["head"]["ref"] == "feature/x"
    closed = requests.patch(
        f"{server.url}{PULLS}/1", json={"state": "closed"}, headers=AUTH, timeout=5
    )
    assert closed.status_code == 200
    assert (closed.json()["state"], closed.json()["closed_at"]) == (
        "closed",
        "2026-03-01T09:30:00Z",
    )
    assert listed() == [2]
    assert listed(state="closed") == [1]
    assert listed(state="all") == [1, 2]
    renamed = requests.patch(
        f"{server.url}{PULLS}/2", json={"title": "renamed"}, headers=AUTH, timeout=5
    )
    assert renamed.json()["title"] == "renamed" and renamed.json()["state"] == "open"
    assert [p["state"] for p in server.pulls("acme/shop-api")] == ["closed", "open"]


def test_a_second_open_request_from_the_same_head_is_422(server: GitHostServer) -> None:
    requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
    dup = requests.post(f"{server.url}{PULLS}", json=_pr(title="retry"), headers=AUTH, timeout=5)
    assert dup.status_code == 422
    assert dup.json()["message"] == "Validation Failed"
    assert dup.json()["errors"][0]["message"] == (
        "A pull request already exists for acme:autosec/upgrade-django-0123456789ab."
    )
    assert len(server.pulls()) == 1
    # Once closed, the branch may be proposed again, as on GitHub; reopening the old one then
    # would make two open requests from one head, which is refused.
    requests.patch(f"{server.url}{PULLS}/1", json={"state": "closed"}, headers=AUTH, timeout=5)
    reopened_elsewhere = requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
    assert reopened_elsewhere.status_code == 201
    reopen = requests.patch(
        f"{server.url}{PULLS}/1", json={"state": "open"}, headers=AUTH, timeout=5
    )
    assert reopen.status_code == 422


def test_a_merged_request_keeps_its_state(server: GitHostServer) -> None:
    requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
    merged = server.merge("acme/shop-api", 1)
    assert (merged["state"], merged["merged"]) == ("closed", True)
    reopen = requests.patch(
        f"{server.url}{PULLS}/1", json={"state": "open"}, headers=AUTH, timeout=5
    )
    assert reopen.status_code == 422
    listed = requests.get(
        f"{server.url}{PULLS}", params={"state": "all"}, headers=AUTH, timeout=5
    ).json()
    assert listed[0]["merged_at"] == "2026-03-01T09:30:00Z"


@bad_credentials(TOKEN)
def test_token_is_required(server: GitHostServer, headers: dict[str, str]) -> None:
    post, _, _ = assert_refused(
        server.url,
        headers,
        [
            ("POST", PULLS, _pr()),
            ("GET", PULLS, None),
            ("PATCH", f"{PULLS}/1", {"state": "closed"}),
        ],
    )
    assert post.json()["message"] == "Bad credentials"
    assert server.pulls() == []


def test_the_token_scheme_works_too(server: GitHostServer) -> None:
    r = requests.post(
        f"{server.url}{PULLS}", json=_pr(), headers={"Authorization": f"token {TOKEN}"}, timeout=5
    )
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "Problems parsing JSON"),
        (json.dumps({"head": "x", "base": "main"}).encode(), 422, "title is required"),
        (json.dumps(_pr(base="")).encode(), 422, "base is required"),
        (json.dumps(_pr(head="bad..branch")).encode(), 422, "not a valid branch name"),
        (json.dumps(_pr(head="main")).encode(), 422, "No commits between main and main"),
        (json.dumps(_pr(labels=["x"])).encode(), 422, "unknown field"),
    ],
)
def test_invalid_requests(server: GitHostServer, body: bytes, status: int, message: str) -> None:
    r = requests.post(
        f"{server.url}{PULLS}",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == status
    answer = r.json()
    assert message in answer["message"] + json.dumps(answer.get("errors", []))
    assert server.pulls() == []


def test_unknown_repository_request_and_route(server: GitHostServer) -> None:
    base = server.url
    missing_repo = requests.post(
        f"{base}/repos/acme/nope/pulls", json=_pr(), headers=AUTH, timeout=5
    )
    assert missing_repo.status_code == 404 and missing_repo.json()["message"] == "Not Found"
    assert requests.get(f"{base}{PULLS}/99", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(f"{base}{PULLS}/abc", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(f"{base}/repos/acme", headers=AUTH, timeout=5).status_code == 404
    assert requests.delete(f"{base}{PULLS}/1", headers=AUTH, timeout=5).status_code == 404
    bad_state = requests.get(f"{base}{PULLS}", params={"state": "x"}, headers=AUTH, timeout=5)
    assert bad_state.status_code == 422
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}


def test_any_repository_exists_when_none_are_listed() -> None:
    with GitHostServer() as server:
        r = requests.post(f"{server.url}/repos/any/thing/pulls", json=_pr(), timeout=5)
        assert r.status_code == 201
    with pytest.raises(ValueError, match="repository 'nope' is not owner/name"):
        GitHostServer(repositories=["nope"])


def test_pull_requests_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "pulls.json"
    with GitHostServer(token=TOKEN, store_path=store) as server:
        requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
    assert [p["number"] for p in json.loads(store.read_text())["pulls"]] == [1]
    with GitHostServer(token=TOKEN, store_path=store) as server:
        dup = requests.post(f"{server.url}{PULLS}", json=_pr(), headers=AUTH, timeout=5)
        assert dup.status_code == 422
        new = requests.post(f"{server.url}{PULLS}", json=_pr(head="other"), headers=AUTH, timeout=5)
        assert new.json()["number"] == 2


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "pulls.json"
    store.write_text("{oops")
    with pytest.raises(ValueError, match=r"pulls\.json: cannot read it as JSON"):
        GitHostServer(store_path=store).start()


def test_module_runs_in_the_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "pulls.json"
    with foreground(
        "autosec.demo.githost",
        *("--port", "0", "--store", str(store), "--repository", "acme/shop-api"),
        env={"AUTOSEC_GITHOST_TOKEN": TOKEN},
    ) as running:
        assert "token required" in running.line, running.line
        url = running.url
        assert requests.post(f"{url}{PULLS}", json=_pr(), timeout=5).status_code == 401
        assert (
            requests.post(f"{url}{PULLS}", json=_pr(), headers=AUTH, timeout=5).status_code == 201
        )
        other = requests.post(f"{url}/repos/acme/x/pulls", json=_pr(), headers=AUTH, timeout=5)
        assert other.status_code == 404
    assert json.loads(store.read_text())["pulls"][0]["head"]["ref"] == (
        "autosec/upgrade-django-0123456789ab"
    )

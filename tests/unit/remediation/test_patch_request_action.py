"""PatchRequestAction over real HTTP on loopback: the pull request asked for, one per finding
even across retries and GitHub's 422, dry runs, failures, and closing it to roll back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from autosec.config.policy import LoadedPolicy, Policy
from autosec.demo.githost import GitHostServer
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import Decision, FindingFacts, decide
from autosec.remediation.actions.base import ActionResult, idempotency_key
from autosec.remediation.actions.patch_request import (
    GitHostEndpoint,
    GitHostEndpointMissing,
    PatchRequestAction,
    head_branch,
)
from support.http import Reply

TOKEN = "ghp_t0ken"
FP = "b" * 64
POLICY_HASH = "ef" * 32
KEY = idempotency_key(FP, "patch_request", POLICY_HASH)
BRANCH = f"autosec/upgrade-django-{KEY[:12]}"
PULLS = "/repos/acme/shop-api/pulls"


@pytest.fixture
def githost() -> Iterator[GitHostServer]:
    with GitHostServer(token=TOKEN, repositories=["acme/shop-api", "acme/platform"]) as server:
        yield server


def _finding(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 21,
        "fingerprint": FP,
        "asset_id": "shop-api",
        "engine": "sbom",
        "rule_id": "osv/GHSA-vm8q-m57g-pff3",
        "title": "Django: denial of service in intcomma",
        "severity": "high",
        "location": {"purl": "pkg:pypi/django@3.2.1", "file": "requirements.txt"},
        "cve_ids": ["CVE-2024-27351"],
        "ghsa_ids": ["GHSA-vm8q-m57g-pff3"],
        "evidence": {"fixed_version": "3.2.25"},
        "asset_repository": "acme/shop-api",
        "due_date": date(2026, 4, 1),
    }
    row.update(overrides)
    return row


def _decision(
    dry_run: bool = False, fingerprint: str = FP, action: str = "patch_request"
) -> Decision:
    policy = Policy.model_validate(
        {
            "version": "p-1",
            "enforcement": {
                "dry_run": dry_run,
                "rules": [
                    {
                        "id": "upgrade-vulnerable-deps",
                        "action": action,
                        "mode": "in_the_loop",
                        "approvers": ["lead"],
                    }
                ],
            },
        }
    )
    loaded = LoadedPolicy(policy, POLICY_HASH, Path("p.yaml"))
    asset = Asset(
        "shop-api",
        "shop api",
        AssetKind.REPOSITORY,
        "file",
        "team-shop",
        Environment.PRODUCTION,
        Criticality.HIGH,
    )
    facts = FindingFacts(fingerprint, "osv/GHSA-vm8q-m57g-pff3", "sbom", "high")
    return decide(facts, asset, loaded)


def _endpoint(url: str, token: str | None = TOKEN, **kw: Any) -> GitHostEndpoint:
    return GitHostEndpoint(url, token, **{"timeout": 5.0, **kw})


def _pull(number: int, state: str = "open", merged_at: str | None = None) -> dict[str, Any]:
    return {
        "number": number,
        "state": state,
        "merged_at": merged_at,
        "html_url": f"https://git.example/acme/shop-api/pull/{number}",
        "head": {"ref": BRANCH, "label": f"acme:{BRANCH}"},
    }


# --- plan -----------------------------------------------------------------------------------------


def test_plan_builds_the_pull_request_from_the_finding():
    request = PatchRequestAction().plan(_finding(), _decision())
    assert (request.idempotency_key, request.action, request.asset_id) == (
        KEY,
        "patch_request",
        "shop-api",
    )
    payload = request.payload
    assert payload["repository"] == "acme/shop-api"
    assert payload["head"] == BRANCH
    assert payload["base"] is None  # the endpoint's base branch, decided at apply
    assert payload["title"] == (
        "autosec: upgrade django to 3.2.25 (CVE-2024-27351, GHSA-vm8q-m57g-pff3)"
    )
    assert payload["package"] == {
        "purl": "pkg:pypi/django@3.2.1",
        "name": "django",
        "current_version": "3.2.1",
        "fixed_version": "3.2.25",
        "advisories": ["CVE-2024-27351", "GHSA-vm8q-m57g-pff3"],
        "severity": "high",
    }
    body = payload["body"]
    for part in (
        "| Current version | `3.2.1` |",
        "| Fixed version | `3.2.25` |",
        "| Advisories | `CVE-2024-27351`, `GHSA-vm8q-m57g-pff3` |",
        "| Due | `2026-04-01` |",
        "rule `upgrade-vulnerable-deps`",
        f"idempotency key `{KEY}`",
    ):
        assert part in body


def test_plan_reads_the_fixed_version_from_the_row_and_the_repository_from_a_tag():
    finding = _finding(
        fixed_version="3.2.24",
        evidence=None,
        asset_repository=None,
        asset_tags=["pci", "repo:acme/platform"],
        location={"purl": "pkg:npm/%40acme/left-pad@1.0.0"},
        cve_ids=[],
        ghsa_ids=[],
    )
    request = PatchRequestAction().plan(finding, _decision())
    assert request.payload["repository"] == "acme/platform"
    assert request.payload["package"]["name"] == "@acme/left-pad"
    assert request.payload["package"]["fixed_version"] == "3.2.24"
    assert request.payload["head"] == f"autosec/upgrade-left-pad-{KEY[:12]}"
    assert request.payload["title"] == "autosec: upgrade @acme/left-pad to 3.2.24"
    assert "| Advisories | none recorded |" in request.payload["body"]


def test_plan_falls_back_to_the_endpoint_repository_or_leaves_it_to_apply():
    finding = _finding(asset_repository=None)
    default = GitHostEndpoint("https://api.github.com", default_repository="acme/monorepo")
    assert PatchRequestAction(default).plan(finding, _decision()).payload["repository"] == (
        "acme/monorepo"
    )
    assert PatchRequestAction().plan(finding, _decision()).payload["repository"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"evidence": {}}, r"no fixed version for pkg:pypi/django@3\.2\.1"),
        ({"location": {"host": "10.0.0.5"}}, "has no package URL"),
        ({"location": {"purl": "django==3.2.1"}}, "package URL 'django==3.2.1' is invalid"),
        ({"evidence": {"fixed_version": "3.2.25; rm -rf /"}}, "is not a version string"),
        ({"evidence": {"fixed_version": "3.2.1"}}, "already at the fixed version 3.2.1"),
        ({"asset_repository": "acme/../etc"}, "is not an owner/name repository"),
        ({"asset_repository": "https://github.com/acme/x"}, "is not an owner/name repository"),
        ({"cve_ids": ["CVE-2024-1 @everyone"]}, "is not an advisory id"),
        ({"asset_default_branch": "main..evil"}, "is not a valid branch name"),
        (
            {"asset_repository": None, "asset_tags": ["repo:a/b", "repo:c/d"]},
            "names several repositories",
        ),
    ],
)
def test_plan_refuses_what_cannot_become_a_pull_request(overrides, message):
    with pytest.raises(ValueError, match=message):
        PatchRequestAction().plan(_finding(**overrides), _decision())


def test_hostile_finding_text_stays_inside_code_spans():
    request = PatchRequestAction().plan(
        _finding(asset_id="shop`api\n@everyone <img src=x>"), _decision()
    )
    body = request.payload["body"]
    assert "| Asset | `shop'api @everyone <img src=x>` |" in body
    assert "\n@everyone" not in body


def test_head_branch_is_a_safe_git_ref():
    assert head_branch("Django", KEY) == f"autosec/upgrade-django-{KEY[:12]}"
    assert head_branch("..weird name~^:?*[", KEY) == f"autosec/upgrade-weird-name-{KEY[:12]}"
    assert head_branch("@@@", KEY) == f"autosec/upgrade-package-{KEY[:12]}"
    assert len(head_branch("x" * 300, KEY)) == len("autosec/upgrade-") + 40 + 13


# --- apply against a recorder ---------------------------------------------------------------------


def test_apply_looks_for_an_existing_request_then_opens_one(recorder_factory):
    def respond(method: str, path: str, query: dict, body: Any) -> Reply:
        if method == "GET":
            return 200, []
        return 201, {**_pull(5), "title": body["title"]}

    server = recorder_factory(respond)
    action = PatchRequestAction(_endpoint(server.url, base_branch="trunk"))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        result = action.apply(request, session)
    assert result == ActionResult(
        KEY,
        "applied",
        "https://git.example/acme/shop-api/pull/5",
        {
            "repository": "acme/shop-api",
            "pull_number": 5,
            "html_url": "https://git.example/acme/shop-api/pull/5",
            "head": BRANCH,
            "state": "open",
            "merged": False,
            "created": True,
            "http_status": 201,
        },
    )
    lookup, create = server.requests
    assert (lookup["method"], lookup["path"]) == ("GET", PULLS)
    assert lookup["query"] == {"head": [f"acme:{BRANCH}"], "state": ["all"], "per_page": ["100"]}
    assert (create["method"], create["path"]) == ("POST", PULLS)
    assert create["body"] == {
        "title": request.payload["title"],
        "head": BRANCH,
        "base": "trunk",
        "body": request.payload["body"],
    }
    for sent in (lookup, create):
        assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert sent["headers"]["Accept"] == "application/vnd.github+json"
        assert sent["headers"]["X-GitHub-Api-Version"] == "2022-11-28"


def test_a_422_for_a_duplicate_head_reports_the_existing_request(recorder_factory):
    lookups = []

    def respond(method: str, path: str, query: dict, body: Any) -> Reply:
        if method == "GET":
            lookups.append(1)
            # the first listing lags behind; the second one sees the pull request
            return 200, [] if len(lookups) == 1 else [_pull(9)]
        return 422, {
            "message": "Validation Failed",
            "errors": [{"message": f"A pull request already exists for acme:{BRANCH}."}],
        }

    server = recorder_factory(respond)
    action = PatchRequestAction(_endpoint(server.url))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert [r["method"] for r in server.requests] == ["GET", "POST", "GET"]
    assert result.status == "applied"
    assert result.detail["pull_number"] == 9
    assert result.detail["duplicate"] is True and result.detail["http_status"] == 422


def test_any_other_422_is_a_failure_with_the_body(recorder_factory):
    server = recorder_factory(
        lambda method, *_: (
            (200, [])
            if method == "GET"
            else (422, {"message": "Validation Failed", "errors": [{"field": "head"}]})
        )
    )
    action = PatchRequestAction(_endpoint(server.url))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["http_status"] == 422
    assert result.detail["error"] == f"git host answered 422 to POST {PULLS}"
    assert '"field": "head"' in result.detail["body"]


def test_a_server_error_fails_and_opens_nothing(recorder_factory):
    server = recorder_factory(lambda *_: (500, {"message": "boom " + "x" * 2000}))
    action = PatchRequestAction(_endpoint(server.url))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert [r["method"] for r in server.requests] == ["GET"]
    assert result.status == "failed"
    assert result.detail["error"] == f"git host answered 500 to GET {PULLS}"
    assert len(result.detail["body"]) <= 501
    assert TOKEN not in json.dumps(result.as_dict())


def test_a_merged_request_counts_as_applied(recorder_factory):
    server = recorder_factory(
        lambda *_: (200, [_pull(3, "closed", "2026-03-02T10:00:00Z"), {"number": 1}])
    )
    action = PatchRequestAction(_endpoint(server.url))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "applied"
    assert (result.detail["pull_number"], result.detail["merged"]) == (3, True)
    assert [r["method"] for r in server.requests] == ["GET"]


def test_every_call_has_a_timeout(recorder_factory):
    def slow(*_: Any) -> Reply:
        time.sleep(0.5)
        return 200, []

    server = recorder_factory(slow)
    action = PatchRequestAction(_endpoint(server.url, timeout=(2.0, 0.1)))
    started = time.monotonic()
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert time.monotonic() - started < 0.45
    assert result.status == "failed" and "ReadTimeout" in result.detail["error"]


def test_dry_run_sends_nothing_and_needs_no_endpoint(recorder_factory):
    server = recorder_factory(lambda *_: (200, []))
    request = PatchRequestAction().plan(_finding(), _decision(dry_run=True))
    with requests.Session() as session:
        result = PatchRequestAction(_endpoint(server.url)).apply(request, session)
        offline = PatchRequestAction().apply(request, session)
        undo = PatchRequestAction().rollback(result, session)
    assert result.status == offline.status == undo.status == "dry_run"
    assert result.detail["would_send"] == f"POST {PULLS}"
    assert result.detail["body"] == {
        "title": request.payload["title"],
        "head": BRANCH,
        "base": "main",
        "body": request.payload["body"],
    }
    assert server.requests == []


def test_apply_needs_a_repository_and_an_untampered_request(recorder_factory):
    server = recorder_factory(lambda *_: (200, []))
    request = PatchRequestAction().plan(_finding(asset_repository=None), _decision())
    no_repo = PatchRequestAction(_endpoint(server.url)).apply(request, requests.Session())
    assert no_repo.status == "failed"
    assert no_repo.detail["error"].startswith("no repository for asset 'shop-api'")
    with pytest.raises(GitHostEndpointMissing, match="no git host endpoint configured"):
        PatchRequestAction().apply(request, requests.Session())
    planned = PatchRequestAction().plan(_finding(), _decision())
    tampered = type(planned)(
        **{**planned.as_dict(), "payload": {**planned.payload, "head": "main"}}
    )
    with pytest.raises(ValueError, match="head branch must end with the idempotency key"):
        PatchRequestAction(_endpoint(server.url)).apply(tampered, requests.Session())
    assert server.requests == []


# --- against the demo git host --------------------------------------------------------------------


def test_open_retry_and_close_against_the_demo_git_host(githost):
    action = PatchRequestAction(_endpoint(githost.url))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        first = action.apply(request, session)
        retry = action.apply(request, session)
        assert first.status == retry.status == "applied"
        assert first.detail["created"] is True and retry.detail["duplicate"] is True
        assert first.external_ref == retry.external_ref == f"{githost.url}/web/acme/shop-api/pull/1"
        [pull] = githost.pulls()
        assert (pull["head"]["ref"], pull["base"]["ref"], pull["state"]) == (BRANCH, "main", "open")
        assert pull["title"] == request.payload["title"]
        assert pull["body"] == request.payload["body"]

        closed = action.rollback(first, session)
        assert closed.status == "rolled_back"
        assert closed.detail == {
            "repository": "acme/shop-api",
            "pull_number": 1,
            "state": "closed",
            "http_status": 200,
        }
        assert githost.pulls()[0]["state"] == "closed"

        declined = action.apply(request, session)
        assert declined.status == "failed"
        assert "closed without a merge; autosec does not reopen" in declined.detail["error"]
        assert len(githost.pulls()) == 1


def test_a_merged_request_cannot_be_rolled_back(githost):
    action = PatchRequestAction(_endpoint(githost.url))
    with requests.Session() as session:
        opened = action.apply(action.plan(_finding(), _decision()), session)
        githost.merge("acme/shop-api", opened.detail["pull_number"])
        again = action.apply(action.plan(_finding(), _decision()), session)
        undo = action.rollback(opened, session)
    assert again.status == "applied" and again.detail["merged"] is True
    assert undo.status == "failed"
    assert undo.detail["error"] == "pull request #1 is already merged; revert the upgrade by hand"


def test_a_wrong_token_is_a_401_failure(githost):
    action = PatchRequestAction(_endpoint(githost.url, token="wrong"))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
        close = action.rollback(
            ActionResult(KEY, "applied", None, {"repository": "acme/shop-api", "pull_number": 1}),
            session,
        )
    assert result.status == "failed" and result.detail["http_status"] == 401
    assert "Bad credentials" in result.detail["body"]
    assert close.status == "failed" and close.detail["http_status"] == 401
    assert githost.pulls() == []


def test_an_unknown_repository_is_a_404_failure(githost):
    action = PatchRequestAction(_endpoint(githost.url))
    with requests.Session() as session:
        result = action.apply(
            action.plan(_finding(asset_repository="acme/missing"), _decision()), session
        )
    assert result.status == "failed" and result.detail["http_status"] == 404


# --- endpoint -------------------------------------------------------------------------------------


def test_endpoint_from_connection_fields():
    enterprise = SimpleNamespace(
        conn_type="https",
        host="git.example.org",
        port=None,
        schema="api/v3",
        password="ghp_secret",
        extra_dejson={"default_repository": "acme/monorepo", "base_branch": "develop"},
    )
    endpoint = GitHostEndpoint.from_connection(enterprise)
    assert endpoint.base_url == "https://git.example.org/api/v3"
    assert (endpoint.default_repository, endpoint.base_branch) == ("acme/monorepo", "develop")
    assert endpoint.token == "ghp_secret" and "ghp_secret" not in repr(endpoint)
    public = GitHostEndpoint.from_connection(SimpleNamespace(host=None, password="t"))
    assert public.base_url == "https://api.github.com"
    local = GitHostEndpoint.from_connection(
        SimpleNamespace(conn_type="http", host="127.0.0.1", port=8091, password=None, extra="{}")
    )
    assert (local.base_url, local.token) == ("http://127.0.0.1:8091", None)
    with pytest.raises(ValueError, match="default_repository 'nope' is not an owner/name"):
        GitHostEndpoint(default_repository="nope")
    with pytest.raises(ValueError, match="base_branch '-main' is not a valid branch name"):
        GitHostEndpoint(base_branch="-main")

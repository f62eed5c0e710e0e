"""A small Git hosting API for pull requests: the demo's stand-in for GitHub.

The patch_request action opens upgrade pull requests through an Airflow HTTP connection; in the
demo that connection points here. It answers GitHub's REST shape for the routes autosec uses:
bearer (or ``token``) authentication with GitHub's 401 "Bad credentials", 422 "Validation
Failed" for a missing field or a second open pull request from the same head, the ``head`` and
``state`` filters of the listing, and pull requests that survive a restart when a store file is
set. It keeps no Git data: any head branch is accepted (GitHub needs it pushed first).

API (JSON in, JSON out):

- ``GET   /repos/{owner}/{repo}/pulls[?state=open|closed|all&head=owner:branch&base=]``
- ``POST  /repos/{owner}/{repo}/pulls``           {title, head, base, body?, draft?}; 201
- ``GET   /repos/{owner}/{repo}/pulls/{number}``
- ``PATCH /repos/{owner}/{repo}/pulls/{number}``  {state?, title?, body?}; 200
- ``GET   /healthz``                               liveness, no token needed
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote

from autosec.demo.http_server import (
    ApiError,
    ApiHTTPServer,
    ApiServer,
    JsonApiHandler,
    JsonRecordStore,
    api_argument_parser,
    serve_in_foreground,
    utcnow,
)

log = logging.getLogger(__name__)

TOKEN_ENV = "AUTOSEC_GITHOST_TOKEN"  # noqa: S105 (the variable's name, not a secret)
DOCS = "https://docs.github.com/rest/pulls/pulls"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^(?![-/.])(?!.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]{1,250}$")
_CREATE_FIELDS = frozenset({"title", "head", "base", "body", "draft", "maintainer_can_modify"})
_UPDATE_FIELDS = frozenset({"title", "body", "state", "base", "maintainer_can_modify"})


class GitHostError(ApiError):
    """A request the API refuses; carries the HTTP status and a GitHub-shaped JSON body."""

    def __init__(self, status: HTTPStatus, message: str, errors: list[dict] | None = None):
        body: dict[str, Any] = {"message": message, "documentation_url": DOCS}
        if errors is not None:
            body["errors"] = errors
            body["status"] = str(int(status))
        super().__init__(status, body)


def _invalid(field_name: str, message: str, code: str = "invalid") -> GitHostError:
    return GitHostError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "Validation Failed",
        [{"resource": "PullRequest", "field": field_name, "code": code, "message": message}],
    )


def _not_found() -> GitHostError:
    return GitHostError(HTTPStatus.NOT_FOUND, "Not Found")


def _string(payload: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _invalid(name, f"{name} is required and must be a non-empty string", "missing_field")
    return value


def _branch(value: str, name: str) -> str:
    if not _BRANCH.match(value):
        raise _invalid(name, f"{name} {value!r} is not a valid branch name")
    return value


class PullStore(JsonRecordStore):
    """Pull requests per repository in memory, written through to a JSON file when given."""

    key = "pulls"
    what = "pull store"

    def __init__(
        self,
        path: Path | None = None,
        *,
        repositories: Iterable[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._repositories = frozenset(repositories) if repositories is not None else None
        super().__init__(path, clock)

    @classmethod
    def _valid(cls, record: Any) -> bool:
        return isinstance(record, dict) and isinstance(record.get("number"), int)

    def _now(self) -> str:
        return super()._now().replace("+00:00", "Z")

    def check_repository(self, repository: str) -> None:
        if self._repositories is not None and repository not in self._repositories:
            raise _not_found()

    def create(self, repository: str, payload: Any, web_url: str) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise GitHostError(HTTPStatus.BAD_REQUEST, "Problems parsing JSON")
        unknown = sorted(set(payload) - _CREATE_FIELDS)
        if unknown:
            raise _invalid(unknown[0], f"unknown field(s): {', '.join(unknown)}", "unprocessable")
        title = _string(payload, "title", required=True) or ""
        head = _string(payload, "head", required=True) or ""
        base = _branch(_string(payload, "base", required=True) or "", "base")
        body = _string(payload, "body", required=False)
        owner = repository.split("/", 1)[0]
        head_owner, colon, head_ref = head.rpartition(":")
        head_owner = head_owner if colon else owner
        head_ref = _branch(head_ref, "head")
        label = f"{head_owner}:{head_ref}"
        if head_owner == owner and head_ref == base:
            raise _invalid("head", f"No commits between {base} and {head_ref}", "custom")
        with self._lock:
            for pull in self._records:
                if (
                    pull["repository"] == repository
                    and pull["head"]["label"] == label
                    and pull["base"]["ref"] == base
                    and pull["state"] == "open"
                ):
                    raise _invalid("head", f"A pull request already exists for {label}.", "custom")
            number = 1 + max(
                (p["number"] for p in self._records if p["repository"] == repository), default=0
            )
            now = self._now()
            pull = {
                "id": len(self._records) + 1,
                "number": number,
                "repository": repository,
                "state": "open",
                "title": title,
                "body": body,
                "draft": bool(payload.get("draft", False)),
                "head": {"ref": head_ref, "label": label},
                "base": {"ref": base},
                "html_url": f"{web_url}/{repository}/pull/{number}",
                "merged": False,
                "merged_at": None,
                "created_at": now,
                "updated_at": now,
                "closed_at": None,
            }
            self._records.append(pull)
            self._save()
            return self._copy(pull)

    def _find(self, repository: str, number: int) -> dict[str, Any]:
        for pull in self._records:
            if pull["repository"] == repository and pull["number"] == number:
                return pull
        raise _not_found()

    def get(self, repository: str, number: int) -> dict[str, Any]:
        with self._lock:
            return self._copy(self._find(repository, number))

    def query(
        self,
        repository: str | None = None,
        *,
        state: str = "all",
        head: str | None = None,
        base: str | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            return self._copy(
                [
                    p
                    for p in self._records
                    if (repository is None or p["repository"] == repository)
                    and (state == "all" or p["state"] == state)
                    and (head is None or p["head"]["label"] == head)
                    and (base is None or p["base"]["ref"] == base)
                ]
            )

    def update(self, repository: str, number: int, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise GitHostError(HTTPStatus.BAD_REQUEST, "Problems parsing JSON")
        unknown = sorted(set(payload) - _UPDATE_FIELDS)
        if unknown:
            raise _invalid(unknown[0], f"unknown field(s): {', '.join(unknown)}", "unprocessable")
        state = payload.get("state")
        if state is not None and state not in ("open", "closed"):
            raise _invalid("state", "state must be 'open' or 'closed'")
        for name in ("title", "body"):
            if name in payload and not isinstance(payload[name], str | None):
                raise _invalid(name, f"{name} must be a string")
        with self._lock:
            pull = self._find(repository, number)
            if state is not None and state != pull["state"]:
                if pull["merged"]:
                    raise _invalid("state", "a merged pull request cannot change state", "custom")
                if state == "open" and any(
                    p is not pull
                    and p["repository"] == repository
                    and p["state"] == "open"
                    and p["head"]["label"] == pull["head"]["label"]
                    and p["base"]["ref"] == pull["base"]["ref"]
                    for p in self._records
                ):
                    raise _invalid(
                        "state",
                        f"A pull request already exists for {pull['head']['label']}.",
                        "custom",
                    )
                pull["state"] = state
                pull["closed_at"] = self._now() if state == "closed" else None
            for name in ("title", "body"):
                if name in payload:
                    pull[name] = payload[name]
            pull["updated_at"] = self._now()
            self._save()
            return self._copy(pull)

    def merge(self, repository: str, number: int) -> dict[str, Any]:
        """Mark an open pull request merged (what a reviewer's merge button does)."""
        with self._lock:
            pull = self._find(repository, number)
            if pull["state"] != "open":
                raise _invalid("state", "only an open pull request can be merged", "custom")
            now = self._now()
            pull.update(state="closed", merged=True, merged_at=now, closed_at=now, updated_at=now)
            self._save()
            return self._copy(pull)


class _GitHostHandler(JsonApiHandler):
    server: _GitHostHTTPServer
    server_version = "autosec-githost/1"
    logger = log
    log_name = "githost"
    content_type = "application/json; charset=utf-8"
    token_schemes = ("bearer", "token")
    www_authenticate = 'Bearer realm="githost"'
    unauthorised_message = "Bad credentials"
    bad_length_message = "Content-Length is not a number"
    too_large_message = "Request body too large"

    def error(self, status: HTTPStatus, code: str, message: str) -> ApiError:
        return GitHostError(status, message)

    def parse_json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            raise GitHostError(HTTPStatus.BAD_REQUEST, "Problems parsing JSON") from None

    def route(self, method: str, url: SplitResult) -> None:
        parts = [unquote(p) for p in url.path.split("/") if p]
        raw = self.read_body()
        if parts == ["healthz"] and method == "GET":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
            return
        if (
            len(parts) not in (4, 5)
            or parts[0] != "repos"
            or parts[3] != "pulls"
            or not all(_NAME.match(p) for p in parts[1:3])
        ):
            raise _not_found()
        self.authorise()
        store: PullStore = self.server.store
        repository = f"{parts[1]}/{parts[2]}"
        store.check_repository(repository)
        if len(parts) == 4 and method == "GET":
            query = parse_qs(url.query, keep_blank_values=True)
            state = query.get("state", ["open"])[-1]
            if state not in ("open", "closed", "all"):
                raise _invalid("state", "state must be open, closed or all")
            head = query.get("head", [None])[-1]
            if head is not None and ":" not in head:
                head = f"{parts[1]}:{head}"
            base = query.get("base", [None])[-1]
            pulls = store.query(repository, state=state, head=head, base=base)
            self.send_json(HTTPStatus.OK, [self._public(p) for p in pulls])
        elif len(parts) == 4 and method == "POST":
            pull = store.create(repository, self.parse_json(raw), self.server.web_url)
            self.send_json(
                HTTPStatus.CREATED, self._public(pull), {"Location": self._api_url(pull)}
            )
        elif len(parts) == 5 and method in ("GET", "PATCH"):
            if not parts[4].isdigit():
                raise _not_found()
            number = int(parts[4])
            if method == "GET":
                pull = store.get(repository, number)
            else:
                pull = store.update(repository, number, self.parse_json(raw))
            self.send_json(HTTPStatus.OK, self._public(pull))
        else:
            raise _not_found()

    def _api_url(self, pull: dict[str, Any]) -> str:
        return f"{self.server.api_url}/repos/{pull['repository']}/pulls/{pull['number']}"

    def _public(self, pull: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in pull.items() if k != "repository"}
        owner, _, name = pull["repository"].partition("/")
        repo = {"full_name": pull["repository"], "name": name, "owner": {"login": owner}}
        body["head"] = {**pull["head"], "repo": repo}
        body["base"] = {**pull["base"], "repo": repo}
        body["url"] = self._api_url(pull)
        return body

    def do_PATCH(self) -> None:
        self._handle("PATCH")


class _GitHostHTTPServer(ApiHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        store: PullStore,
        token: str | None,
    ) -> None:
        super().__init__(address, handler, store, token)
        host, port = self.server_address[:2]
        self.api_url = f"http://{host}:{port}"
        self.web_url = f"{self.api_url}/web"


class GitHostServer(ApiServer):
    """The Git hosting API in a background thread: ``with GitHostServer() as gh: gh.url``.

    ``repositories`` (``owner/name`` strings) limits which repositories exist; any other
    answers 404 like GitHub. None accepts every repository.
    """

    label = "git host server"
    thread_name = "autosec-demo-githost"
    handler = _GitHostHandler
    server_type = _GitHostHTTPServer

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        *,
        repositories: Iterable[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(host, port, token, store_path)
        self.repositories = list(repositories) if repositories is not None else None
        for repository in self.repositories or ():
            owner, slash, name = repository.partition("/")
            if not (slash and _NAME.match(owner) and _NAME.match(name)):
                raise ValueError(f"GitHostServer repository {repository!r} is not owner/name")
        self._clock = clock

    def _open_store(self) -> PullStore:
        return PullStore(self.store_path, repositories=self.repositories, clock=self._clock)

    def pulls(self, repository: str | None = None) -> list[dict[str, Any]]:
        """Every pull request (of ``repository``, or of all), oldest first (a copy)."""
        return self._store().query(repository)

    def merge(self, repository: str, number: int) -> dict[str, Any]:
        """Merge a pull request, as a reviewer would."""
        return self._store().merge(repository, number)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the Git hosting API in the foreground until SIGTERM or SIGINT."""
    parser = api_argument_parser(
        "autosec.demo.githost",
        "Demo Git hosting (pull request) API.",
        port=8091,
        token_env=TOKEN_ENV,
        store_help="JSON file the pull requests persist to",
        credential_kind="token",
    )
    parser.add_argument(
        "--repository",
        action="append",
        dest="repositories",
        help="owner/name of a repository that exists (repeatable; default: any)",
    )
    args = parser.parse_args(argv)
    server = GitHostServer(
        args.host, args.port, args.token or None, args.store, repositories=args.repositories
    )
    auth = "token required" if args.token else "no authentication"
    return serve_in_foreground(server, "git host API", auth)


if __name__ == "__main__":
    raise SystemExit(main())

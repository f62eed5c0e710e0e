"""Ask for a dependency upgrade with a pull request on a Git hosting API; close it to roll back.

The API is GitHub's REST shape (GitHub Enterprise and ``autosec.demo.githost`` answer the same):

- ``GET {base}/repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=all`` lists the pull
  requests from that branch, open or closed.
- ``POST {base}/repos/{owner}/{repo}/pulls`` with {title, head, base, body} answers 201 with
  {"number", "html_url", "state", ...}; 422 when a pull request from that head already exists.
- ``PATCH {base}/repos/{owner}/{repo}/pulls/{number}`` with {"state": "closed"} closes one.
- ``GET {base}/repos/{owner}/{repo}/pulls/{number}`` answers one; ``pull_state`` reads it as
  open, merged or closed (without a merge), so follow-up can ask for a verification rescan
  once the upgrade is merged.

The head branch is derived from the idempotency key (``autosec/upgrade-<package>-<key[:12]>``),
so the same finding under the same policy always names the same branch. Before creating, the
action looks for a pull request from that branch; after a 422 it looks again. Either way a retry
reports the existing pull request and never opens a second. One found closed without a merge was
declined by someone: it is reported as failed, never reopened.

The action opens the request; it does not write the upgrade. The head branch must exist on the
host (GitHub answers 422 "head invalid" otherwise): the repository's dependency bot or a CI job
that watches ``autosec/upgrade-*`` pushes the version bump to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from packageurl import PackageURL

from autosec.domain.models import Severity
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    ActionRequest,
    ActionResult,
    idempotency_key,
)
from autosec.remediation.actions.http import (
    DEFAULT_TIMEOUT,
    ApiAction,
    ApiEndpoint,
    answer_failure,
    applied,
    connection_base_url,
    connection_extra,
    connection_token,
    http_failure,
    read_json,
    read_timeout,
    send,
)

TITLE_MAX = 256
API = "git host"
DEFAULT_BASE_URL = "https://api.github.com"
BRANCH_PREFIX = "autosec/upgrade-"
API_VERSION = "2022-11-28"
_REPOSITORY = re.compile(r"^(?!-)[A-Za-z0-9-]{1,39}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^(?![-/.])(?!.*(?:\.\.|//|@\{|\.lock$|/$|\.$))[A-Za-z0-9._/-]{1,200}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_~:!-]{0,99}$")
_ADVISORY = re.compile(r"^[A-Z][A-Z0-9]{1,15}-[A-Za-z0-9][A-Za-z0-9-]{0,60}$")


def check_repository(value: Any, what: str = "repository") -> str:
    """``owner/name`` (a ``repo:`` prefix is dropped), or ValueError naming the value."""
    text = value.strip() if isinstance(value, str) else ""
    text = text.removeprefix("repo:")
    if not _REPOSITORY.match(text):
        raise ValueError(f"patch_request action: {what} {value!r} is not an owner/name repository")
    return text


def _check_branch(value: Any, what: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not _BRANCH.match(text):
        raise ValueError(f"patch_request action: {what} {value!r} is not a valid branch name")
    return text


@dataclass(frozen=True)
class GitHostEndpoint(ApiEndpoint):
    """Where the Git hosting API is, its token, and the defaults for assets that name none."""

    what: ClassVar[str] = API
    default_headers: ClassVar[Mapping[str, str]] = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "autosec",
    }

    base_url: str = DEFAULT_BASE_URL
    token: str | None = field(default=None, repr=False)
    default_repository: str | None = None
    base_branch: str = "main"
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default_repository is not None:
            repo = check_repository(self.default_repository, "default_repository")
            object.__setattr__(self, "default_repository", repo)
        object.__setattr__(self, "base_branch", _check_branch(self.base_branch, "base_branch"))

    @classmethod
    def from_connection(cls, connection: Any) -> GitHostEndpoint:
        """host (``api.github.com``, or a URL with a base path), port, schema (a base path such
        as ``api/v3`` for GitHub Enterprise), password = token; extra: ``default_repository``,
        ``base_branch``, ``timeout`` (seconds). The scheme is ``http`` only for type ``http``."""
        extra = connection_extra(connection)
        return cls(
            base_url=connection_base_url(connection) or DEFAULT_BASE_URL,
            token=connection_token(connection),
            default_repository=extra.get("default_repository") or None,
            base_branch=extra.get("base_branch") or "main",
            timeout=read_timeout(extra),
        )


PullStateName = Literal["open", "merged", "closed"]


@dataclass(frozen=True)
class PullState:
    """A pull request as the host last answered: open, merged, or closed without a merge."""

    repository: str
    number: int
    state: PullStateName
    merged_at: str | None
    closed_at: str | None
    html_url: str | None
    http_status: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GitHostEndpointMissing(ValueError):
    """A pull request must be opened but no endpoint (or no repository) was configured."""


# --- plan helpers (pure) --------------------------------------------------------------------------


def _one_line(value: Any, limit: int) -> str:
    text = " ".join(str(value or "").split())
    text = "".join(ch for ch in text if ord(ch) >= 32 and ch != "\x7f")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(value: Any) -> str:
    """Markdown code span: nothing inside is a link, a mention or HTML."""
    text = _one_line(value, 300).replace("`", "'")
    return f"`{text}`" if text else "`-`"


def _version(value: Any, what: str) -> str:
    text = str(value).strip() if isinstance(value, str | int | float) else ""
    if not _VERSION.match(text):
        raise ValueError(f"patch_request action: {what} {value!r} is not a version string")
    return text


def _evidence(finding: Mapping[str, Any]) -> Mapping[str, Any]:
    evidence = finding.get("evidence")
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return {}
    return evidence if isinstance(evidence, Mapping) else {}


def _package(finding: Mapping[str, Any]) -> PackageURL:
    location = finding.get("location")
    if isinstance(location, str):
        try:
            location = json.loads(location)
        except ValueError:
            location = None
    raw = location.get("purl") if isinstance(location, Mapping) else None
    if not raw:
        raise ValueError(
            "patch_request action: the finding has no package URL (location.purl); "
            "only dependency findings can become a pull request"
        )
    try:
        return PackageURL.from_string(str(raw))
    except ValueError as exc:
        raise ValueError(f"patch_request action: package URL {raw!r} is invalid: {exc}") from None


def _package_name(purl: PackageURL) -> str:
    if not purl.namespace:
        return purl.name
    separator = ":" if purl.type == "maven" else "/"
    return f"{purl.namespace}{separator}{purl.name}"


def head_branch(package: str, key: str) -> str:
    """``autosec/upgrade-<package slug>-<key[:12]>``: one branch per finding and policy."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", package.lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip(".-_")[:40].strip(".-_") or "package"
    return f"{BRANCH_PREFIX}{slug}-{key[:12]}"


def _advisories(finding: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for name in ("cve_ids", "ghsa_ids", "advisory_ids"):
        values = finding.get(name) or ()
        if isinstance(values, str):
            values = [values]
        for value in values:
            text = str(value).strip()
            if not _ADVISORY.match(text):
                raise ValueError(
                    f"patch_request action: {name} entry {value!r} is not an advisory id "
                    "(CVE-…, GHSA-…, …)"
                )
            found.append(text)
    return list(dict.fromkeys(found))


def _repository_of(finding: Mapping[str, Any]) -> str | None:
    value = finding.get("asset_repository")
    if value:
        return check_repository(value, "asset_repository")
    tags = finding.get("asset_tags") or ()
    if isinstance(tags, str):
        tags = [tags]
    named = [t for t in tags if isinstance(t, str) and t.startswith("repo:")]
    if len(named) > 1:
        raise ValueError(f"patch_request action: the asset names several repositories {named}")
    return check_repository(named[0], "asset tag") if named else None


def _due(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return _one_line(value, 40) or None


def _body(
    finding: Mapping[str, Any],
    decision: Decision,
    purl: PackageURL,
    current: str | None,
    fixed: str,
    advisories: Iterable[str],
    key: str,
) -> str:
    advisory_list = list(advisories)
    rows = [
        ("Package", _code(_package_name(purl))),
        ("Package URL", _code(purl.to_string())),
        ("Current version", _code(current or "unknown")),
        ("Fixed version", _code(fixed)),
        ("Advisories", ", ".join(_code(a) for a in advisory_list) or "none recorded"),
        ("Asset", _code(finding.get("asset_id"))),
        ("Severity", _code(finding.get("severity"))),
    ]
    due = _due(finding.get("due_date"))
    if due:
        rows.append(("Due", _code(due)))
    lines = [
        f"autosec asks to upgrade {_code(_package_name(purl))} from {_code(current or 'unknown')} "
        f"to {_code(fixed)} to fix a known vulnerability.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"Policy {_code(decision.policy_version or '?')} (sha256 {_code(decision.policy_hash)}), "
        f"rule {_code(decision.rule_id or '(none)')}, mode {_code(decision.mode)}:",
        *(f"- {_code(reason)}" for reason in decision.reasons),
        "",
        f"Finding fingerprint {_code(finding.get('fingerprint'))}; idempotency key {_code(key)}.",
        "Closing this pull request without merging tells autosec the upgrade was declined.",
    ]
    return "\n".join(lines)


# --- the action -----------------------------------------------------------------------------------


class PatchRequestAction(ApiAction[GitHostEndpoint]):
    """Opens one upgrade pull request per vulnerable dependency finding."""

    name = "patch_request"
    endpoint_type = GitHostEndpoint
    endpoint_missing = GitHostEndpointMissing

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        fingerprint = self._checked_fingerprint(
            finding, decision, required=("fingerprint", "asset_id", "severity")
        )
        severity = Severity.parse(finding["severity"])
        purl = _package(finding)
        evidence = _evidence(finding)
        raw_fixed = finding.get("fixed_version") or evidence.get("fixed_version")
        if not raw_fixed:
            raise ValueError(
                f"patch_request action: no fixed version for {purl.to_string()} (neither "
                "fixed_version nor evidence.fixed_version is set); a pull request needs a "
                "target version"
            )
        fixed = _version(raw_fixed, "fixed_version")
        raw_current = purl.version or finding.get("installed_version")
        current = _version(raw_current, "installed version") if raw_current else None
        if current == fixed:
            raise ValueError(
                f"patch_request action: {purl.to_string()} is already at the fixed version {fixed}"
            )
        advisories = _advisories(finding)
        key = idempotency_key(fingerprint, self.name, decision.policy_hash)
        package = _package_name(purl)
        repository = _repository_of(finding) or (
            self.endpoint.default_repository if self.endpoint else None
        )
        base = finding.get("asset_default_branch")
        title = f"autosec: upgrade {_one_line(package, 100)} to {fixed}"
        if advisories:
            title += f" ({', '.join(advisories[:3])}{', …' if len(advisories) > 3 else ''})"
        payload = {
            "repository": repository,
            "title": _one_line(title, TITLE_MAX),
            "head": head_branch(purl.name, key),
            "base": _check_branch(base, "asset_default_branch") if base else None,
            "body": _body(finding, decision, purl, current, fixed, advisories, key),
            "package": {
                "purl": purl.to_string(),
                "name": package,
                "current_version": current,
                "fixed_version": fixed,
                "advisories": advisories,
                "severity": severity.value,
            },
            "autosec_key": key,
        }
        return self._request(key, fingerprint, finding, payload, decision)

    # --- apply / rollback ---------------------------------------------------------------------

    def _target(self, request: ActionRequest) -> tuple[str | None, str]:
        """The repository and base branch: the request's own, else the endpoint's defaults."""
        payload = request.payload
        endpoint = self.endpoint
        repository = payload.get("repository") or (
            endpoint.default_repository if endpoint else None
        )
        base = payload.get("base") or (endpoint.base_branch if endpoint else "main")
        checked = check_repository(repository) if repository else None
        return checked, _check_branch(base, "base branch")

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        self._check_apply_inputs(request, "autosec_key", subject=self.name)
        payload = request.payload
        head = _check_branch(payload.get("head"), "head branch")
        if not head.endswith(f"-{request.idempotency_key[:12]}"):
            raise ValueError("patch_request head branch must end with the idempotency key")
        if request.dry_run:
            repository, base = self._target(request)
            return ActionResult(
                request.idempotency_key,
                "dry_run",
                detail={
                    "would_send": f"POST /repos/{repository or '{default repository}'}/pulls",
                    "body": {
                        "title": payload.get("title"),
                        "head": head,
                        "base": base,
                        "body": payload.get("body"),
                    },
                },
            )
        endpoint = self._endpoint()
        repository, base = self._target(request)
        if repository is None:
            # This asset's data, not the configuration: record it and go on with the others.
            return ActionResult(
                request.idempotency_key,
                "failed",
                detail={
                    "error": f"no repository for asset {request.asset_id!r}: set "
                    "asset_repository (or a repo:owner/name tag) or the connection's "
                    "default_repository",
                    "http_status": None,
                },
            )
        key = request.idempotency_key
        owner = repository.split("/", 1)[0]
        pulls = f"/repos/{repository}/pulls"

        existing = self._find(key, session, endpoint, pulls, owner, head)
        if existing is not None:
            return existing
        body = {"title": payload["title"], "head": head, "base": base, "body": payload["body"]}
        response = send(session, endpoint, "POST", pulls, key, json=body)
        if isinstance(response, ActionResult):
            return response
        if 200 <= response.status_code < 300:
            return _pull_result(key, response, repository, head, created=True)
        if response.status_code == 422:
            # GitHub's answer to a second request from the same head (a race, or a listing
            # that lagged): report the one that exists; any other 422 is a real refusal.
            again = self._find(key, session, endpoint, pulls, owner, head)
            if again is not None and again.detail.get("pull_number") is not None:
                detail = {**again.detail, "http_status": 422}
                return ActionResult(key, again.status, again.external_ref, detail)
        return http_failure(key, response, "POST", pulls, API)

    def _find(
        self,
        key: str,
        session: Any,
        endpoint: GitHostEndpoint,
        pulls: str,
        owner: str,
        head: str,
    ) -> ActionResult | None:
        """The pull request from ``head`` as a result, a failure to list, or None."""
        params = {"head": f"{owner}:{head}", "state": "all", "per_page": "100"}
        response = send(session, endpoint, "GET", pulls, key, params=params)
        if isinstance(response, ActionResult):
            return response
        if response.status_code != 200:
            return http_failure(key, response, "GET", pulls, API)
        listed = read_json(response)
        if not isinstance(listed, list):
            error = f"GET {pulls} did not answer with a list of pull requests"
            return answer_failure(key, response, error)
        found = [
            p
            for p in listed
            if isinstance(p, dict)
            and isinstance(p.get("head"), dict)
            and p["head"].get("ref") == head
            and p.get("number") is not None
        ]
        if not found:
            return None
        # The newest one from this branch says what happened last.
        pull = max(found, key=lambda p: int(p["number"]))
        repository = pulls.removeprefix("/repos/").removesuffix("/pulls")
        merged = bool(pull.get("merged_at") or pull.get("merged"))
        if pull.get("state") == "closed" and not merged:
            return ActionResult(
                key,
                "failed",
                detail={
                    "error": f"pull request #{pull['number']} from {head} was closed without "
                    "a merge; autosec does not reopen a declined upgrade",
                    "http_status": response.status_code,
                    "repository": repository,
                    "pull_number": int(pull["number"]),
                    "state": "closed",
                },
            )
        return _applied(
            key,
            pull,
            repository,
            head,
            merged=merged,
            created=False,
            http_status=response.status_code,
        )

    def rollback(self, result: ActionResult, session: Any) -> ActionResult:
        """Close the pull request ``result`` opened; a dry-run result is rolled back in dry run."""
        if result.status == "dry_run":
            return ActionResult(
                result.idempotency_key,
                "dry_run",
                detail={"would_send": "PATCH /repos/{owner}/{repo}/pulls/{number} state=closed"},
            )
        number = result.detail.get("pull_number")
        repository = result.detail.get("repository")
        if result.status != "applied" or number is None or not repository:
            raise ValueError(
                f"patch_request action: nothing to roll back for result "
                f"{result.idempotency_key} (status {result.status}, pull request "
                f"{repository!r} #{number!r})"
            )
        endpoint = self._endpoint()
        key = result.idempotency_key
        path = f"/repos/{check_repository(repository)}/pulls/{quote(str(int(number)), safe='')}"
        response = send(session, endpoint, "PATCH", path, key, json={"state": "closed"})
        if isinstance(response, ActionResult):
            return response
        if not 200 <= response.status_code < 300:
            return http_failure(key, response, "PATCH", path, API)
        pull = read_json(response)
        pull = pull if isinstance(pull, dict) else {}
        if pull.get("merged_at") or pull.get("merged"):
            return ActionResult(
                key,
                "failed",
                detail={
                    "error": f"pull request #{number} is already merged; revert the upgrade by "
                    "hand",
                    "http_status": response.status_code,
                },
            )
        if pull.get("state") != "closed":
            error = (
                f"PATCH {path} answered {response.status_code} but the pull "
                f"request is {pull.get('state')!r}, not closed"
            )
            return answer_failure(key, response, error)
        return ActionResult(
            key,
            "rolled_back",
            external_ref=result.external_ref,
            detail={
                "repository": repository,
                "pull_number": int(number),
                "state": "closed",
                "http_status": response.status_code,
            },
        )

    # --- follow-up ----------------------------------------------------------------------------

    def pull_state(
        self, result_or_ref: ActionResult | str, session: Any
    ) -> PullState | ActionResult:
        """The pull request's state now (open, merged, closed), or a "failed" result saying why
        it could not be read. ``result_or_ref`` is the applied result or ``owner/name#number``
        (results about a bare reference carry it as their key)."""
        if isinstance(result_or_ref, str):
            key = result_or_ref.strip()
            repository, hash_, number_text = key.rpartition("#")
            if not hash_ or not number_text.isdigit():
                raise ValueError(
                    f"patch_request action: pull request reference {result_or_ref!r} is not "
                    "owner/name#number"
                )
            repository, number = check_repository(repository), int(number_text)
        else:
            key = result_or_ref.idempotency_key
            number = result_or_ref.detail.get("pull_number")
            repository = result_or_ref.detail.get("repository")
            if result_or_ref.status != "applied" or number is None or not repository:
                raise ValueError(
                    f"patch_request action: no pull request to read for result {key} "
                    f"(status {result_or_ref.status}, pull request {repository!r} #{number!r})"
                )
            repository, number = check_repository(repository), int(number)
        path = f"/repos/{repository}/pulls/{number}"
        response = send(session, self._endpoint(), "GET", path, key)
        if isinstance(response, ActionResult):
            return response
        if response.status_code != 200:
            return http_failure(key, response, "GET", path, API)
        pull = read_json(response)
        if not isinstance(pull, dict) or pull.get("state") not in ("open", "closed"):
            return answer_failure(key, response, f"GET {path} answered without a pull state")
        merged = bool(pull.get("merged_at") or pull.get("merged"))
        return PullState(
            repository=repository,
            number=number,
            state="merged" if merged else pull["state"],
            merged_at=pull.get("merged_at"),
            closed_at=pull.get("closed_at"),
            html_url=pull.get("html_url"),
            http_status=response.status_code,
        )


def _pull_result(
    key: str, response: Any, repository: str, head: str, created: bool
) -> ActionResult:
    pull = read_json(response)
    if not isinstance(pull, dict) or pull.get("number") is None:
        error = (
            f"POST /repos/{repository}/pulls answered {response.status_code} "
            "without a pull request number"
        )
        return answer_failure(key, response, error)
    return _applied(
        key, pull, repository, head, merged=False, created=created, http_status=response.status_code
    )


def _applied(
    key: str,
    pull: dict[str, Any],
    repository: str,
    head: str,
    *,
    merged: bool,
    created: bool,
    http_status: int,
) -> ActionResult:
    detail = {
        "repository": repository,
        "pull_number": int(pull["number"]),
        "html_url": pull.get("html_url"),
        "head": head,
        "state": pull.get("state"),
        "merged": merged,
    }
    ref = pull.get("html_url") or f"{repository}#{pull['number']}"
    return applied(key, ref, detail, created=created, http_status=http_status)

"""Pure parser for the http probe's JSON lines: headers, cookies, disclosures, exposed files.

Page rules judge what a URL serves, after following redirects on the same host (a redirect to
another host serves nothing here, so only the redirect is recorded):

- a missing security header: ``Strict-Transport-Security`` (on https only, with a positive
  ``max-age``), ``Content-Security-Policy``, ``X-Content-Type-Options: nosniff``, framing
  protection (``X-Frame-Options`` or CSP ``frame-ancestors``), ``Referrer-Policy``;
- cookies set without ``Secure`` (on https, or with ``SameSite=None``), ``HttpOnly`` or
  ``SameSite``, one observation per flag with the cookie names (never their values);
- a directory listing (``Index of /``, ``Directory listing for /``);
- ``http.redirect`` (info): every ``Location`` the URL answered with.

Origin rules (scheme, host and port) judge the server once: a version in ``Server``,
``X-Powered-By`` or ``X-AspNet(Mvc)-Version``; ``TRACE`` echoing the request; ``/.git/HEAD``
serving a ref; ``/.env`` serving ``KEY=VALUE`` lines.

Every page observation carries the host names of the redirects it followed or was sent to in
``evidence["names_seen"]`` (lower case, sorted), so discovery can read them from any finding.

A URL whose page request failed, or whose origin did not answer a probe (timeout, refused,
unreachable), is a failed target, not a clean one: read with ``require_complete=True`` (as the
engine does), such output raises :class:`HttpIncompleteScan` and the run closes nothing. A
probe the server cut off (connection reset, malformed answer) counts as refused, not failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from autosec.domain.models import Location, Observation, Severity
from autosec.domain.targets import canonical_host
from autosec.engines.base import RuleText
from autosec.engines.http.probe import (
    ENV,
    GIT_HEAD,
    PAGE,
    PROBE_VERSION,
    REDIRECT_STATUSES,
    REFUSAL_ERRORS,
    SITE_PROBES,
    TRACE,
    looks_like_html,
    origin_of,
)

MISSING_HSTS = "http.missing-hsts"
MISSING_CSP = "http.missing-csp"
MISSING_CONTENT_TYPE_OPTIONS = "http.missing-x-content-type-options"
MISSING_FRAME_PROTECTION = "http.missing-frame-protection"
MISSING_REFERRER_POLICY = "http.missing-referrer-policy"
HEADER_RULES = (
    MISSING_HSTS, MISSING_CSP, MISSING_CONTENT_TYPE_OPTIONS, MISSING_FRAME_PROTECTION,
    MISSING_REFERRER_POLICY,
)  # fmt: skip
COOKIE_WITHOUT_SECURE = "http.cookie-without-secure"
COOKIE_WITHOUT_HTTPONLY = "http.cookie-without-httponly"
COOKIE_WITHOUT_SAMESITE = "http.cookie-without-samesite"
COOKIE_RULES = (COOKIE_WITHOUT_SECURE, COOKIE_WITHOUT_HTTPONLY, COOKIE_WITHOUT_SAMESITE)
DIRECTORY_LISTING = "http.directory-listing"
REDIRECT = "http.redirect"
VERSION_DISCLOSED = "http.version-disclosed"
TRACE_ENABLED = "http.trace-enabled"
GIT_EXPOSED = "http.git-exposed"
ENV_EXPOSED = "http.env-exposed"
EXPOSURE_RULES = (DIRECTORY_LISTING, GIT_EXPOSED, ENV_EXPOSED)

# Judged per URL (location.url is the URL) or per origin (location.url is origin + path).
PAGE_RULES = (*HEADER_RULES, *COOKIE_RULES, DIRECTORY_LISTING, REDIRECT)
ORIGIN_RULES = (VERSION_DISCLOSED, TRACE_ENABLED, GIT_EXPOSED, ENV_EXPOSED)
RULE_IDS = (*PAGE_RULES, *ORIGIN_RULES)
NAMES_SEEN_KEY = "names_seen"

VERSION_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version")
ORIGIN_PATHS: Mapping[str, str] = {
    VERSION_DISCLOSED: "/",
    TRACE_ENABLED: "/",
    GIT_EXPOSED: "/.git/HEAD",
    ENV_EXPOSED: "/.env",
}

_VERSION = re.compile(r"\d+\.\d+|/\d+\b")
_LISTING = re.compile(
    r"<title>\s*(index of|directory listing for)\s+/|<h1>\s*(index of|directory listing for)\s+/",
    re.IGNORECASE,
)
_GIT_HEAD = re.compile(r"^(ref: refs/\S+|[0-9a-f]{40}|[0-9a-f]{64})$")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")
_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_VERSION_LINE = re.compile(r"autosec-http-probe (\S+)")


RULE_TEXT: Mapping[str, RuleText] = {
    MISSING_HSTS: RuleText(
        "Missing Strict-Transport-Security header", Severity.MEDIUM, "CWE-319",
        "The https site does not send HSTS (or sends max-age=0), so a browser will still try "
        "plain http first and an attacker on the path can strip TLS from the first request. "
        "Send Strict-Transport-Security: max-age=31536000; includeSubDomains.",
    ),
    MISSING_CSP: RuleText(
        "Missing Content-Security-Policy header", Severity.LOW, "CWE-693",
        "Without a Content-Security-Policy a single injection flaw lets an attacker run any "
        "script in the page. Define a policy (start with default-src 'self').",
    ),
    MISSING_CONTENT_TYPE_OPTIONS: RuleText(
        "Missing X-Content-Type-Options: nosniff", Severity.LOW, "CWE-693",
        "Browsers may guess (sniff) the type of a response and run an upload or a JSON answer "
        "as script or HTML. Send X-Content-Type-Options: nosniff.",
    ),
    MISSING_FRAME_PROTECTION: RuleText(
        "Page can be framed by any site (clickjacking)", Severity.MEDIUM, "CWE-1021",
        "Neither X-Frame-Options nor a CSP frame-ancestors directive restricts who may embed "
        "the page, so another site can overlay it and trick users into clicks. Send "
        "Content-Security-Policy: frame-ancestors 'self' (or X-Frame-Options: DENY).",
    ),
    MISSING_REFERRER_POLICY: RuleText(
        "Missing or unsafe Referrer-Policy header", Severity.LOW, "CWE-200",
        "Without a Referrer-Policy (or with unsafe-url) full URLs, including tokens in query "
        "strings, leak to other sites in the Referer header. Send Referrer-Policy: "
        "strict-origin-when-cross-origin or stricter.",
    ),
    COOKIE_WITHOUT_SECURE: RuleText(
        "Cookie set without the Secure flag", Severity.MEDIUM, "CWE-614",
        "A cookie set by an https site (or with SameSite=None) lacks Secure, so the browser "
        "also sends it over plain http where anyone on the path can read it. Add Secure.",
    ),
    COOKIE_WITHOUT_HTTPONLY: RuleText(
        "Cookie set without the HttpOnly flag", Severity.LOW, "CWE-1004",
        "Scripts in the page can read this cookie, so any cross-site scripting flaw can steal "
        "it. Add HttpOnly unless the page's own scripts must read it.",
    ),
    COOKIE_WITHOUT_SAMESITE: RuleText(
        "Cookie set without a SameSite attribute", Severity.LOW, "CWE-1275",
        "Without SameSite the cookie's cross-site behaviour depends on the browser, and older "
        "ones send it with cross-site requests (CSRF). Set SameSite=Lax or Strict.",
    ),
    DIRECTORY_LISTING: RuleText(
        "Directory listing enabled", Severity.MEDIUM, "CWE-548",
        "The server lists the files of a directory, which reveals backups, configuration and "
        "code that were never meant to be linked. Turn off automatic indexes.",
    ),
    REDIRECT: RuleText(
        "Redirects", Severity.INFO, "",
        "Where this URL redirects to. Host names that no inventory source knows are "
        "candidates for discovery.",
    ),
    VERSION_DISCLOSED: RuleText(
        "Web server discloses its version", Severity.LOW, "CWE-200",
        "Response headers name the server or framework and its exact version, which lets an "
        "attacker pick matching public exploits without probing. Remove the version "
        "(e.g. ServerTokens Prod, expose_php Off) and keep the software patched.",
    ),
    TRACE_ENABLED: RuleText(
        "HTTP TRACE method enabled", Severity.MEDIUM, "CWE-693",
        "The server echoes TRACE requests, headers included, which can expose cookies and "
        "authorization headers to scripts (cross-site tracing). Disable TRACE "
        "(TraceEnable off).",
    ),
    GIT_EXPOSED: RuleText(
        "Git repository exposed (/.git/HEAD)", Severity.HIGH, "CWE-527",
        "The site serves its .git directory: the whole source history, often with "
        "credentials, can be downloaded. Remove .git from the web root and deny /.git/.",
    ),
    ENV_EXPOSED: RuleText(
        "Environment file exposed (/.env)", Severity.CRITICAL, "CWE-538",
        "The site serves a .env file of KEY=VALUE settings, which typically holds database "
        "passwords and API keys. Remove it from the web root, deny dotfiles, and rotate "
        "every secret it contained.",
    ),
}  # fmt: skip


class HttpParseError(ValueError):
    """Probe output that cannot be read; the message names the line and the problem."""


class HttpIncompleteScan(HttpParseError):
    """Readable output in which some URL or origin was not probed to the end.

    ``unscanned`` says which and why; ``observations`` holds what was found elsewhere.
    """

    def __init__(self, unscanned: list[str], observations: list[Observation]) -> None:
        super().__init__("the http probe did not finish every target: " + "; ".join(unscanned))
        self.unscanned = unscanned
        self.observations = observations


def parse_probe_output(
    raw: bytes,
    asset_by_host: Mapping[str, str],
    engine_name: str = "http",
    *,
    require_complete: bool = False,
) -> list[Observation]:
    """Observations for every probed URL whose host belongs to an asset.

    ``asset_by_host`` maps a hostname or IP address to an asset id; URLs on other hosts are
    skipped.
    """
    run = _read(raw)
    index = {canonical_host(str(k)): v for k, v in asset_by_host.items()}
    unscanned: list[str] = []
    found: dict[tuple[str, str, Location], Observation] = {}

    def keep(observations: Iterable[Observation]) -> None:
        for observation in observations:
            key = (observation.asset_id, observation.rule_id, observation.location)
            found.setdefault(key, observation)

    for target in run.targets:
        page = run.pages.get(target, [])
        failed = [r for r in page if r.get("type") == "error"]
        if target not in run.done:
            unscanned.append(f"{target}: the probe did not finish this URL")
        if not page:
            unscanned.append(f"{target}: no answer to GET recorded")
            continue
        if failed:
            unscanned.append(f"{target}: {_failure(failed[0])}")
            continue
        asset_id = index.get(canonical_host(urlsplit(target).hostname or ""))
        if asset_id is not None:
            keep(_page_observations(asset_id, target, page, engine_name))
    for origin in dict.fromkeys(origin_of(target) for target in run.targets):
        probes = run.sites.get(origin, {})
        problems = _site_problems(origin, probes)
        unscanned.extend(problems)
        asset_id = index.get(canonical_host(urlsplit(origin).hostname or ""))
        if asset_id is None:
            continue
        responses = [*run.page_responses_for(origin), *_answered(probes)]
        keep(_origin_observations(asset_id, origin, probes, responses, engine_name))
    observations = list(found.values())
    if require_complete and unscanned:
        raise HttpIncompleteScan(unscanned, observations)
    return observations


def parse_probe_version(output: str) -> str:
    """The version from ``python -m autosec.engines.http.probe --version``."""
    match = _VERSION_LINE.search(output or "")
    if match is None:
        raise HttpParseError(f"no 'autosec-http-probe' line in probe output {output[:120]!r}")
    return match.group(1)


def redirect_names(raw: bytes) -> dict[str, list[str]]:
    """Host names each probed URL redirected to, whether or not it is inventoried (discovery)."""
    run = _read(raw)
    return {
        target: _names_seen(_redirects(page))
        for target, page in run.pages.items()
        if _redirects(page)
    }


# ------------------------------------------------------------------------------------ reading


@dataclass
class _Run:
    targets: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sites: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def page_responses_for(self, origin: str) -> list[dict[str, Any]]:
        return [
            record
            for page in self.pages.values()
            for record in page
            if record.get("type") == "response" and origin_of(record["url"]) == origin
        ]


def _read(raw: bytes) -> _Run:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"http probe output must be bytes, not {type(raw).__name__}")
    text = bytes(raw).decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise HttpParseError("empty http probe output: expected JSON lines")
    run = _Run()
    started = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HttpParseError(
                f"http probe output line {number}, column {exc.colno}: {exc.msg}"
            ) from None
        if not isinstance(record, dict):
            raise HttpParseError(f"http probe output line {number}: not a JSON object")
        kind = record.get("type")
        if kind == "start":
            started = True
            if str(record.get("probe_version")) != PROBE_VERSION:
                raise HttpParseError(
                    f"http probe output line {number}: probe version "
                    f"{record.get('probe_version')!r}, this parser reads {PROBE_VERSION!r}"
                )
            run.targets.extend(_strings(record.get("targets"), number, "targets"))
            continue
        if not started:
            raise HttpParseError(
                f"http probe output line {number}: expected the 'start' line first"
            )
        target = record.get("target")
        if not isinstance(target, str) or target not in run.targets:
            raise HttpParseError(
                f"http probe output line {number}: target {target!r} is not in the start line"
            )
        if kind == "done":
            run.done.add(target)
        elif kind in ("response", "error"):
            _check_record(record, number)
            if record["probe"] == PAGE:
                run.pages.setdefault(target, []).append(record)
            else:
                site = run.sites.setdefault(origin_of(target), {})
                site[record["probe"]] = record
        else:
            raise HttpParseError(f"http probe output line {number}: unknown type {kind!r}")
    if not started:
        raise HttpParseError("http probe output has no 'start' line")
    for page in run.pages.values():
        page.sort(key=lambda r: r.get("hop", 0))
    return run


def _strings(value: Any, number: int, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpParseError(f"http probe output line {number}: {name} is not a list of strings")
    return value


def _check_record(record: Mapping[str, Any], number: int) -> None:
    known = (PAGE, *(name for name, _, _ in SITE_PROBES))
    if record.get("probe") not in known:
        raise HttpParseError(
            f"http probe output line {number}: unknown probe {record.get('probe')!r}"
        )
    if not isinstance(record.get("url"), str):
        raise HttpParseError(f"http probe output line {number}: no url")
    if record["type"] == "response":
        if not isinstance(record.get("status"), int):
            raise HttpParseError(f"http probe output line {number}: status is not a number")
        headers = record.get("headers")
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)
            for h in headers
        ):
            raise HttpParseError(
                f"http probe output line {number}: headers are not [name, value] pairs"
            )
        if not isinstance(record.get("body", ""), str):
            raise HttpParseError(f"http probe output line {number}: body is not text")


def _failure(record: Mapping[str, Any]) -> str:
    return (
        f"{record.get('method', 'GET')} {record.get('url')} failed "
        f"({record.get('error', 'error')}: {record.get('message', 'no message')})"
    )


def _site_problems(origin: str, probes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems = []
    for name, method, path in SITE_PROBES:
        record = probes.get(name)
        if record is None:
            problems.append(f"{origin}: no answer to {method} {path} recorded")
        elif record.get("type") == "error" and record.get("error") not in REFUSAL_ERRORS:
            problems.append(f"{origin}: {_failure(record)}")
    return problems


def _answered(probes: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in probes.values() if r.get("type") == "response"]


def _headers(record: Mapping[str, Any]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in record.get("headers") or ():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0].strip() if values else None


# ------------------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class _Emitter:
    """Builds observations at one location, each with shared evidence."""

    asset_id: str
    engine_name: str
    location: Location
    common: Mapping[str, Any]

    def __call__(self, rule_id: str, title: str | None = None, **evidence: Any) -> Observation:
        text = RULE_TEXT[rule_id]
        return Observation(
            asset_id=self.asset_id,
            engine=self.engine_name,
            rule_id=rule_id,
            title=f"{title or text.title}: {self.location.url}",
            severity=text.severity,
            location=self.location,
            description=text.description,
            cwe=text.cwe or None,
            evidence={**self.common, **evidence},
        )


def _location(url: str) -> Location:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Location(host=canonical_host(parts.hostname or ""), port=port, protocol="tcp", url=url)


def _redirects(page: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    hops = []
    for record in page:
        location = _first(_headers(record), "location")
        if record.get("type") == "response" and record["status"] in REDIRECT_STATUSES and location:
            hops.append(
                {
                    "url": record["url"],
                    "status": record["status"],
                    "location": urljoin(record["url"], location),
                }
            )
    return hops


def _names_seen(redirects: Sequence[Mapping[str, Any]]) -> list[str]:
    names = {
        canonical_host(urlsplit(hop["location"]).hostname or "")
        for hop in redirects
        if urlsplit(hop["location"]).hostname
    }
    return sorted(names)


def _page_observations(
    asset_id: str, target: str, page: Sequence[Mapping[str, Any]], engine_name: str
) -> list[Observation]:
    final = page[-1]
    redirects = _redirects(page)
    emit = _Emitter(
        asset_id,
        engine_name,
        _location(target),
        {
            "url": target,
            "final_url": final["url"],
            "status": final["status"],
            NAMES_SEEN_KEY: _names_seen(redirects),
        },
    )
    found: list[Observation] = []
    if redirects:
        last = redirects[-1]["location"]
        found.append(emit(REDIRECT, f"Redirects to {last}", redirects=redirects))
    found.extend(_cookie_observations(emit, page))
    if final["status"] in REDIRECT_STATUSES:
        return found  # the URL serves nothing on this host: its headers say nothing
    headers = _headers(final)
    found.extend(_header_observations(emit, headers, urlsplit(final["url"]).scheme == "https"))
    if final["status"] == 200 and _LISTING.search(final.get("body") or ""):
        found.append(emit(DIRECTORY_LISTING, body_start=(final.get("body") or "")[:300]))
    return found


def _header_observations(
    emit: _Emitter, headers: Mapping[str, Sequence[str]], is_https: bool
) -> list[Observation]:
    found = []
    csp = " ".join(headers.get("content-security-policy", ())).strip()
    if is_https:
        hsts = _first(headers, "strict-transport-security")
        match = _MAX_AGE.search(hsts or "")
        if not match or int(match.group(1)) <= 0:
            found.append(emit(MISSING_HSTS, header_value=hsts))
    if not csp:
        report_only = _first(headers, "content-security-policy-report-only")
        found.append(emit(MISSING_CSP, report_only_policy=report_only))
    content_type_options = _first(headers, "x-content-type-options")
    if (content_type_options or "").lower() != "nosniff":
        found.append(emit(MISSING_CONTENT_TYPE_OPTIONS, header_value=content_type_options))
    frame_options = (_first(headers, "x-frame-options") or "").lower()
    if frame_options not in ("deny", "sameorigin") and "frame-ancestors" not in csp.lower():
        found.append(emit(MISSING_FRAME_PROTECTION, header_value=frame_options or None))
    referrer = _first(headers, "referrer-policy")
    policies = [p.strip().lower() for p in (referrer or "").split(",") if p.strip()]
    if not policies or policies[-1] == "unsafe-url":
        found.append(emit(MISSING_REFERRER_POLICY, header_value=referrer))
    return found


@dataclass(frozen=True)
class Cookie:
    """What a ``Set-Cookie`` header says about one cookie (its value is never kept)."""

    name: str
    secure: bool
    http_only: bool
    same_site: str | None


def parse_set_cookie(value: str) -> Cookie:
    first, _, attributes = value.partition(";")
    flags: dict[str, str] = {}
    for attribute in attributes.split(";"):
        key, _, setting = attribute.partition("=")
        if key.strip():
            flags[key.strip().lower()] = setting.strip()
    return Cookie(
        name=first.partition("=")[0].strip(),
        secure="secure" in flags,
        http_only="httponly" in flags,
        same_site=flags.get("samesite") or None,
    )


def _cookie_observations(emit: _Emitter, page: Sequence[Mapping[str, Any]]) -> list[Observation]:
    missing: dict[str, list[str]] = {rule: [] for rule in COOKIE_RULES}
    for record in page:
        is_https = urlsplit(record["url"]).scheme == "https"
        for header in _headers(record).get("set-cookie", ()):
            cookie = parse_set_cookie(header)
            same_site_none = (cookie.same_site or "").lower() == "none"
            if not cookie.secure and (is_https or same_site_none):
                missing[COOKIE_WITHOUT_SECURE].append(cookie.name)
            if not cookie.http_only:
                missing[COOKIE_WITHOUT_HTTPONLY].append(cookie.name)
            if cookie.same_site is None:
                missing[COOKIE_WITHOUT_SAMESITE].append(cookie.name)
    return [emit(rule, cookies=sorted(set(names))) for rule, names in missing.items() if names]


# ----------------------------------------------------------------------------------- origins


def _origin_observations(
    asset_id: str,
    origin: str,
    probes: Mapping[str, Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    engine_name: str,
) -> list[Observation]:
    def emit(rule_id: str, **evidence: Any) -> Observation:
        location = _location(origin + ORIGIN_PATHS[rule_id])
        return _Emitter(asset_id, engine_name, location, {"origin": origin})(rule_id, **evidence)

    found = []
    disclosed = _disclosed_versions(responses)
    if disclosed:
        shown = ", ".join(f"{name}: {value}" for name, value in disclosed.items())
        found.append(emit(VERSION_DISCLOSED, headers=disclosed, summary=shown))
    trace = probes.get(TRACE)
    if trace and trace.get("type") == "response" and _echoes_trace(trace):
        found.append(emit(TRACE_ENABLED, status=trace["status"]))
    git = probes.get(GIT_HEAD)
    if git and git.get("type") == "response" and git["status"] == 200:
        body = (git.get("body") or "").strip()
        if _GIT_HEAD.match(body):
            found.append(emit(GIT_EXPOSED, head=body[:200]))
    env = probes.get(ENV)
    if env and env.get("type") == "response" and env["status"] == 200:
        names = env_variable_names(env.get("body") or "")
        if names:
            found.append(emit(ENV_EXPOSED, variable_names=names, masked=True))
    return found


def _disclosed_versions(responses: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    disclosed: dict[str, str] = {}
    for record in responses:
        headers = _headers(record)
        for name in VERSION_HEADERS:
            value = _first(headers, name)
            if value and _VERSION.search(value) and name not in disclosed:
                disclosed[name] = value[:200]
    return disclosed


def _echoes_trace(record: Mapping[str, Any]) -> bool:
    if record["status"] != 200:
        return False
    content_type = (_first(_headers(record), "content-type") or "").lower()
    body = (record.get("body") or "").lstrip()
    return content_type.startswith("message/http") or body.upper().startswith("TRACE ")


def env_variable_names(body: str) -> list[str]:
    """Names assigned in a dotenv-style body, when most of its lines are assignments.

    An HTML page (an application's catch-all route) or prose is not a ``.env`` file.
    """
    if looks_like_html(body):
        return []
    lines = [
        line.strip()
        for line in body.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    names = [m.group(1) for line in lines if (m := _ENV_LINE.match(line))]
    if not names or len(names) * 2 < len(lines):
        return []
    return list(dict.fromkeys(names))

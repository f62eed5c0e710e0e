"""The http probe's parser, on recorded probe runs (see fixtures/README.md) and edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.http import parser
from autosec.engines.http.parser import (
    COOKIE_WITHOUT_HTTPONLY,
    COOKIE_WITHOUT_SAMESITE,
    COOKIE_WITHOUT_SECURE,
    DIRECTORY_LISTING,
    ENV_EXPOSED,
    GIT_EXPOSED,
    MISSING_CONTENT_TYPE_OPTIONS,
    MISSING_CSP,
    MISSING_FRAME_PROTECTION,
    MISSING_HSTS,
    MISSING_REFERRER_POLICY,
    REDIRECT,
    TRACE_ENABLED,
    VERSION_DISCLOSED,
    HttpIncompleteScan,
    HttpParseError,
    env_variable_names,
    parse_probe_output,
    parse_probe_version,
    parse_set_cookie,
    redirect_names,
)
from autosec.engines.http.probe import mask_env_body, mask_set_cookie

FIXTURES = Path(__file__).parent / "fixtures"
HOSTS = {"127.0.0.1": "host:127.0.0.1"}
WEAK_PAGE_RULES = {
    MISSING_CSP, MISSING_CONTENT_TYPE_OPTIONS, MISSING_FRAME_PROTECTION, MISSING_REFERRER_POLICY,
    COOKIE_WITHOUT_HTTPONLY, COOKIE_WITHOUT_SAMESITE, DIRECTORY_LISTING,
}  # fmt: skip
WEAK_ORIGIN_RULES = {VERSION_DISCLOSED, TRACE_ENABLED, GIT_EXPOSED, ENV_EXPOSED}


def raw(name: str) -> bytes:
    return (FIXTURES / f"http_probe_{name}.jsonl").read_bytes()


def at(name: str, url_suffix: str) -> dict[str, object]:
    """rule id -> observation, for the observations whose URL ends with ``url_suffix``."""
    found = {}
    for observation in parse_probe_output(raw(name), HOSTS, require_complete=True):
        if observation.location.url.endswith(url_suffix):
            assert observation.rule_id not in found, observation.rule_id
            found[observation.rule_id] = observation
    return found


def test_the_weak_site_over_http_has_every_page_and_origin_weakness() -> None:
    observations = parse_probe_output(raw("weak_http"), HOSTS, require_complete=True)
    rules = {o.rule_id for o in observations}
    assert rules == WEAK_PAGE_RULES | WEAK_ORIGIN_RULES
    # plain http: no HSTS and no Secure-flag finding, both only mean something over https
    assert MISSING_HSTS not in rules and COOKIE_WITHOUT_SECURE not in rules
    assert {o.asset_id for o in observations} == {"host:127.0.0.1"}
    assert {o.engine for o in observations} == {"http"}


def test_page_findings_sit_at_the_url_and_origin_findings_at_the_origin() -> None:
    page = at("weak_http", ":37453/")
    listing = page[DIRECTORY_LISTING]
    assert listing.location == Location(
        host="127.0.0.1", port=37453, protocol="tcp", url="http://127.0.0.1:37453/"
    )
    assert listing.severity is Severity.MEDIUM and listing.cwe == "CWE-548"
    assert page[COOKIE_WITHOUT_HTTPONLY].evidence["cookies"] == ["PHPSESSID"]
    version = page[VERSION_DISCLOSED]
    assert version.evidence["headers"] == {
        "server": "Apache/2.4.49 (Unix)",
        "x-powered-by": "PHP/7.4.3",
    }
    git = at("weak_http", "/.git/HEAD")[GIT_EXPOSED]
    assert git.evidence["head"] == "ref: refs/heads/main"
    assert git.location.url == "http://127.0.0.1:37453/.git/HEAD"
    assert git.severity is Severity.HIGH


def test_an_exposed_env_file_is_reported_by_variable_names_only() -> None:
    env = at("weak_http", "/.env")[ENV_EXPOSED]
    assert env.severity is Severity.CRITICAL
    assert env.evidence["variable_names"] == ["DB_PASSWORD", "API_KEY", "DEBUG"]
    text = json.dumps([o.evidence for o in parse_probe_output(raw("weak_http"), HOSTS)])
    assert "hunter2" not in text and "sk_live" not in text


def test_the_weak_site_over_https_adds_hsts_and_the_secure_flag() -> None:
    page = at("weak_https", ":43515/")
    assert set(page) == WEAK_PAGE_RULES | WEAK_ORIGIN_RULES - {GIT_EXPOSED, ENV_EXPOSED} | {
        MISSING_HSTS,
        COOKIE_WITHOUT_SECURE,
    }
    assert page[MISSING_HSTS].evidence["header_value"] is None
    assert page[COOKIE_WITHOUT_SECURE].evidence["cookies"] == ["PHPSESSID"]


def test_a_same_host_redirect_is_followed_and_judged_at_the_landing_page() -> None:
    old = at("weak_https", "/old")
    assert old[REDIRECT].severity is Severity.INFO
    assert old[REDIRECT].evidence["redirects"] == [
        {
            "url": "https://127.0.0.1:43515/old",
            "status": 301,
            "location": "https://127.0.0.1:43515/",
        }
    ]
    assert old[DIRECTORY_LISTING].evidence["final_url"] == "https://127.0.0.1:43515/"
    assert old[MISSING_CSP].evidence["names_seen"] == ["127.0.0.1"]


def test_a_redirect_to_another_host_is_recorded_for_discovery_and_judged_no_further() -> None:
    away = at("weak_https", "/away")
    assert set(away) == {REDIRECT}
    assert away[REDIRECT].evidence["names_seen"] == ["localhost"]
    assert away[REDIRECT].evidence["redirects"][0]["location"] == "http://localhost:43515/landing"
    assert redirect_names(raw("weak_https")) == {
        "https://127.0.0.1:43515/old": ["127.0.0.1"],
        "https://127.0.0.1:43515/away": ["localhost"],
        "https://127.0.0.1:43515/loop": ["127.0.0.1"],
    }


def test_a_redirect_loop_ends() -> None:
    loop = at("weak_https", "/loop")
    assert set(loop) == {REDIRECT}
    assert len(loop[REDIRECT].evidence["redirects"]) == 1


def test_the_hardened_site_has_nothing_to_report() -> None:
    assert parse_probe_output(raw("hardened_https"), HOSTS, require_complete=True) == []


def test_a_reset_on_trace_is_a_refusal_and_big_bodies_are_not_files() -> None:
    found = parse_probe_output(raw("huge_reset"), HOSTS, require_complete=True)
    rules = {o.rule_id for o in found}
    assert TRACE_ENABLED not in rules
    assert GIT_EXPOSED not in rules and ENV_EXPOSED not in rules  # 200, but "AAAA..."
    assert VERSION_DISCLOSED in rules  # Python's BaseHTTP/0.6 Python/3.11.7


@pytest.mark.parametrize(("fixture", "reason"), [
    ("slow_timeout", "timeout: DeadlineExceeded"),
    ("refused", "refused: ConnectionRefusedError"),
])  # fmt: skip
def test_an_unanswered_target_fails_the_run(fixture: str, reason: str) -> None:
    with pytest.raises(HttpIncompleteScan) as caught:
        parse_probe_output(raw(fixture), HOSTS, require_complete=True)
    first, *rest = caught.value.unscanned
    assert reason in first and first.startswith("http://127.0.0.1:")
    assert rest and all("skipped" in line for line in rest)
    assert caught.value.observations == []  # the hardened site in "refused" is clean
    assert parse_probe_output(raw(fixture), HOSTS) == []


def test_urls_of_unknown_hosts_are_skipped() -> None:
    assert parse_probe_output(raw("weak_http"), {"10.0.0.5": "other"}) == []


# ----------------------------------------------------------------- hand-made edge cases


def lines(*records: dict) -> bytes:
    targets = sorted({r["target"] for r in records})
    start = {"type": "start", "probe_version": "1", "targets": targets}
    return "\n".join(json.dumps(r) for r in (start, *records)).encode() + b"\n"


def response(
    url: str, probe: str = "page", status: int = 200, headers=(), body="", target=None, hop=0
) -> dict:
    return {
        "type": "response", "target": target or url, "probe": probe, "hop": hop, "method": "GET",
        "url": url, "status": status, "headers": [list(h) for h in headers], "body": body,
    }  # fmt: skip


def site(target: str, origin: str, *, trace=None, git=None, env=None) -> list[dict]:
    return [
        trace or response(origin + "/", "trace", 405, target=target),
        git or response(origin + "/.git/HEAD", "git_head", 404, target=target),
        env or response(origin + "/.env", "env", 404, target=target),
        {"type": "done", "target": target},
    ]


GOOD_HEADERS = (
    ("Strict-Transport-Security", "max-age=63072000"),
    ("Content-Security-Policy", "default-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Referrer-Policy", "no-referrer"),
)


def rules_for(headers, url="https://app.example.com/") -> set[str]:
    data = lines(response(url, headers=headers), *site(url, url.rstrip("/")))
    observations = parse_probe_output(data, {urlsplit(url).hostname: "a"})
    assert {o.asset_id for o in observations} <= {"a"}
    return {o.rule_id for o in observations}


def test_good_headers_pass() -> None:
    assert rules_for(GOOD_HEADERS) == set()


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (("Strict-Transport-Security", "max-age=0"), MISSING_HSTS),
        (("Strict-Transport-Security", "includeSubDomains"), MISSING_HSTS),
        (("X-Content-Type-Options", "sniff"), MISSING_CONTENT_TYPE_OPTIONS),
        (("X-Frame-Options", "ALLOW-FROM https://x.example"), MISSING_FRAME_PROTECTION),
        (("Referrer-Policy", "no-referrer, unsafe-url"), MISSING_REFERRER_POLICY),
        (("Content-Security-Policy", ""), MISSING_CSP),
    ],
)
def test_weak_header_values_count_as_missing(change: tuple[str, str], rule: str) -> None:
    headers = [h for h in GOOD_HEADERS if h[0] != change[0]] + [change]
    assert rules_for(headers) == {rule}


def test_frame_ancestors_in_csp_is_framing_protection() -> None:
    headers = [h for h in GOOD_HEADERS if h[0] != "X-Frame-Options"]
    assert rules_for(headers) == {MISSING_FRAME_PROTECTION}
    headers[1] = ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
    assert rules_for(headers) == set()


def test_a_report_only_policy_is_not_a_policy() -> None:
    headers = [h for h in GOOD_HEADERS if h[0] != "Content-Security-Policy"]
    headers.append(("Content-Security-Policy-Report-Only", "default-src 'self'"))
    assert rules_for(headers) == {MISSING_CSP}


def test_header_names_are_case_insensitive() -> None:
    assert rules_for([(name.upper(), value) for name, value in GOOD_HEADERS]) == set()


@pytest.mark.parametrize(
    ("cookie", "url", "expected"),
    [
        ("sid=<masked>; Secure; HttpOnly; SameSite=Strict", "https://a.example.com/", set()),
        ("sid=<masked>; secure; httponly; samesite=lax", "https://a.example.com/", set()),
        ("sid=<masked>; HttpOnly; SameSite=Lax", "https://a.example.com/",
         {COOKIE_WITHOUT_SECURE}),
        ("sid=<masked>; HttpOnly; SameSite=Lax", "http://a.example.com/", set()),
        ("sid=<masked>; HttpOnly; SameSite=None", "http://a.example.com/",
         {COOKIE_WITHOUT_SECURE}),
        ("sid=<masked>; Secure; SameSite=Lax", "https://a.example.com/",
         {COOKIE_WITHOUT_HTTPONLY}),
        ("sid=<masked>; Secure; HttpOnly", "https://a.example.com/", {COOKIE_WITHOUT_SAMESITE}),
    ],
)  # fmt: skip
def test_cookie_flags(cookie: str, url: str, expected: set[str]) -> None:
    headers = [*GOOD_HEADERS, ("Set-Cookie", cookie)]
    if url.startswith("http:"):
        headers = [h for h in headers if h[0] != "Strict-Transport-Security"]
    assert rules_for(headers, url) == expected


def test_cookies_set_on_a_redirect_count() -> None:
    url = "http://a.example.com/"
    chain = [
        response(url, status=301, headers=[("Location", "https://a.example.com/"),
                                            ("Set-Cookie", "tracker=<masked>")]),
        response("https://a.example.com/", headers=GOOD_HEADERS, target=url, hop=1),
    ]  # fmt: skip
    data = lines(*chain, *site(url, "http://a.example.com"))
    found = {o.rule_id: o for o in parse_probe_output(data, {"a.example.com": "a"})}
    assert set(found) == {REDIRECT, COOKIE_WITHOUT_HTTPONLY, COOKIE_WITHOUT_SAMESITE}
    assert found[COOKIE_WITHOUT_HTTPONLY].evidence["cookies"] == ["tracker"]
    assert found[REDIRECT].evidence["names_seen"] == ["a.example.com"]


def test_parse_set_cookie_never_keeps_the_value() -> None:
    cookie = parse_set_cookie("session=abc=def; Path=/; SameSite=Lax; Secure")
    assert cookie == parser.Cookie("session", secure=True, http_only=False, same_site="Lax")
    assert mask_set_cookie("session=abc=def; Path=/; Secure") == "session=<masked>; Path=/; Secure"
    assert mask_set_cookie("flag") == "<masked>"


@pytest.mark.parametrize(
    ("server", "disclosed"),
    [
        ("nginx", False),
        ("nginx/1.18.0", True),
        ("Apache", False),
        ("Apache/2", True),
        ("Microsoft-IIS/10.0", True),
        ("cloudflare", False),
    ],
)
def test_version_disclosure(server: str, disclosed: bool) -> None:
    rules = rules_for([*GOOD_HEADERS, ("Server", server)])
    assert (VERSION_DISCLOSED in rules) is disclosed


def test_trace_needs_an_echo() -> None:
    url, origin = "https://a.example.com/", "https://a.example.com"

    def trace_rules(trace: dict) -> set[str]:
        data = lines(response(url, headers=GOOD_HEADERS), *site(url, origin, trace=trace))
        return {o.rule_id for o in parse_probe_output(data, {"a.example.com": "a"})}

    echo = "TRACE / HTTP/1.1\r\nHost: a.example.com\r\n"
    assert trace_rules(response(url, "trace", 200, body=echo)) == {TRACE_ENABLED}
    assert trace_rules(response(url, "trace", 200, [("Content-Type", "message/http")], "")) == {
        TRACE_ENABLED
    }
    assert trace_rules(response(url, "trace", 200, body="<html>home</html>")) == set()
    assert trace_rules(response(url, "trace", 405, body=echo)) == set()


@pytest.mark.parametrize(
    ("body", "exposed"),
    [
        ("ref: refs/heads/main\n", True),
        ("0123456789abcdef0123456789abcdef01234567\n", True),
        ("<html>ref: refs/heads/main</html>", False),
        ("ref: refs/heads/main\nmore text", False),
        ("", False),
    ],
)
def test_git_head_must_look_like_a_ref(body: str, exposed: bool) -> None:
    url, origin = "https://a.example.com/", "https://a.example.com"
    git = response(origin + "/.git/HEAD", "git_head", 200, body=body, target=url)
    data = lines(response(url, headers=GOOD_HEADERS), *site(url, origin, git=git))
    rules = {o.rule_id for o in parse_probe_output(data, {"a.example.com": "a"})}
    assert (GIT_EXPOSED in rules) is exposed


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("DB_HOST=<masked>\nexport SECRET_KEY=<masked>\n", ["DB_HOST", "SECRET_KEY"]),
        ("# comment\n\nAPP_ENV=<masked>\n", ["APP_ENV"]),
        ("<!doctype html><html>A=1</html>", []),
        ("Hello world\nthis is text\nA=1\n", []),
        ("", []),
    ],
)
def test_env_file_detection(body: str, names: list[str]) -> None:
    assert env_variable_names(body) == names


def test_the_probe_masks_env_values_but_keeps_names_and_html() -> None:
    body = "# db\nDB_PASSWORD=hunter2\nexport TOKEN='x y'\n-----BEGIN KEY-----\n"
    assert mask_env_body(body) == "# db\nDB_PASSWORD=<masked>\nexport TOKEN=<masked>\n<masked>"
    page = "<!doctype html><html><body>hi</body></html>"
    assert mask_env_body(page) == page


def test_an_unfinished_target_fails_the_run() -> None:
    url = "https://a.example.com/"
    data = lines(response(url, headers=GOOD_HEADERS), *site(url, "https://a.example.com")[:-1])
    with pytest.raises(HttpIncompleteScan, match="did not finish this URL"):
        parse_probe_output(data, {"a.example.com": "a"}, require_complete=True)


def test_a_missing_origin_probe_fails_the_run() -> None:
    url = "https://a.example.com/"
    records = site(url, "https://a.example.com")
    data = lines(response(url, headers=GOOD_HEADERS), records[0], records[2], records[3])
    with pytest.raises(HttpIncompleteScan, match=r"no answer to GET /\.git/HEAD"):
        parse_probe_output(data, {"a.example.com": "a"}, require_complete=True)


def test_an_origin_without_its_probes_fails_the_run() -> None:
    url = "https://a.example.com/"
    data = lines(response(url, headers=GOOD_HEADERS), {"type": "done", "target": url})
    with pytest.raises(HttpIncompleteScan) as caught:
        parse_probe_output(data, {"a.example.com": "a"}, require_complete=True)
    assert caught.value.unscanned == [
        "https://a.example.com: no answer to TRACE / recorded",
        "https://a.example.com: no answer to GET /.git/HEAD recorded",
        "https://a.example.com: no answer to GET /.env recorded",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty http probe output"),
        (b"not json\n", "line 1, column 1: Expecting value"),
        (b"[1, 2]\n", "line 1: not a JSON object"),
        (b'{"type": "done", "target": "x"}\n', "line 1: expected the 'start' line first"),
        (b'{"type": "start", "probe_version": "9", "targets": []}\n', "probe version '9'"),
        (b'{"type": "start", "probe_version": "1", "targets": "x"}\n', "not a list of strings"),
        (
            b'{"type": "start", "probe_version": "1", "targets": []}\n'
            b'{"type": "done", "target": "http://x/"}\n',
            "line 2: target 'http://x/' is not in the start line",
        ),
        (
            b'{"type": "start", "probe_version": "1", "targets": ["http://x/"]}\n'
            b'{"type": "response", "target": "http://x/", "probe": "page", "url": "http://x/",'
            b' "status": "200", "headers": []}\n',
            "line 2: status is not a number",
        ),
        (
            b'{"type": "start", "probe_version": "1", "targets": ["http://x/"]}\n'
            b'{"type": "response", "target": "http://x/", "probe": "page", "url": "http://x/",'
            b' "status": 200, "headers": {"Server": "x"}}\n',
            r"line 2: headers are not \[name, value\] pairs",
        ),
        (
            b'{"type": "start", "probe_version": "1", "targets": ["http://x/"]}\n'
            b'{"type": "response", "target": "http://x/", "probe": "rm", "url": "http://x/"}\n',
            "line 2: unknown probe 'rm'",
        ),
        (
            b'{"type": "start", "probe_version": "1", "targets": ["http://x/"]}\n'
            b'{"type": "later", "target": "http://x/"}\n',
            "line 2: unknown type 'later'",
        ),
    ],
)
def test_unreadable_output_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(HttpParseError, match=message):
        parse_probe_output(data, HOSTS)


def test_an_empty_run_is_empty() -> None:
    data = b'{"type": "start", "probe_version": "1", "targets": []}\n'
    assert parse_probe_output(data, HOSTS, require_complete=True) == []


def test_version() -> None:
    assert parse_probe_version("autosec-http-probe 1\n") == "1"
    with pytest.raises(HttpParseError, match="no 'autosec-http-probe' line"):
        parse_probe_version("No module named autosec")


def test_every_rule_has_its_text_and_a_kind_of_location() -> None:
    assert set(parser.RULE_TEXT) == set(parser.RULE_IDS)
    assert set(parser.PAGE_RULES).isdisjoint(parser.ORIGIN_RULES)
    assert set(parser.ORIGIN_PATHS) == set(parser.ORIGIN_RULES)

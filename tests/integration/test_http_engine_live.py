"""The http engine through the real runner: its probe subprocess against sites on loopback.

A weak site (every weakness the engine looks for, over http and over https), a hardened one
(none of them), a site that trickles bytes (the hard timeout), one with a 16 MiB body (the
body cap) and a closed port. Redirects: same host (followed), another name (recorded, never
requested), a loop (ends).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
)
from autosec.domain.targets import validate_target
from autosec.engines.base import ScanScope
from autosec.engines.http import parser
from autosec.engines.http.engine import HttpEngine
from autosec.engines.http.parser import HttpIncompleteScan
from autosec.engines.runner import Runner, RunResult
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.scan import Batch, run_batch
from autosec.store import scans
from autosec.triage.history import OpenFinding, findings_to_close
from support.store import sync_inventory
from support.tls_servers import issue, server_context
from support.web_servers import (
    ENV_BODY,
    SESSION_VALUE,
    HardenedSite,
    HugeSite,
    SlowSite,
    WeakSite,
    free_port,
    serving,
)

pytestmark = pytest.mark.integration

ENGINE = HttpEngine()
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
HOSTS = {"127.0.0.1": "host:127.0.0.1"}
PAGE_WEAKNESSES = {
    parser.MISSING_CSP, parser.MISSING_CONTENT_TYPE_OPTIONS, parser.MISSING_FRAME_PROTECTION,
    parser.MISSING_REFERRER_POLICY, parser.COOKIE_WITHOUT_HTTPONLY,
    parser.COOKIE_WITHOUT_SAMESITE, parser.DIRECTORY_LISTING,
}  # fmt: skip
HTTPS_ONLY = {parser.MISSING_HSTS, parser.COOKIE_WITHOUT_SECURE}
ORIGIN_WEAKNESSES = {
    parser.VERSION_DISCLOSED, parser.TRACE_ENABLED, parser.GIT_EXPOSED, parser.ENV_EXPOSED,
}  # fmt: skip


def probe(*urls: str, **options: int) -> RunResult:
    """One engine run through the real runner (argv only, timeout, clean environment)."""
    argv = ENGINE.command([validate_target(url) for url in urls], options)
    return Runner()(argv, timeout=120)


def rules(observations: list[Observation], url: str) -> set[str]:
    return {o.rule_id for o in observations if o.location.url == url}


@pytest.fixture(scope="module")
def tls_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    certificate = issue("localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    return certificate.write_chain(tmp_path_factory.mktemp("web-tls"), "site")


@dataclass
class Estate:
    weak_https: WeakSite
    weak_http: WeakSite
    hardened: HardenedSite
    result: RunResult
    observations: list[Observation]


@pytest.fixture(scope="module")
def estate(tls_chain: Path) -> Iterator[Estate]:
    """One probe run over every site, as a scan batch would run it."""
    with contextlib.ExitStack() as stack:
        weak_https = stack.enter_context(serving(WeakSite(server_context(tls_chain))))
        weak_http = stack.enter_context(serving(WeakSite()))
        hardened = stack.enter_context(serving(HardenedSite(server_context(tls_chain))))
        result = probe(
            weak_https.base + "/",
            weak_https.base + "/old",
            weak_https.base + "/away",
            weak_https.base + "/loop",
            weak_http.base + "/",
            hardened.base + "/",
        )
        assert result.ok, result.stderr.decode(errors="replace")[-2000:]
        yield Estate(weak_https, weak_http, hardened, result, ENGINE.parse(result.stdout, HOSTS))


def test_the_weak_site_over_https_has_every_weakness(estate: Estate) -> None:
    base = estate.weak_https.base
    assert rules(estate.observations, base + "/") == (
        PAGE_WEAKNESSES | HTTPS_ONLY | {parser.VERSION_DISCLOSED, parser.TRACE_ENABLED}
    )
    assert rules(estate.observations, base + "/.git/HEAD") == {parser.GIT_EXPOSED}
    assert rules(estate.observations, base + "/.env") == {parser.ENV_EXPOSED}


def test_the_weak_site_over_http_has_them_but_hsts_and_secure(estate: Estate) -> None:
    base = estate.weak_http.base
    assert rules(estate.observations, base + "/") == (
        PAGE_WEAKNESSES | {parser.VERSION_DISCLOSED, parser.TRACE_ENABLED}
    )
    env = [o for o in estate.observations if o.location.url == base + "/.env"]
    assert env[0].evidence["variable_names"] == ["DB_PASSWORD", "API_KEY", "DEBUG"]


def test_the_hardened_site_has_none_of_the_rules(estate: Estate) -> None:
    port = estate.hardened.port
    assert [o for o in estate.observations if o.location.port == port] == []
    # it was asked everything: the page, TRACE, /.git/HEAD and /.env (its catch-all page)
    asked = {(method, path) for method, _, path in estate.hardened.requests}
    assert asked == {("GET", "/"), ("TRACE", "/"), ("GET", "/.git/HEAD"), ("GET", "/.env")}


def test_trace_is_reported_where_it_is_echoed(estate: Estate) -> None:
    trace = [o for o in estate.observations if o.rule_id == parser.TRACE_ENABLED]
    assert {o.location.port for o in trace} == {estate.weak_https.port, estate.weak_http.port}


def test_redirects_are_followed_on_the_same_host_only(estate: Estate) -> None:
    site = estate.weak_https
    old = {o.rule_id: o for o in estate.observations if o.location.url == site.base + "/old"}
    assert old[parser.REDIRECT].evidence["names_seen"] == ["127.0.0.1"]
    assert parser.DIRECTORY_LISTING in old  # judged at the page it landed on
    away = [o for o in estate.observations if o.location.url == site.base + "/away"]
    assert [o.rule_id for o in away] == [parser.REDIRECT]
    assert away[0].evidence["names_seen"] == ["localhost"]
    assert away[0].evidence["redirects"] == [
        {
            "url": site.base + "/away",
            "status": 302,
            "location": f"http://localhost:{site.port}/landing",
        }
    ]
    paths = [path for method, _, path in site.requests if method == "GET"]
    assert "/landing" not in paths  # the other name was never asked
    assert {host for _, host, _ in site.requests} == {f"127.0.0.1:{site.port}"}
    assert paths.count("/loop") == 1  # a redirect to itself is not followed again
    assert paths.count("/") == 2  # the page itself, and the landing page of /old


def test_secrets_never_reach_the_output(estate: Estate) -> None:
    output = estate.result.stdout.decode()
    assert SESSION_VALUE not in output
    for line in ENV_BODY.splitlines():
        if "=" in line:
            assert line.split("=", 1)[1] not in output
    assert "DB_PASSWORD=<masked>" in output and "PHPSESSID=<masked>" in output
    evidence = json.dumps([o.evidence for o in estate.observations])
    assert SESSION_VALUE not in evidence and "hunter2" not in evidence


def test_every_observation_is_covered_by_its_run(estate: Estate) -> None:
    targets = [validate_target(u) for u in json.loads(estate.result.stdout.splitlines()[0])[
        "targets"
    ]]  # fmt: skip
    scope = ScanScope.from_dict(ENGINE.scope(targets, {}).as_dict())
    for observation in estate.observations:
        assert ENGINE.covers(observation.rule_id, observation.location, scope), observation


def test_a_slow_server_meets_the_hard_timeout() -> None:
    with serving(SlowSite()) as site:
        started = time.monotonic()
        result = probe(site.base + "/", request_timeout_seconds=1)
        elapsed = time.monotonic() - started
    assert result.ok
    assert elapsed < 10  # one timed-out request, the origin probes skipped
    with pytest.raises(HttpIncompleteScan, match="timeout: DeadlineExceeded"):
        ENGINE.parse(result.stdout, HOSTS)


def test_a_huge_body_is_cut_at_the_cap() -> None:
    with serving(HugeSite()) as site:
        result = probe(site.base + "/", max_body_bytes=4096)
    assert result.ok
    records = [json.loads(line) for line in result.stdout.splitlines()]
    page = next(r for r in records if r.get("probe") == "page")
    assert page["body_bytes"] == 4096 and page["body_truncated"] is True
    assert len(result.stdout) < 64 * 1024
    found = {o.rule_id for o in ENGINE.parse(result.stdout, HOSTS)}
    assert parser.TRACE_ENABLED not in found  # it hung up on TRACE: refused, not a failure


def test_a_closed_port_fails_the_run() -> None:
    port = free_port()
    result = probe(f"http://127.0.0.1:{port}/")
    assert result.ok
    with pytest.raises(HttpIncompleteScan, match=f"GET http://127.0.0.1:{port}/ failed"):
        ENGINE.parse(result.stdout, HOSTS)


def _key(observation: Observation | OpenFinding) -> str:
    return f"{observation.rule_id}|{observation.location.url}"


def test_a_rescan_of_a_fixed_site_closes_only_what_it_looked_at(tls_chain: Path) -> None:
    """The weak site is fixed (it now answers like the hardened one) and only its front page
    is rescanned: every origin finding and the front page's findings close; the findings of
    a page the rescan did not request, and of another origin, stay open."""
    with serving(WeakSite(server_context(tls_chain))) as site:
        first = ENGINE.parse(probe(site.base + "/", site.base + "/old").stdout, HOSTS)
        site.RequestHandlerClass = HardenedSite.handler
        second = ENGINE.parse(probe(site.base + "/").stdout, HOSTS)
    assert second == []
    other_origin = Location("127.0.0.1", 8443, "tcp", "https://127.0.0.1:8443/.env")
    open_findings = [
        OpenFinding(i, _key(o), o.asset_id, o.rule_id, o.location) for i, o in enumerate(first)
    ]
    open_findings.append(
        OpenFinding(99, "other", "host:127.0.0.1", parser.ENV_EXPOSED, other_origin)
    )
    scope = ENGINE.scope([validate_target(site.base + "/")], {})
    closed = findings_to_close(
        open_findings,
        {_key(o) for o in second},
        ENGINE,
        ScanScope.from_dict(scope.as_dict()),
        run_succeeded=True,
        scanned_asset_ids={"host:127.0.0.1"},
    )
    closed_keys = {_key(f) for f in closed}
    still_open = {f.fingerprint for f in open_findings} - {f.fingerprint for f in closed}
    assert {f.rule_id for f in closed if f.location.url == site.base + "/"} == (
        PAGE_WEAKNESSES | HTTPS_ONLY | {parser.VERSION_DISCLOSED, parser.TRACE_ENABLED}
    )
    assert f"{parser.GIT_EXPOSED}|{site.base}/.git/HEAD" in closed_keys
    assert f"{parser.ENV_EXPOSED}|{site.base}/.env" in closed_keys
    assert still_open == {"other"} | {
        _key(o) for o in first if o.location.url == site.base + "/old"
    }


def test_the_version_comes_from_the_probe_module() -> None:
    result = Runner()(ENGINE.version_command(), timeout=60)
    assert result.ok
    assert ENGINE.parse_version(result.stdout.decode()) == "1"


def test_the_scan_stage_probes_every_url_of_an_asset(conn, tmp_path: Path, tls_chain: Path):
    """Through the scan stage and the store: an asset's http and https URLs on one host are
    both probed, its bare host name is left out, and the findings land on the asset."""
    host = "127.0.0.61"
    with (
        serving(WeakSite(host=host)) as weak,
        serving(HardenedSite(server_context(tls_chain), host=host)) as hardened,
    ):
        shop = Asset(
            "shop", "shop", AssetKind.WEB_APP, "cmdb", "team-web", Environment.PRODUCTION,
            Criticality.HIGH, (weak.base + "/", hardened.base + "/", "shop.internal"),
        )  # fmt: skip
        sync_inventory(conn, [shop], T0)
        outcome = run_batch(
            conn,
            Batch("http", ("shop",)),
            ScanConfig(engines=["http"], ports=[80], timeout_seconds=120),
            LocalBlobStore(tmp_path),
            Runner(),
            lambda: T0,
        )
    assert outcome.status == "succeeded", outcome.error
    [argv] = conn.execute("SELECT argv FROM scan_runs WHERE id = %s", (outcome.scan_run_id,))
    assert argv[0][argv[0].index("--") + 1 :] == [weak.base + "/", hardened.base + "/"]
    observations = scans.load_observations(conn, outcome.scan_run_id)
    assert {o.asset_id for o in observations} == {"shop"}
    assert {o.location.port for o in observations} == {weak.port}
    assert {o.rule_id for o in observations} >= PAGE_WEAKNESSES | ORIGIN_WEAKNESSES

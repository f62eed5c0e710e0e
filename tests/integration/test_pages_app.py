"""The autosec pages behind Airflow's own login, through FastAPI's TestClient: every route is
refused anonymously, and every figure shown equals what the store holds, computed here with
SQL of its own."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from autosec.airflow.pages_app import TriggeredRun, TriggerRefused, create_app
from autosec.config.estate import ScanConfig
from autosec.stages.rollups import refresh
from autosec.store import db
from browser.pages_support import (
    HOSTILE_TEAM,
    HOSTILE_TITLE,
    KEV_CVE,
    in_process_tokens,
    seed_estate,
)
from support.store import nmap_run

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
TODAY = NOW.date()
USERS = {"ciso": "viewer", "secops": "user", "admin": "admin"}
SECRET = b"s" * 32
PAGES = ("/posture", "/coverage", "/findings", "/reports", "/approvals")
APIS = ("/api/posture", "/api/coverage", "/api/findings", "/api/reports", "/metrics")


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return in_process_tokens(USERS)


@pytest.fixture
def estate(conn, tmp_path, monkeypatch):
    base = (tmp_path / "data").as_uri()
    monkeypatch.setenv("AUTOSEC_DATA_DIR", base)
    return seed_estate(conn, NOW, base)


class Recorder:
    """Stands in for Airflow's trigger_dag where the DAGs cannot be in the metadata database."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []

    def __call__(self, user, dag_id: str, conf: dict) -> TriggeredRun:
        self.calls.append((user.get_name(), dag_id, conf))
        return TriggeredRun(dag_id, f"manual__{len(self.calls)}", paused=True)


def make_client(store_url: str, trigger=None) -> TestClient:
    app = create_app(
        connect=lambda: db.connect(store_url),
        clock=lambda: NOW,
        scan_config=lambda: ScanConfig(engines=["nmap"]),
        trigger_run=trigger,
        csrf_secret=SECRET,
    )
    return TestClient(app)


@pytest.fixture
def client(store_url, estate) -> TestClient:
    return make_client(store_url)


def auth(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"}


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{re.escape(name)}">([^<]*)<', html)
    assert match, f"no figure {name} on the page"
    return match.group(1).strip()


def scalar(conn, query: str, *params):
    return conn.execute(query, params).fetchone()[0]


# --- authentication ---------------------------------------------------------------------------


def test_every_route_refuses_anonymous_and_forged_requests(client, tokens, estate) -> None:
    routes = [r for r in client.app.routes if getattr(r, "methods", None)]
    assert len(routes) >= 16
    for route in routes:
        path = route.path.replace("{approval_id}", "1").replace("{report_id}", "1")
        for method in route.methods:
            for headers, cookies in (
                ({}, {}),
                ({"Authorization": "Bearer not-a-token"}, {}),
                ({}, {"_token": "not-a-token"}),
            ):
                client.cookies.clear()
                client.cookies.update(cookies)
                response = client.request(method, path, headers=headers)
                assert response.status_code in (401, 403), (method, path, response.status_code)


def test_the_pages_render_for_a_signed_in_user_with_a_strict_policy(client, tokens) -> None:
    for path in PAGES:
        response = client.get(path, cookies={"_token": tokens["ciso"]})
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "Signed in as <strong>ciso</strong>" in html
        if path != "/approvals":
            policy = response.headers["content-security-policy"]
            assert "script-src 'none'" in policy and "frame-ancestors 'self'" in policy
            assert "<script" not in html and "http://" not in html and "https://" not in html
            for slug in ("posture", "coverage", "findings", "reports", "approvals"):
                assert f'<a href="{slug}"' in html, (path, slug)
    for path in APIS:
        assert client.get(path, headers=auth(tokens, "ciso")).status_code == 200, path


# --- Posture ----------------------------------------------------------------------------------


def test_posture_figures_equal_the_store(client, tokens, conn, estate) -> None:
    data = client.get("/api/posture?days=30", headers=auth(tokens, "ciso")).json()
    assert data["as_of"] == TODAY.isoformat()
    totals = data["totals"]
    open_by_severity = dict(
        conn.execute(
            "SELECT severity, count(*) FROM findings WHERE status IN ('open', 'reopened') "
            "GROUP BY severity"
        ).fetchall()
    )
    assert totals["open"] == {s: open_by_severity.get(s, 0) for s in totals["open"]}
    assert totals["open_total"] == sum(open_by_severity.values()) == 64
    assert totals["sla_breached"] == scalar(
        conn,
        "SELECT count(*) FROM findings WHERE status IN ('open', 'reopened') AND due_date < %s",
        TODAY,
    )
    assert totals["kev_open"] == scalar(
        conn,
        "SELECT count(*) FROM findings f WHERE status IN ('open', 'reopened') AND "
        "(known_exploited OR cve_ids && (SELECT array_agg(cve_id) FROM intel_kev))",
    )
    fixed, mean_days = conn.execute(
        "SELECT count(*), avg(extract(epoch FROM h.at - f.first_seen)) / 86400 "
        "FROM finding_history h JOIN findings f ON f.id = h.finding_id "
        "WHERE h.to_status = 'fixed' AND h.at >= %s",
        (datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC) - timedelta(days=29),),
    ).fetchone()
    assert totals["fixed_30d"] == fixed == 4
    assert totals["mean_days_to_fix_30d"] == pytest.approx(float(mean_days), abs=0.01)
    assert totals["assets_total"] == scalar(
        conn, "SELECT count(*) FROM assets WHERE status = 'active'"
    )
    # Development hosts are due every 7 days: within cadence = a success in the last 7 days.
    assert totals["assets_within_cadence"] == scalar(
        conn,
        "SELECT count(DISTINCT asset_id) FROM asset_scan_state WHERE last_success_at > %s",
        NOW - timedelta(days=7),
    )
    assert totals["blind_spots_open"] == scalar(
        conn, "SELECT count(*) FROM blind_spots WHERE status = 'open'"
    )
    assert totals["approvals_waiting"] == scalar(
        conn, "SELECT count(*) FROM approvals WHERE status = 'pending'"
    )
    assert totals["inventory_completeness"] == pytest.approx(4 / 5)
    assert totals["scan_coverage"] == pytest.approx(2 / 4)
    # One point a day since the store began, the last one today's totals.
    assert [p["day"] for p in data["series"]][-1] == TODAY.isoformat()
    assert len(data["series"]) == 30
    assert data["series"][-1]["open"] == totals["open"]


def test_posture_leaderboard_and_time_to_fix_per_team(client, tokens, conn, estate) -> None:
    data = client.get("/api/posture", headers=auth(tokens, "ciso")).json()
    teams = {t["label"]: t for t in data["teams"]}
    expected = {
        (owner or "(unowned)"): (open_, breached)
        for owner, open_, breached in conn.execute(
            "SELECT owner, count(*), count(*) FILTER (WHERE due_date < %s) FROM findings "
            "WHERE status IN ('open', 'reopened') GROUP BY owner",
            (TODAY,),
        )
    }
    with_open = {
        k: (v["open_total"], v["sla_breached"]) for k, v in teams.items() if v["open_total"]
    }
    assert with_open == expected
    assert teams["data"]["open_total"] == 0  # listed for its fixes alone
    # Fewest breaches first, then fewest critical and high open, then most fixed: the team
    # with breached known exploited criticals comes last.
    assert [t["label"] for t in data["teams"]] == ["data", "(unowned)", HOSTILE_TEAM, "payments"]
    assert [t["rank"] for t in data["teams"]] == [1, 2, 3, 4]
    assert teams["payments"]["kev_open"] == 1 and teams["data"]["fixed_30d"] == 2
    by_month = {
        (owner, month.strftime("%Y-%m")): (count, float(days))
        for owner, month, count, days in conn.execute(
            "SELECT f.owner, date_trunc('month', h.at AT TIME ZONE 'UTC'), count(*), "
            "avg(extract(epoch FROM h.at - f.first_seen)) / 86400 FROM finding_history h "
            "JOIN findings f ON f.id = h.finding_id WHERE h.to_status = 'fixed' GROUP BY 1, 2"
        )
    }
    got = {(t["team"], t["month"]): (t["fixed"], t["mean_days"]) for t in data["time_to_fix"]}
    assert got.keys() == by_month.keys()
    for key, (count, days) in by_month.items():
        assert got[key][0] == count and got[key][1] == pytest.approx(days, abs=0.01), key


def test_the_posture_page_shows_the_same_figures_and_draws_them(client, tokens) -> None:
    data = client.get("/api/posture", headers=auth(tokens, "ciso")).json()
    html = client.get("/posture", headers=auth(tokens, "ciso")).text
    totals = data["totals"]
    assert figure(html, "open-total") == str(totals["open_total"])
    for severity, count in totals["open"].items():
        assert figure(html, f"open-{severity}") == str(count)
    assert figure(html, "sla-breached") == str(totals["sla_breached"])
    assert figure(html, "kev-open") == str(totals["kev_open"])
    assert figure(html, "approvals-waiting") == str(totals["approvals_waiting"])
    assert figure(html, "blind-spots-open") == str(totals["blind_spots_open"])
    assert figure(html, "assets-within-cadence") == "2"
    assert figure(html, "inventory-completeness") == "80.0%"
    # Pictures first: an area per severity, breach and completeness lines, time-to-fix bars.
    assert html.index('id="chart-open"') < html.index('id="leaderboard"')
    assert html.count("<polygon ") == 5
    assert 'data-series="SLA breaches"' in html and 'id="chart-ttf"' in html
    # The hostile team name is escaped in the table, in the link and in the chart.
    assert "ops &#34;core&#34;" in html and 'ops "core"' not in html


def test_an_empty_store_says_there_is_no_rollup_yet(store_url, conn, tokens) -> None:
    client = make_client(store_url)
    assert client.get("/api/posture", headers=auth(tokens, "ciso")).json()["as_of"] is None
    html = client.get("/posture", headers=auth(tokens, "ciso")).text
    assert "No daily rollup yet" in html
    assert client.get("/api/posture?days=0", headers=auth(tokens, "ciso")).status_code == 422


# --- Coverage ---------------------------------------------------------------------------------


def test_coverage_shows_the_map_of_enabled_engines_and_who_is_overdue(
    client, tokens, conn, estate
) -> None:
    data = client.get("/api/coverage", headers=auth(tokens, "ciso")).json()
    assert data["engines"] == ["nmap"]
    assert data["coverage_map"]["host"]["open TCP ports"]["coverage"] == "CHECK"
    assert set(data["cells"]) == {"CHECK", "LIMITED", "MISSING"}
    assert sum(data["cells"].values()) == sum(len(r) for r in data["coverage_map"].values())
    # Never scanned, or last scanned more than 7 days ago (development hosts).
    expected = {
        r[0]
        for r in conn.execute(
            "SELECT a.id FROM assets a LEFT JOIN asset_scan_state s ON s.asset_id = a.id "
            "WHERE s.last_success_at IS NULL OR s.last_success_at <= %s",
            (NOW - timedelta(days=7),),
        )
    }
    assert {a["asset_id"] for a in data["overdue"]} == expected == {"web-2", "ci-1"}
    assert data["assets_overdue"] == 2 and data["assets_total"] == 4
    html = client.get("/coverage", headers=auth(tokens, "ciso")).text
    assert figure(html, "assets-overdue") == "2"
    assert figure(html, "cells-missing") == str(data["cells"]["MISSING"])
    assert '<tr data-asset-id="ci-1">' in html and ">never<" in html


def test_coverage_lists_overdue_assets_as_the_latest_rollup_found_them(
    client, tokens, conn, estate
) -> None:
    """Recomputing every asset's cadence is the rollup task's work, not each page view's."""

    nmap_run(conn, "web-2", [], NOW - timedelta(hours=1), {"ports": "1-1024"})
    listed = client.get("/api/coverage", headers=auth(tokens, "ciso")).json()
    assert {a["asset_id"] for a in listed["overdue"]} == {"web-2", "ci-1"}
    (web2,) = [a for a in listed["overdue"] if a["asset_id"] == "web-2"]
    assert [e["engine"] for e in web2["engines"]] == ["nmap"]  # its last success, shown now
    refresh(conn, ScanConfig(engines=["nmap"]), NOW)
    again = client.get("/api/coverage", headers=auth(tokens, "ciso")).json()
    assert [a["asset_id"] for a in again["overdue"]] == ["ci-1"]
    assert again["assets_overdue"] == 1 and again["assets_total"] == 4
    assert client.get("/api/coverage?limit=0", headers=auth(tokens, "ciso")).status_code == 422


# --- Findings ---------------------------------------------------------------------------------


def all_pages(client, tokens, query: str, limit: int = 25) -> list[dict]:
    items, after, pages = [], None, 0
    while True:
        url = f"/api/findings?{query}&limit={limit}" + (f"&after={after}" if after else "")
        page = client.get(url, headers=auth(tokens, "secops")).json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        after = page["next"]
        if after is None:
            return items
        assert pages < 100


def sql_ids(conn, where: str, *params) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            f"SELECT f.id FROM findings f WHERE {where} "  # noqa: S608 - test constants
            "ORDER BY coalesce(f.due_date, 'infinity'::date), f.id",
            params,
        )
    ]


def test_findings_pages_follow_due_dates_without_gaps_or_repeats(client, tokens, conn, estate):
    items = all_pages(client, tokens, "status=active")
    assert [i["id"] for i in items] == sql_ids(conn, "f.status IN ('open', 'reopened')")
    first = client.get("/api/findings", headers=auth(tokens, "secops")).json()
    assert first["matching"] == len(items) == 64 and not first["matching_capped"]
    assert len(first["items"]) == 50 and first["next"]


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("team=payments", "f.owner = 'payments' AND f.status IN ('open', 'reopened')"),
        ("team=%28unowned%29", "f.owner IS NULL AND f.status IN ('open', 'reopened')"),
        ("asset=db-1&status=any", "f.asset_id = 'db-1'"),
        ("severity=critical&status=any", "f.severity = 'critical'"),
        ("status=fixed", "f.status = 'fixed'"),
        ("status=accepted", "f.status = 'accepted'"),
        (
            "kev=yes&status=any",
            "(f.known_exploited OR f.cve_ids && ARRAY['" + KEV_CVE + "'])",
        ),
        ("kev=no", "NOT f.known_exploited AND f.status IN ('open', 'reopened')"),
        (
            "team=payments&severity=low&kev=no",
            "f.owner = 'payments' AND f.severity = 'low' AND f.status IN ('open', 'reopened')",
        ),
    ],
)
def test_findings_filters_match_sql(client, tokens, conn, estate, query, where) -> None:
    items = all_pages(client, tokens, query, limit=7)
    assert [i["id"] for i in items] == sql_ids(conn, where), query


def test_each_finding_says_why_it_has_its_priority_and_due_date(client, tokens, estate) -> None:
    items = client.get("/api/findings?kev=yes", headers=auth(tokens, "secops")).json()["items"]
    (kev,) = items
    assert kev["id"] == estate.kev_finding.id
    assert kev["known_exploited"] and kev["kev_cve_ids"] == [KEV_CVE]
    assert kev["priority"] == "act"
    assert "exploitation: active" in kev["why_priority"]
    assert "automatable: yes (inferred from the CVSS vector)" in kev["why_priority"]
    assert kev["why_due"] == (
        "the CISA KEV due date, earlier than the severity deadline; overdue by 3 days"
    )
    html = client.get("/findings?kev=yes", headers=auth(tokens, "secops")).text
    row = html[html.index(f'<tr data-finding-id="{kev["id"]}">') :]
    assert "exploitation: active" in row and "overdue by 3 days" in row and ">KEV<" in row
    reopened = client.get(
        "/api/findings?team=payments&severity=high", headers=auth(tokens, "secops")
    ).json()["items"]
    assert reopened[0]["why_due"] == (
        "high severity deadline of the patching policy (set again when it reopened); "
        "overdue by 1 day"
    )


def test_the_findings_page_escapes_and_pages(client, tokens, estate) -> None:
    html = client.get("/findings?limit=20", headers=auth(tokens, "secops")).text
    assert figure(html, "matching") == "64"
    assert html.count("<tr data-finding-id=") == 20
    assert "<script>alert(" not in html and "<b>TLS</b>" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; weak &lt;b&gt;TLS&lt;/b&gt;" in html
    assert HOSTILE_TITLE not in html
    next_href = re.search(r'<a href="([^"]+)" rel="next">', html).group(1)
    after = parse_qs(urlsplit(next_href.replace("&amp;", "&")).query)["after"][0]
    second = client.get(f"/findings?limit=20&after={after}", headers=auth(tokens, "secops"))
    assert second.status_code == 200 and "« First page" in second.text


def test_bad_findings_queries_are_refused_with_their_reason(client, tokens) -> None:
    for query, reason in (
        ("after=yesterday~3", "is not a page key"),
        ("after=2026-11-01~abc", "expected <due date or 'none'>~<finding id>"),
        ("severity=urgent", "String should match pattern"),
        ("status=gone", "String should match pattern"),
        ("limit=501", "less than or equal to 500"),
    ):
        response = client.get(f"/api/findings?{query}", headers=auth(tokens, "secops"))
        assert response.status_code == 422, query
        assert reason in response.text, (query, response.text)


# --- Reports ----------------------------------------------------------------------------------


def test_reports_are_listed_and_downloaded_as_stored(client, tokens, conn, estate) -> None:
    listed = client.get("/api/reports", headers=auth(tokens, "ciso")).json()["reports"]
    rows = conn.execute("SELECT id, kind, sha256, period_start FROM reports ORDER BY id").fetchall()
    assert sorted((r["id"], r["kind"], r["sha256"]) for r in listed) == [
        (r[0], r[1], r[2]) for r in rows
    ]
    assert all(r["period_start"] == (TODAY - timedelta(days=29)).isoformat() for r in listed)
    html = client.get("/reports", headers=auth(tokens, "ciso")).text
    for report_id, content in estate.report_bytes.items():
        response = client.get(f"/reports/{report_id}/download", headers=auth(tokens, "ciso"))
        assert response.status_code == 200
        assert response.content == content
        digest = hashlib.sha256(response.content).hexdigest()
        assert response.headers["x-autosec-sha256"] == digest
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["content-security-policy"] == "sandbox"
        assert f'href="reports/{report_id}/download"' in html and digest in html


def test_a_changed_missing_or_foreign_report_file_is_not_served(
    client, tokens, conn, estate, tmp_path
):
    report_id = estate.report_ids[0]
    path = conn.execute("SELECT path FROM reports WHERE id = %s", (report_id,)).fetchone()[0]
    file = Path(urlsplit(path).path)
    file.write_bytes(b"<html>altered</html>")
    changed = client.get(f"/reports/{report_id}/download", headers=auth(tokens, "ciso"))
    assert changed.status_code == 409
    assert "no longer matches its recorded sha256" in changed.json()["detail"]
    file.unlink()
    assert (
        client.get(f"/reports/{report_id}/download", headers=auth(tokens, "ciso")).status_code
        == 404
    )
    outside = tmp_path / "outside.html"
    outside.write_bytes(b"not a report")
    conn.execute(
        "UPDATE reports SET path = %s, sha256 = %s WHERE id = %s",
        (outside.as_uri(), hashlib.sha256(b"not a report").hexdigest(), estate.report_ids[1]),
    )
    conn.commit()
    foreign = client.get(f"/reports/{estate.report_ids[1]}/download", headers=auth(tokens, "ciso"))
    assert foreign.status_code == 404 and "outside the report store" in foreign.json()["detail"]
    assert client.get("/reports/999999/download", headers=auth(tokens, "ciso")).status_code == 404


def test_build_now_asks_airflow_who_may_trigger_the_dag(client, tokens) -> None:
    body = {"what": "all", "period_start": "2026-10-01", "period_end": "2026-10-31"}
    viewer = client.post("/api/reports/build", json=body, headers=auth(tokens, "ciso"))
    assert viewer.status_code == 403
    assert viewer.json()["detail"] == "ciso may not trigger the compliance_packs DAG"
    # A user who may: Airflow's database here has no such DAG, and says so.
    user = client.post("/api/reports/build", json=body, headers=auth(tokens, "secops"))
    assert user.status_code == 404
    assert "the compliance_packs DAG is not in Airflow's database yet" in user.json()["detail"]
    posture = client.post(
        "/api/reports/build", json={"what": "posture"}, headers=auth(tokens, "secops")
    )
    assert posture.status_code == 404 and "the report DAG is not" in posture.json()["detail"]


def test_build_now_from_the_form_needs_its_token_and_this_site(store_url, estate, tokens):
    recorder = Recorder()
    client = make_client(store_url, recorder)
    cookies = {"_token": tokens["secops"]}
    page = client.get("/reports", cookies=cookies).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    # The form offers every framework, all of them, and the posture report; last month by default.
    for value in ("all", "fedramp", "pci_dss", "soc2", "iso27001", "posture"):
        assert f'<option value="{value}">' in page, value
    assert 'name="period_start" value="2026-10-01"' in page
    assert 'name="period_end" value="2026-10-31"' in page
    form = {
        "what": "fedramp",
        "period_start": "2026-10-01",
        "period_end": "2026-10-31",
        "csrf_token": token,
    }
    forged = token[:-1] + ("1" if token.endswith("0") else "0")
    for data, headers, reason in (
        ({**form, "csrf_token": ""}, {}, "the form token is missing or malformed"),
        ({**form, "csrf_token": forged}, {}, "not valid for this user"),
        (form, {"Sec-Fetch-Site": "cross-site"}, "cross-site form submissions are refused"),
        (form, {"Origin": "https://evil.example"}, "form submitted from another origin"),
    ):
        refused = client.post("/reports", data=data, headers=headers, cookies=cookies)
        assert refused.status_code == 403 and reason in refused.text, reason
    # The token is bound to the user it was issued to.
    other = client.post("/reports", data=form, cookies={"_token": tokens["admin"]})
    assert other.status_code == 403
    assert recorder.calls == []

    built = client.post(
        "/reports",
        data=form,
        headers={"Sec-Fetch-Site": "same-origin"},
        cookies=cookies,
        follow_redirects=False,
    )
    assert built.status_code == 303
    assert built.headers["location"] == (
        "reports?dag=compliance_packs&requested=manual__1&paused=true"
    )
    assert recorder.calls == [
        (
            "secops",
            "compliance_packs",
            {
                "framework": "fedramp",
                "period_start": "2026-10-01",
                "period_end": "2026-10-31",
                "dry_run": False,
            },
        )
    ]
    shown = client.get("/" + built.headers["location"], cookies=cookies).text
    assert (
        "Build requested: run <code>manual__1</code> of the <code>compliance_packs</code>" in shown
    )
    assert "That DAG is paused" in shown

    posture = client.post(
        "/reports", data={**form, "what": "posture"}, cookies=cookies, follow_redirects=False
    )
    assert posture.status_code == 303 and recorder.calls[-1] == ("secops", "report", {})

    for data, reason in (
        ({**form, "period_end": "2026-09-01"}, "the period ends (2026-09-01) before it starts"),
        ({**form, "period_end": "2026-12-31"}, "the period ends in the future (2026-12-31"),
        ({**form, "period_start": "2025-01-01"}, "a pack covers at most 400 days, not 669"),
        ({**form, "what": "bogus"}, "cannot build &#39;bogus&#39;: expected one of all, "),
    ):
        refused = client.post("/reports", data=data, cookies=cookies)
        assert refused.status_code == 422, reason
        assert f"Not built: {reason}" in refused.text, (reason, refused.text[-1500:])
    assert len(recorder.calls) == 2


def test_build_now_over_the_api_takes_json_only(store_url, estate, tokens) -> None:
    recorder = Recorder()
    client = make_client(store_url, recorder)
    body = {"what": "all", "period_start": "2026-10-01", "period_end": "2026-10-31"}
    as_text = client.post(
        "/api/reports/build",
        content='{"what": "all"}',
        headers={**auth(tokens, "secops"), "Content-Type": "text/plain"},
    )
    assert as_text.status_code == 422
    extra = client.post(
        "/api/reports/build", json={**body, "dry_run": True}, headers=auth(tokens, "secops")
    )
    assert extra.status_code == 422
    half = client.post(
        "/api/reports/build",
        json={"what": "soc2", "period_start": "2026-10-01"},
        headers=auth(tokens, "secops"),
    )
    assert half.status_code == 422 and "give both ends of the period" in half.text
    accepted = client.post("/api/reports/build", json=body, headers=auth(tokens, "secops"))
    assert accepted.status_code == 202
    assert accepted.json() == {
        "dag_id": "compliance_packs",
        "run_id": "manual__1",
        "paused": True,
        "conf": {
            "framework": "all",
            "period_start": "2026-10-01",
            "period_end": "2026-10-31",
            "dry_run": False,
        },
    }
    latest = client.post(
        "/api/reports/build", json={"what": "pci_dss"}, headers=auth(tokens, "secops")
    )
    assert latest.status_code == 202
    assert recorder.calls[-1][2] == {
        "framework": "pci_dss",
        "period_start": None,
        "period_end": None,
        "dry_run": False,
    }

    def refuse(user, dag_id, conf):
        raise TriggerRefused(409, f"a run of the {dag_id} DAG already exists: manual__1")

    conflict = make_client(store_url, refuse).post(
        "/api/reports/build", json=body, headers=auth(tokens, "secops")
    )
    assert conflict.status_code == 409
    assert (
        conflict.json()["detail"] == "a run of the compliance_packs DAG already exists: manual__1"
    )

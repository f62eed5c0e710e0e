"""The autosec pages in a real Airflow UI: a real ``airflow api-server`` with the repo's plugin
on a loopback port, signed into through the UI's own login form (SimpleAuthManager), every
page opened in Debian's headless Chromium driven by Playwright, the figures it shows checked
against the store, a report downloaded and hashed, and a screenshot of each page kept.

"Build now" is checked against the same server without a browser: the run it creates must be
in Airflow's metadata database, triggered by the signed-in user, with the conf asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autosec.store import db
from browser.pages_support import (
    ApiServer,
    Estate,
    airflow_env,
    free_port,
    seed_estate,
    start_api_server,
    stop_process_group,
    wait_until_healthy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PASSWORDS = {"admin": "admin-pw-1", "secops": "secops-pw-2", "ciso": "ciso-pw-3"}
USERS = "admin:admin,secops:user,ciso:viewer"
# The DAGs "build now" triggers; parsed into the metadata database before the server starts.
DAG_FILES = ("report.py", "compliance_packs.py")
PAGES = ("posture", "coverage", "findings", "reports", "approvals")


@dataclass(frozen=True)
class Live:
    server: ApiServer
    store_url: str
    estate: Estate


def _database_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


def _airflow(env: dict[str, str], *args: str) -> None:
    subprocess.run(  # the venv's airflow, a fixed argv
        [str(Path(sys.executable).with_name("airflow")), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, postgres_available) -> Iterator[Live]:
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    store_name, metadata_name = f"autosec_pages_store_{suffix}", f"autosec_pages_meta_{suffix}"
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    for name in DAG_FILES:
        shutil.copy(REPO_ROOT / "dags" / name, dags / name)
    data_dir = (home / "data").as_uri()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = None
    db.create_database(ADMIN_URL, store_name)
    db.create_database(ADMIN_URL, metadata_name)
    try:
        store_url = _database_url(store_name)
        db.upgrade(store_url)
        env = airflow_env(
            home,
            url,
            db.sqlalchemy_url(_database_url(metadata_name)),
            store_url,
            USERS,
            PASSWORDS,
            dags,
            data_dir,
        )
        _airflow(env, "db", "migrate")
        _airflow(env, "dags", "reserialize")
        with db.connect(store_url) as conn:
            estate = seed_estate(conn, datetime.now(UTC), data_dir)
        log = home / "api-server.log"
        process = start_api_server(env, port, log)
        wait_until_healthy(url, process, log)
        yield Live(ApiServer(url, home, PASSWORDS), store_url, estate)
    finally:
        if process is not None:
            stop_process_group(process)
        db.drop_database(ADMIN_URL, store_name)
        db.drop_database(ADMIN_URL, metadata_name)


def scalar(store_url: str, query: str, *params):
    with db.connect(store_url) as conn:
        return conn.execute(query, params).fetchone()[0]


# --- without a browser: "build now" really creates the run ----------------------------------


def test_the_plugin_lists_every_page_in_the_navigation(live: Live) -> None:
    token = live.server.token("admin")
    plugins = requests.get(
        f"{live.server.url}/api/v2/plugins",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "autosec"]
    views = {v["name"]: v for v in plugin["external_views"]}
    assert list(views) == ["Posture", "Coverage", "Findings", "Reports", "Approvals"]
    for name, view in views.items():
        slug = name.lower()
        assert view["href"] == f"autosec/{slug}" and view["url_route"] == f"autosec-{slug}"
        assert view["destination"] == "nav" and view["nav_top_level"] is True
    anonymous = requests.get(f"{live.server.url}/autosec/posture", timeout=10)
    assert anonymous.status_code in (401, 403)


def test_build_now_creates_a_run_as_the_signed_in_user(live: Live) -> None:
    url = live.server.url
    secops = {"_token": live.server.token("secops")}
    page = requests.get(f"{url}/autosec/reports", cookies=secops, timeout=10)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    today = datetime.now(UTC).date()
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    end = today.replace(day=1) - timedelta(days=1)
    built = requests.post(
        f"{url}/autosec/reports",
        data={
            "what": "soc2",
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "csrf_token": csrf,
        },
        cookies=secops,
        headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
        timeout=30,
    )
    assert built.status_code == 303, built.text[-2000:]
    location = built.headers["location"]
    run_id = re.search(r"requested=([^&]+)", location).group(1)
    assert "dag=compliance_packs" in location and "paused=true" in location  # paused at creation

    admin = {"Authorization": f"Bearer {live.server.token('admin')}"}
    run = requests.get(
        f"{url}/api/v2/dags/compliance_packs/dagRuns/{requests.utils.unquote(run_id)}",
        headers=admin,
        timeout=10,
    ).json()
    assert run["triggering_user_name"] == "secops"
    assert run["run_type"] == "manual" and run["state"] == "queued"
    assert run["conf"] == {
        "framework": "soc2",
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "dry_run": False,
    }
    # A viewer may look, not build: Airflow's auth manager says no, and no run is created.
    ciso = {"Authorization": f"Bearer {live.server.token('ciso')}"}
    refused = requests.post(
        f"{url}/autosec/api/reports/build", json={"what": "posture"}, headers=ciso, timeout=10
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "ciso may not trigger the report DAG"
    runs = requests.get(f"{url}/api/v2/dags/report/dagRuns", headers=admin, timeout=10).json()
    assert runs["total_entries"] == 0
    posture = requests.post(
        f"{url}/autosec/api/reports/build",
        json={"what": "posture"},
        headers={"Authorization": f"Bearer {live.server.token('secops')}"},
        timeout=30,
    )
    assert posture.status_code == 202, posture.text
    runs = requests.get(f"{url}/api/v2/dags/report/dagRuns", headers=admin, timeout=10).json()
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == [posture.json()["run_id"]]


# --- in Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nscreenshots of the autosec pages: {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser_page(live: Live):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(
            viewport={"width": 1440, "height": 1000}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        _log_in(page, live.server.url, "secops", PASSWORDS["secops"])
        yield page
        context.close()
        browser.close()


def _log_in(page, url: str, user: str, password: str) -> None:
    """Through the UI's own login form, as a person would."""
    page.goto(url + "/")
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.get_by_label(re.compile("username", re.I)).fill(user)
    page.get_by_label(re.compile("password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
    assert any(c["name"] == "_token" for c in page.context.cookies()), "no login cookie"


def _open(page, slug: str):
    """The page as a person reaches it: its item in the Airflow navigation, which shows the
    page in the UI's iframe at /plugin/autosec-<slug>."""
    page.locator(f'a[aria-label="{slug.title()}"][href$="plugin/autosec-{slug}"]').click()
    page.wait_for_url(re.compile(rf".*/plugin/autosec-{slug}$"))
    frame = page.frame_locator(f'iframe[src$="autosec/{slug}"]')
    frame.locator("h1", has_text=slug.title()).wait_for()
    return frame


def _screenshots(page, url: str, slug: str, artifacts: Path) -> None:
    """The page as the UI shows it (navigation and iframe), and the whole page on its own."""
    page.screenshot(path=artifacts / f"{slug}-in-airflow.png")
    alone = page.context.new_page()
    try:
        alone.goto(f"{url}/autosec/{slug}")
        alone.locator("h1").wait_for()
        alone.screenshot(path=artifacts / f"{slug}.png", full_page=True)
    finally:
        alone.close()


def _figure(frame, name: str) -> str:
    return frame.locator(f'[data-figure="{name}"]').first.inner_text().strip()


def test_every_page_in_the_airflow_ui_shows_the_stores_figures(
    live: Live, browser_page, artifacts: Path
) -> None:
    page, url, store = browser_page, live.server.url, live.store_url
    page.goto(url + "/")
    for slug in PAGES:  # top-level items of the Airflow navigation
        page.locator(f'a[aria-label="{slug.title()}"][href$="plugin/autosec-{slug}"]').wait_for()

    frame = _open(page, "posture")
    today = datetime.now(UTC).date()
    assert _figure(frame, "open-total") == str(
        scalar(store, "SELECT count(*) FROM findings WHERE status IN ('open', 'reopened')")
    )
    assert _figure(frame, "sla-breached") == str(
        scalar(
            store,
            "SELECT count(*) FROM findings WHERE status IN ('open', 'reopened') AND due_date < %s",
            today,
        )
    )
    assert _figure(frame, "approvals-waiting") == str(
        scalar(store, "SELECT count(*) FROM approvals WHERE status = 'pending'")
    )
    assert _figure(frame, "blind-spots-open") == str(
        scalar(store, "SELECT count(*) FROM blind_spots WHERE status = 'open'")
    )
    assert frame.locator("#chart-open polygon").count() == 5
    _screenshots(page, url, "posture", artifacts)

    frame = _open(page, "coverage")
    assert _figure(frame, "assets-overdue") == str(
        scalar(
            store,
            "SELECT count(*) FROM assets a WHERE NOT EXISTS (SELECT 1 FROM asset_scan_state s "
            "WHERE s.asset_id = a.id AND s.last_success_at > now() - interval '7 days')",
        )
    )
    assert frame.locator('#coverage-map td.cov-CHECK[data-kind="host"]').count() >= 1
    _screenshots(page, url, "coverage", artifacts)

    frame = _open(page, "findings")
    assert _figure(frame, "matching") == str(
        scalar(store, "SELECT count(*) FROM findings WHERE status IN ('open', 'reopened')")
    )
    frame.locator('select[name="kev"]').select_option("yes")
    frame.get_by_role("button", name="Filter").click()
    frame.locator('[data-figure="matching"]').filter(has_text=re.compile(r"^1$")).wait_for()
    row = frame.locator(f'tr[data-finding-id="{live.estate.kev_finding.id}"]')
    assert "exploitation: active" in row.inner_text()
    assert "CISA KEV due date" in row.inner_text()
    _screenshots(page, url, "findings", artifacts)

    frame = _open(page, "reports")
    report_id = live.estate.report_ids[1]
    link = frame.locator(f'tr[data-report-id="{report_id}"] a', has_text="Download")
    with page.expect_download() as download_info:
        link.click()
    saved = artifacts / "downloaded-report"
    download_info.value.save_as(saved)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    assert digest == scalar(store, "SELECT sha256 FROM reports WHERE id = %s", report_id)
    assert saved.read_bytes() == live.estate.report_bytes[report_id]
    saved.unlink()
    _screenshots(page, url, "reports", artifacts)

    frame = _open(page, "approvals")
    assert "Waiting for a decision (1)" in frame.locator("body").inner_text()
    _screenshots(page, url, "approvals", artifacts)
    for slug in PAGES:
        for name in (f"{slug}.png", f"{slug}-in-airflow.png"):
            assert (artifacts / name).stat().st_size > 10_000, name

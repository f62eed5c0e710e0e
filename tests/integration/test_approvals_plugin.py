"""The Approvals page and API on a real Airflow api-server, behind Airflow's own login.

One api-server (the venv's ``airflow``) runs for the module, with the repo's plugins folder,
SimpleAuthManager users, a migrated metadata database of its own and the session's autosec
store. Requests are made as real users with tokens from ``POST /auth/token``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autosec.store import approvals, db

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_FOLDER = REPO_ROOT / "plugins"
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PASSWORDS = {"admin": "admin-pw-1", "secops-lead": "secops-pw-2", "ciso": "ciso-pw-3"}
USERS = "admin:admin,secops-lead:user,ciso:user"
STARTUP_SECONDS = 60
HASH = "c" * 64
HOSTILE = '<script>alert("pwned")</script> quarantine <b>10.0.0.5</b>'


@dataclass(frozen=True)
class Server:
    url: str
    tokens: dict[str, str]
    store_url: str

    def _auth(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def get(self, path: str, user: str | None = None, **kwargs) -> requests.Response:
        return requests.get(self.url + path, headers=self._auth(user), timeout=10, **kwargs)

    def decide(
        self, approval_id: int, user: str | None, decision: str, reason: str | None = None
    ) -> requests.Response:
        return requests.post(
            f"{self.url}/autosec/api/approvals/{approval_id}/decision",
            headers=self._auth(user),
            json={"decision": decision, "reason": reason},
            timeout=10,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"api-server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"api-server not up after {STARTUP_SECONDS}s:\n{log.read_text()[-3000:]}")


def _token(url: str, user: str) -> str:
    response = requests.post(
        f"{url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def server(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from autosec.airflow.local_run import airflow_command

    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    metadata_db = f"autosec_plugin_meta_{os.getpid()}_{secrets.token_hex(3)}"
    db.create_database(ADMIN_URL, metadata_db)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.sqlalchemy_url(
            ADMIN_URL.rpartition("/")[0] + "/" + metadata_db
        ),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AUTOSEC_DATABASE_URL": store_url,
    }
    log = home / "api-server.log"
    process = None
    try:
        airflow_command("db", "migrate", env=env)
        with log.open("wb") as out:
            process = subprocess.Popen(  # the venv's airflow, fixed argv
                [
                    str(Path(sys.executable).with_name("airflow")),
                    "api-server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        _wait_until_up(url, process, log)
        yield Server(url, {user: _token(url, user) for user in PASSWORDS}, store_url)
    finally:
        if process is not None:
            _stop(process)
        db.drop_database(ADMIN_URL, metadata_db)


def _request(
    store_url: str,
    approvers: list[str],
    quorum: int = 1,
    summary: str = "quarantine 10.0.0.5 (exposed database)",
    requester: str = "autosec",
    created: datetime | None = None,
    hours: float = 24,
) -> int:
    with db.connect(store_url) as conn:
        approval_id = approvals.create_approval(
            conn,
            requester,
            approvers,
            quorum,
            summary,
            "contain-exposed-db",
            HASH,
            created or datetime.now(UTC),
            hours,
        )
        conn.commit()
    return approval_id


def _log(store_url: str, approval_id: int) -> list[tuple[str, str, str | None]]:
    with db.connect(store_url) as conn:
        rows = approvals.decisions_for(conn, approval_id)
    return [(r["approver"], r["decision"], r["reason"]) for r in rows]


def _status(store_url: str, approval_id: int) -> str:
    with db.connect(store_url) as conn:
        return approvals.statuses(conn, [approval_id])[approval_id]


def test_the_plugin_is_loaded_with_its_app_and_nav_view(server: Server) -> None:
    response = server.get("/api/v2/plugins", "admin")
    assert response.status_code == 200, response.text
    plugins = {p["name"]: p for p in response.json()["plugins"]}
    assert "autosec" in plugins, sorted(plugins)
    plugin = plugins["autosec"]
    assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [
        ("/autosec", "autosec")
    ]
    (view,) = [v for v in plugin["external_views"] if v["name"] == "Approvals"]
    assert view["name"] == "Approvals"
    assert view["href"] == "autosec/approvals"
    assert view["url_route"] == "autosec-approvals"
    assert view["destination"] == "nav"
    errors = server.get("/api/v2/plugins/importErrors", "admin").json()
    assert errors["total_entries"] == 0, errors


def test_anonymous_and_forged_requests_are_refused(server: Server) -> None:
    approval_id = _request(server.store_url, ["secops-lead", "ciso"])
    paths = [
        "/autosec/approvals",
        "/autosec/api/approvals",
        f"/autosec/api/approvals/{approval_id}",
    ]
    for path in paths:
        assert server.get(path).status_code in (401, 403), path
        forged = requests.get(
            server.url + path, headers={"Authorization": "Bearer not-a-token"}, timeout=10
        )
        assert forged.status_code in (401, 403), path
        cookie = requests.get(server.url + path, cookies={"_token": "not-a-token"}, timeout=10)
        assert cookie.status_code in (401, 403), path
    assert server.decide(approval_id, None, "approve", "anonymous").status_code in (401, 403)
    assert _log(server.store_url, approval_id) == []
    assert _status(server.store_url, approval_id) == "pending"


def test_the_page_lists_pending_first_and_escapes_what_it_shows(server: Server) -> None:
    pending = _request(server.store_url, ["secops-lead", "ciso"], quorum=2, summary=HOSTILE)
    decided = _request(server.store_url, ["ciso"], summary="notify the owner of web-7")
    assert server.decide(decided, "ciso", "approve", "owner agreed").status_code == 200

    # As the UI's iframe would ask: with the login cookie, not a Bearer header.
    response = requests.get(
        f"{server.url}/autosec/approvals",
        cookies={"_token": server.tokens["secops-lead"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    html = response.text
    assert "Signed in as <strong>secops-lead</strong>" in html
    assert "<script>alert(" not in html and "<b>10.0.0.5</b>" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    row = html.index(f'<tr data-approval-id="{pending}">')
    assert html.index("secops-lead, ciso", row) < html.index("Recently decided")
    assert html.index("0 of 2", row) < html.index("Recently decided")
    assert f'<tr data-approval-id="{decided}">' not in html
    assert html.index("notify the owner of web-7") > html.index("Recently decided")
    assert "ciso: approve — owner agreed" in html
    # the other autosec pages are one click away, relative to the page (sub-path safe)
    for page in ("posture", "coverage", "findings", "reports"):
        assert f'<a href="{page}">' in html


def test_an_approver_approves_as_the_signed_in_user(server: Server) -> None:
    approval_id = _request(server.store_url, ["secops-lead", "ciso"], quorum=2)

    response = server.decide(approval_id, "secops-lead", "approve", "checked the ticket")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": approval_id,
        "approver": "secops-lead",
        "decision": "approve",
        "status": "pending",
    }
    assert _log(server.store_url, approval_id) == [("secops-lead", "approve", "checked the ticket")]
    listed = server.get("/autosec/api/approvals?status=pending", "ciso").json()
    (item,) = [i for i in listed if i["id"] == approval_id]
    assert item["approved_by"] == ["secops-lead"]
    assert item["approvers"] == ["secops-lead", "ciso"]
    assert all(i["status"] == "pending" for i in listed)

    assert server.decide(approval_id, "ciso", "approve", "ok").json()["status"] == "approved"
    detail = server.get(f"/autosec/api/approvals/{approval_id}", "admin").json()
    assert detail["status"] == "approved"
    assert [(d["approver"], d["decision"]) for d in detail["decisions"]] == [
        ("secops-lead", "approve"),
        ("ciso", "approve"),
    ]
    again = server.decide(approval_id, "secops-lead", "reject", "changed my mind")
    assert again.status_code == 409
    assert again.json()["detail"] == f"approval {approval_id} is already approved"


def test_the_rules_refuse_with_their_message(server: Server) -> None:
    approval_id = _request(server.store_url, ["secops-lead", "ciso"])
    no_reason = server.decide(approval_id, "secops-lead", "reject", "   ")
    assert no_reason.status_code == 409
    assert no_reason.json()["detail"] == "a rejection needs a reason"
    outsider = server.decide(approval_id, "admin", "approve", "I am admin")
    assert outsider.status_code == 409
    assert outsider.json()["detail"].startswith(
        f"admin is not an approver of approval {approval_id}"
    )
    assert _log(server.store_url, approval_id) == []

    own = _request(server.store_url, ["ciso", "secops-lead"], requester="ciso")
    self_approval = server.decide(own, "ciso", "approve", "mine")
    assert self_approval.status_code == 409
    assert "cannot decide on it" in self_approval.json()["detail"]
    assert _log(server.store_url, own) == []

    stale = _request(
        server.store_url, ["secops-lead"], created=datetime.now(UTC) - timedelta(hours=2), hours=1
    )
    late = server.decide(stale, "secops-lead", "approve", "too late")
    assert late.status_code == 409
    assert f"approval {stale} expired" in late.json()["detail"]
    assert _status(server.store_url, stale) == "expired"
    assert [d[:2] for d in _log(server.store_url, stale)] == [("autosec", "expire")]


def test_malformed_or_impersonating_bodies_are_rejected(server: Server) -> None:
    approval_id = _request(server.store_url, ["secops-lead", "ciso"])
    url = f"{server.url}/autosec/api/approvals/{approval_id}/decision"
    auth = {"Authorization": f"Bearer {server.tokens['admin']}"}
    impersonating = requests.post(
        url, headers=auth, json={"decision": "approve", "approver": "ciso"}, timeout=10
    )
    assert impersonating.status_code == 422
    assert server.decide(approval_id, "secops-lead", "maybe", "hmm").status_code == 422
    secops = {"Authorization": f"Bearer {server.tokens['secops-lead']}"}
    assert requests.post(url, headers=secops, timeout=10).status_code == 422
    # What a cross-site form could send: valid JSON, but not as application/json.
    as_text = requests.post(
        url,
        headers={**secops, "Content-Type": "text/plain"},
        data=json.dumps({"decision": "approve", "reason": "x"}),
        timeout=10,
    )
    assert as_text.status_code == 422
    assert _log(server.store_url, approval_id) == []

    missing = server.decide(2**40, "secops-lead", "approve", "ok")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"approval {2**40} does not exist"
    assert server.get(f"/autosec/api/approvals/{2**40}", "ciso").status_code == 404
    assert server.get("/autosec/api/approvals?status=bogus", "ciso").status_code == 422

"""What the page tests share: seeding the store with findings that have a history, Airflow
logins in-process (for FastAPI's TestClient), and a real ``airflow api-server`` on loopback.

Findings are written with plain SQL, each with its status changes in ``finding_history``, so a
test knows exactly what every day looked like and can compute any figure independently.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from psycopg.types.json import Jsonb

from autosec.airflow.hooks import ObjectStorageBlobStore
from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.stages.rollups import refresh
from autosec.store import reports
from support.store import nmap_run

OPEN = ("open", "reopened")
_SERIAL = itertools.count(1)
REPO_ROOT = Path(__file__).resolve().parents[2]


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- seeding ----------------------------------------------------------------------------------


def host(asset_id: str, owner: str, address: str) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.HOST,
        "cmdb",
        owner,
        Environment.DEVELOPMENT,
        Criticality.MEDIUM,
        addresses=(address,),
    )


def add_assets(conn, assets: Sequence[Asset], at: datetime) -> None:
    """Active assets first seen at ``at`` (written directly: the pages only read them)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, "
            "addresses, tags, status, first_seen, last_seen) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'active', %s, %s)",
            [
                (
                    a.id,
                    a.name,
                    a.kind.value,
                    a.source,
                    a.owner,
                    a.environment.value,
                    a.criticality.value,
                    list(a.addresses),
                    list(a.tags),
                    at,
                    at,
                )
                for a in assets
            ],
        )


@dataclass
class SeededFinding:
    """A finding as the test wrote it: enough to replay any day independently."""

    id: int
    asset_id: str
    owner: str | None
    severity: str
    due_date: date | None
    known_exploited: bool
    cve_ids: tuple[str, ...]
    events: list[tuple[datetime, str | None, str]] = field(default_factory=list)

    @property
    def first_seen(self) -> datetime:
        return self.events[0][0]

    @property
    def status(self) -> str:
        return self.events[-1][2]


def add_finding(
    conn,
    asset_id: str,
    owner: str | None,
    severity: str,
    steps: Sequence[tuple[datetime, str]],
    due_date: date | None = None,
    cve_ids: Sequence[str] = (),
    known_exploited: bool = False,
    title: str | None = None,
    priority: str = "scheduled",
    priority_points: dict | None = None,
    kev_due_date: date | None = None,
) -> SeededFinding:
    """A finding whose status went through ``steps`` ((when, to_status), the first 'open')."""
    serial = next(_SERIAL)
    events: list[tuple[datetime, str | None, str]] = []
    previous: str | None = None
    for at, status in steps:
        events.append((at, previous, status))
        previous = status
    first, last = events[0][0], events[-1][0]
    status = events[-1][2]
    fingerprint = hashlib.sha256(f"finding-{serial}-{os.getpid()}".encode()).hexdigest()
    decision_id = None
    if priority_points:
        decision_id = conn.execute(
            "WITH new AS (INSERT INTO priority_decisions (points) VALUES (%(p)s) "
            "ON CONFLICT (points) DO NOTHING RETURNING id) "
            "SELECT id FROM new UNION ALL SELECT id FROM priority_decisions WHERE points = %(p)s",
            {"p": Jsonb(priority_points)},
        ).fetchone()[0]
    row = conn.execute(
        "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, "
        "title, severity, status, priority, priority_decision_id, cve_ids, location, owner, "
        "due_date, first_seen, last_seen, fixed_at, known_exploited, kev_due_date) "
        "VALUES (%s, 2, %s, 'nmap', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (
            fingerprint,
            asset_id,
            f"rule-{serial}",
            title or f"finding {serial} on {asset_id}",
            severity,
            status,
            priority,
            decision_id,
            list(cve_ids),
            Jsonb({"host": asset_id, "port": 1000 + serial, "protocol": "tcp"}),
            owner,
            due_date,
            first,
            last,
            last if status == "fixed" else None,
            known_exploited,
            kev_due_date,
        ),
    ).fetchone()
    finding_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO finding_history (finding_id, from_status, to_status, reason, at) "
            "VALUES (%s, %s, %s, 'seeded', %s)",
            [(finding_id, before, after, at) for at, before, after in events],
        )
    return SeededFinding(
        finding_id,
        asset_id,
        owner,
        severity,
        due_date,
        known_exploited,
        tuple(cve_ids),
        events,
    )


def add_kev(conn, cve_id: str, added: date, due: date) -> None:
    conn.execute(
        "INSERT INTO intel_kev (cve_id, vendor_project, product, vulnerability_name, date_added, "
        "short_description, required_action, due_date, known_ransomware_campaign_use, "
        "loaded_at) VALUES (%s, 'Example', 'Server', %s, %s, 'seeded', 'patch', %s, "
        "'Unknown', now())",
        (cve_id, f"{cve_id} in Example Server", added, due),
    )


def add_blind_spot(
    conn, address: str, first_seen: datetime, resolved_at: datetime | None = None
) -> None:
    conn.execute(
        "INSERT INTO blind_spots (address, port, source, status, first_seen, last_seen, "
        "resolved_at) VALUES (%s, 0, 'tcp_sweep', %s, %s, %s, %s)",
        (
            address,
            "resolved" if resolved_at else "open",
            first_seen,
            resolved_at or first_seen,
            resolved_at,
        ),
    )


def add_approval(
    conn, created: datetime, decided: datetime | None = None, status: str | None = None
) -> int:
    row = conn.execute(
        "INSERT INTO approvals (requester, approvers, quorum, status, summary, rule_id, "
        "policy_hash, created_at, expires_at, decided_at) VALUES ('autosec', %s, 1, %s, "
        "'quarantine 10.0.0.5', 'contain', %s, %s, %s, %s) RETURNING id",
        (
            ["secops-lead"],
            status or ("approved" if decided else "pending"),
            "c" * 64,
            created,
            created + timedelta(days=30),
            decided,
        ),
    ).fetchone()
    return int(row[0])


def replay(
    findings: Sequence[SeededFinding], day: date, kev_cves: Sequence[str] = ()
) -> dict[tuple[str, str], dict]:
    """Every figure of ``day`` per (team, severity), by walking each finding's events; known
    exploited: flagged by triage or with a CVE in ``kev_cves`` (the KEV catalog)."""
    end = midnight(day) + timedelta(days=1)
    start = midnight(day)
    result: dict[tuple[str, str], dict] = {}
    for f in findings:
        figures = result.setdefault(
            (f.owner or "", f.severity),
            {
                "open_findings": 0,
                "sla_breached": 0,
                "kev_open": 0,
                "opened": 0,
                "fixed": 0,
                "fix_seconds": 0.0,
            },
        )
        before_end = [e for e in f.events if e[0] < end]
        status = before_end[-1][2] if before_end else None
        if status in OPEN:
            figures["open_findings"] += 1
            figures["sla_breached"] += bool(f.due_date is not None and f.due_date < day)
            figures["kev_open"] += f.known_exploited or bool(set(f.cve_ids) & set(kev_cves))
        for at, before, after in f.events:
            if not start <= at < end:
                continue
            if after in OPEN and before not in OPEN:
                figures["opened"] += 1
            if after == "fixed" and before in OPEN:
                figures["fixed"] += 1
                figures["fix_seconds"] += (at - f.first_seen).total_seconds()
    return {
        key: value
        for key, value in result.items()
        if value["open_findings"] + value["opened"] + value["fixed"] > 0
    }


def assert_same_figures(got: dict, expected: dict, where: object = "") -> None:
    """Same keys, same counts, fix seconds equal to the millisecond."""
    assert set(got) == set(expected), (where, sorted(set(got) ^ set(expected)))
    for key, figures in expected.items():
        for name, value in figures.items():
            assert got[key][name] == pytest.approx(value, abs=1e-3), (where, key, name)


def rollup_rows(conn, day: date) -> dict[tuple[str, str], dict]:
    rows = conn.execute(
        "SELECT team, severity, open_findings, sla_breached, kev_open, opened, fixed, "
        "fix_seconds FROM rollup_findings_daily WHERE day = %s",
        (day,),
    ).fetchall()
    names = ("open_findings", "sla_breached", "kev_open", "opened", "fixed", "fix_seconds")
    return {(r[0], r[1]): dict(zip(names, r[2:], strict=True)) for r in rows}


# --- Airflow logins, in-process ---------------------------------------------------------------


def in_process_tokens(users: dict[str, str]) -> dict[str, str]:
    """JWTs Airflow's own auth manager issues and accepts, for ``{user: role}``.

    Reading a token checks Airflow's revoked-token table, so the metadata database must exist:
    it is migrated here, but only when it is the throwaway SQLite file under a temporary
    AIRFLOW_HOME (tests/conftest.py sets one); anything else is never touched.
    """
    from airflow import settings
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    home = Path(os.environ.get("AIRFLOW_HOME", "/nonexistent")).resolve()
    url = str(settings.SQL_ALCHEMY_CONN or "")
    temporary = Path(tempfile.gettempdir()).resolve()
    if not (url.startswith("sqlite:") and temporary in home.parents and str(home) in url):
        pytest.skip(f"Airflow's metadata database is not a throwaway one here ({url!r})")
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(32).hex())
    if not (home / ".autosec-pages-migrated").exists():
        from airflow.utils.db import upgradedb

        upgradedb()
        (home / ".autosec-pages-migrated").touch()
    manager = init_auth_manager()
    return {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, role in users.items()
    }


# --- a real api-server ------------------------------------------------------------------------

STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop the server and everything it started (its own process group), never anything else."""
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


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
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
    pytest.fail(f"api-server not healthy after {STARTUP_SECONDS}s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class ApiServer:
    url: str
    home: Path
    passwords: dict[str, str]

    def token(self, user: str) -> str:
        response = requests.post(
            f"{self.url}/auth/token",
            json={"username": user, "password": self.passwords[user]},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()["access_token"]


def airflow_env(
    home: Path,
    url: str,
    metadata_url: str,
    store_url: str,
    users: str,
    passwords: dict[str, str],
    dags_folder: Path,
    data_dir: str,
) -> dict[str, str]:
    """The environment of an api-server with the repo's plugin and SimpleAuthManager users."""
    passwords_file = home / "passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AUTOSEC_DATABASE_URL": store_url,
        "AUTOSEC_DATA_DIR": data_dir,
    }


def start_api_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(  # the venv's airflow, a fixed argv
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


# --- one estate for the page tests ------------------------------------------------------------

HOSTILE_TITLE = '<script>alert("pwned")</script> weak <b>TLS</b>'
HOSTILE_TEAM = 'ops "core"'
KEV_CVE = "CVE-2024-0001"
POINTS = {
    "priority": "act",
    "table": "1",
    "row": 2,
    "exploitation": "active",
    "automatable": "yes",
    "technical_impact": "total",
    "mission": "high",
    "exposure": "open",
    "mission_wellbeing": "high",
    "inferred": {"automatable": "from the CVSS vector"},
}


@dataclass
class Estate:
    now: datetime
    findings: list[SeededFinding]
    report_ids: list[int]
    report_bytes: dict[int, bytes]
    kev_finding: SeededFinding
    hostile_finding: SeededFinding

    @property
    def today(self) -> date:
        return self.now.date()


def seed_estate(conn, now: datetime, blob_base: str, paging_findings: int = 60) -> Estate:
    """Teams, hosts, findings with weeks of history, KEV, blind spots, approvals, scans and two
    stored reports; then the rollups, as the rollup task would compute them at ``now``."""
    today = now.date()

    def ago(days: int, hour: int = 10) -> datetime:
        return midnight(today - timedelta(days=days)) + timedelta(hours=hour)

    add_assets(
        conn,
        [
            host("web-1", "payments", "10.0.0.1"),
            host("web-2", "payments", "10.0.0.2"),
            host("db-1", "data", "10.0.0.3"),
            host("ci-1", HOSTILE_TEAM, "10.0.0.4"),
        ],
        ago(40, 8),
    )
    add_kev(conn, KEV_CVE, date(2024, 1, 2), today - timedelta(days=3))
    found = []
    kev = add_finding(
        conn,
        "web-1",
        "payments",
        "critical",
        [(ago(12), "open")],
        due_date=today - timedelta(days=3),
        cve_ids=[KEV_CVE],
        known_exploited=True,
        kev_due_date=today - timedelta(days=3),
        priority="act",
        priority_points=POINTS,
        title="Remote code execution in Example Server",
    )
    found.append(kev)
    found.append(
        add_finding(
            conn,
            "web-1",
            "payments",
            "high",
            [(ago(35), "open"), (ago(3, 14), "fixed")],
            due_date=today + timedelta(days=20),
        )
    )
    found.append(
        add_finding(
            conn,
            "web-2",
            "payments",
            "high",
            [(ago(15), "open"), (ago(9), "fixed"), (ago(2), "reopened")],
            due_date=today - timedelta(days=1),
        )
    )
    found.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "medium",
            [(ago(38), "open"), (ago(0, 9), "fixed")],
            due_date=today + timedelta(days=60),
        )
    )
    found.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "low",
            [(ago(14), "open"), (ago(7), "accepted")],
            due_date=today - timedelta(days=1),
        )
    )
    found.append(
        add_finding(
            conn,
            "db-1",
            "data",
            "critical",
            [(ago(6, 8), "open"), (ago(6, 20), "fixed")],
            due_date=today - timedelta(days=10),
        )
    )
    found.append(add_finding(conn, "ci-1", None, "info", [(ago(0, 8), "open")]))
    hostile = add_finding(
        conn,
        "ci-1",
        HOSTILE_TEAM,
        "medium",
        [(ago(4), "open")],
        due_date=today + timedelta(days=1),
        title=HOSTILE_TITLE,
    )
    found.append(hostile)
    for i in range(paging_findings):  # enough for more than one page, with due date ties
        found.append(
            add_finding(
                conn,
                "web-2",
                "payments",
                "low",
                [(ago(20 - i % 20), "open")],
                due_date=today + timedelta(days=5 + i % 7),
            )
        )
    for asset_id, days in (("web-1", 1), ("db-1", 1), ("web-2", 10)):
        nmap_run(conn, asset_id, [], ago(days), {"ports": "1-1024"})
    add_blind_spot(conn, "10.0.9.1", ago(12))
    add_blind_spot(conn, "10.0.9.2", ago(12), resolved_at=ago(3))
    add_approval(conn, ago(5))
    add_approval(conn, ago(9), decided=ago(4))
    blobs = ObjectStorageBlobStore(blob_base)
    report_ids, report_bytes = [], {}
    for kind, media_type, name, content in (
        ("posture", "text/html", "posture.html", b"<html><body>posture</body></html>"),
        ("poam", "text/csv", "poam.csv", b"id,title\n1,weak TLS\n"),
    ):
        stored = blobs.put(f"reports/{kind}/{today:%Y/%m/%d}/{name}", content)
        report_id = reports.record_report(
            conn,
            kind,
            media_type,
            today - timedelta(days=29),
            today,
            stored.uri,
            stored.sha256,
            stored.size,
            "d" * 64,
            now - timedelta(hours=1),
        )
        report_ids.append(report_id)
        report_bytes[report_id] = content
    conn.commit()
    refresh(conn, ScanConfig(engines=["nmap"]), now, backfill_days=45)
    return Estate(now, found, report_ids, report_bytes, kev, hostile)

"""``make demo``: the whole loop on the demo estate, on real Airflow and PostgreSQL.

It prepares an Airflow home and two databases (Airflow's metadata and autosec's store) on the
local PostgreSQL, starts the demo services and the ticketing stand-in on loopback, pushes the
teams' Trivy report to the drop folder, runs the stage DAGs in loop order with ``dag.test()``
(intelligence feeds, inventory, discovery, scan, report imports, triage, remediate, report),
approves the pending gates as a named demo approver, and prints what the loop found and where
the reports are.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO_ROOT / "dags"
LOOP_ORDER = (
    "intel_feeds",
    "inventory_sync",
    "discovery",
    "scan",
    "imports",
    "triage",
    "remediate",
    "report",
)
# Reports the demo's teams push to the drop folder before each loop (their CI's Trivy scan).
DEMO_REPORTS = Path(__file__).with_name("reports")
DEMO_APPROVER = "secops-lead"
DEMO_ESTATE = Path(__file__).with_name("estate.yaml")
# Demo-only UI logins, kept in the demo's own work folder.
DEMO_UI_USERS = {"admin": "admin", DEMO_APPROVER: "approve-demo"}
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class DemoEnvironment:
    workdir: Path
    admin_url: str
    store_db: str
    airflow_db: str
    ticketing_url: str
    ticketing_token: str
    estate: Path = DEMO_ESTATE
    chat_url: str | None = None

    @property
    def drop_folder(self) -> Path:
        return self.workdir / "drop"

    @property
    def passwords_file(self) -> Path:
        return self.workdir / "ui-passwords.json"

    @property
    def store_url(self) -> str:
        return _with_database(self.admin_url, self.store_db)

    @property
    def airflow_url(self) -> str:
        return _with_database(self.admin_url, self.airflow_db).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )

    def variables(self) -> dict[str, str]:
        """The environment Airflow and autosec read: the same for the demo run and the UI."""
        host = self.ticketing_url.split("://", 1)[1]
        return {
            "AIRFLOW_HOME": str(self.workdir / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_url,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{DEMO_APPROVER}:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_AUTOSEC_DB": self.store_url,
            "AIRFLOW_CONN_AUTOSEC_TICKETING": f"http://:{self.ticketing_token}@{host}",
            "AUTOSEC_DATABASE_URL": self.store_url,
            "AUTOSEC_DATA_DIR": (self.workdir / "data").resolve().as_uri(),
            "AUTOSEC_ESTATE": str(self.estate),
            "AUTOSEC_DROP_FOLDER": str(self.drop_folder),
        } | (
            {
                "AIRFLOW_CONN_AUTOSEC_NOTIFY": json.dumps(
                    {"conn_type": "http", "password": self.chat_url}
                )
            }
            if self.chat_url
            else {}
        )


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


def prepare(env: DemoEnvironment) -> None:
    """Create the databases, migrate both schemas, create the scanner pool."""
    from autosec.airflow.local_run import prepare_metadata_db
    from autosec.store import db

    env.workdir.mkdir(parents=True, exist_ok=True)
    for name in (env.store_db, env.airflow_db):
        db.create_database(env.admin_url, name)
    db.upgrade(env.store_url)
    prepare_metadata_db({**os.environ, **env.variables()})
    if not env.passwords_file.exists():
        env.passwords_file.write_text(json.dumps(DEMO_UI_USERS))
    (env.workdir / "airflow.env").write_text(
        "".join(f"export {k}='{v}'\n" for k, v in sorted(env.variables().items()))
    )


class AutoApprover(threading.Thread):
    """Stands in for the approver: approves each pending request once, by name, with the CLI."""

    def __init__(self, store_url: str, approver: str, reason: str, poll: float = 1.0) -> None:
        super().__init__(name="autosec-demo-approver", daemon=True)
        self.store_url, self.approver, self.reason, self.poll = store_url, approver, reason, poll
        self.approved: list[int] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        from autosec.cli import main as autosec
        from autosec.store import approvals, db

        while not self._stop_event.is_set():
            with db.connect(self.store_url) as conn:
                pending = [
                    r
                    for r in approvals.list_approvals(conn, "pending")
                    if r["id"] not in self.approved
                ]
            for row in pending:
                code = autosec(
                    [
                        "--database-url",
                        self.store_url,
                        "approvals",
                        "approve",
                        str(row["id"]),
                        "--as",
                        self.approver,
                        "--reason",
                        self.reason,
                    ]
                )
                self.approved.append(row["id"])
                if code != 0:
                    self.errors.append(f"approval {row['id']}: exit {code}")
            self._stop_event.wait(self.poll)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def run_loop(
    env: DemoEnvironment,
    approver: str = DEMO_APPROVER,
    log_path: Path | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Run the stages in loop order; the approver clears gates while remediate waits."""
    push_demo_reports(env.drop_folder)
    result_file = env.workdir / "loop-result.json"
    result_file.unlink(missing_ok=True)
    log_path = log_path or env.workdir / "loop.log"
    auto = AutoApprover(env.store_url, approver, "demo: reviewed the finding and the ticket text")
    auto.start()
    try:
        with log_path.open("w") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, this interpreter
                [
                    sys.executable,
                    "-m",
                    "autosec.airflow.local_run",
                    str(DAGS_FOLDER),
                    *LOOP_ORDER,
                    "--result-file",
                    str(result_file),
                    "--conf",
                    'scan={"full": true}',
                ],
                env={**os.environ, **env.variables()},
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            for line in process.stdout:
                log.write(line)
                if line.startswith("autosec-stage "):
                    _, dag_id, state, seconds = line.split()
                    echo(f"  {dag_id:<15} {state:<8} {seconds:>7}")
            process.wait()
    finally:
        auto.stop()
    if not result_file.exists():
        raise RuntimeError(f"the loop stopped early (exit {process.returncode}): see {log_path}")
    return json.loads(result_file.read_text())


def push_demo_reports(drop_folder: Path) -> list[Path]:
    """Put the teams' reports into the drop folder, as their CI would (already settled)."""
    from autosec.stages.imports import INCOMING

    incoming = drop_folder / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    pushed = []
    settled = time.time() - 60
    for report in sorted(DEMO_REPORTS.glob("*.json")):
        target = incoming / report.name
        shutil.copyfile(report, target)
        os.utime(target, (settled, settled))
        pushed.append(target)
    return pushed


def summary(store_url: str) -> dict:
    from autosec.store import db

    with db.connect(store_url) as conn:

        def rows(query: str) -> list[tuple]:
            return conn.execute(query).fetchall()

        return {
            "assets": rows("SELECT status, count(*) FROM assets GROUP BY 1 ORDER BY 1"),
            "blind_spots": rows(
                "SELECT CASE WHEN port = 0 THEN address ELSE address || ':' || port END, "
                "source, owner FROM blind_spots WHERE status = 'open' ORDER BY 1"
            ),
            "findings": rows(
                "SELECT severity, count(*) FROM findings WHERE status IN ('open', 'reopened') "
                "GROUP BY 1 ORDER BY 1"
            ),
            "actions": rows(
                "SELECT action, status, count(*) FROM actions GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            "approvals": rows(
                "SELECT a.id, a.status, d.approver, d.reason FROM approvals a "
                "LEFT JOIN approval_decisions d ON d.approval_id = a.id ORDER BY a.id"
            ),
            "reports": rows(
                "SELECT kind, path, sha256 FROM reports WHERE created_at = "
                "(SELECT max(created_at) FROM reports) ORDER BY kind"
            ),
            "rejections": rows("SELECT stage, location, reason FROM input_rejections ORDER BY id"),
        }


def print_summary(data: dict, env: DemoEnvironment) -> None:
    print("\nautosec demo: what the loop did")
    print("  assets:      " + ", ".join(f"{n} {s}" for s, n in data["assets"]))
    print(f"  blind spots: {len(data['blind_spots'])}")
    for address, source, owner in data["blind_spots"]:
        print(f"    {address}  found by {source}, assigned to {owner or '(nobody yet)'}")
    print(
        "  open findings by severity: "
        + (", ".join(f"{s} {n}" for s, n in data["findings"]) or "none")
    )
    print("  actions:     " + (", ".join(f"{a} {s} {n}" for a, s, n in data["actions"]) or "none"))
    for approval_id, status, approver, reason in data["approvals"]:
        print(f"  approval #{approval_id}: {status} by {approver} ({reason})")
    print(f"  rejected input: {len(data['rejections'])}")
    print("  reports:")
    for kind, path, sha in data["reports"]:
        print(f"    {kind}: {path}\n      sha256 {sha}")
    print(
        "\nOpen the Airflow UI on the same data (user admin, password admin):\n"
        f"  make ui        # = . {env.workdir}/airflow.env && airflow standalone, then http://localhost:8080"
    )


def run_demo(workdir: Path) -> int:
    from autosec.demo.chat import ChatServer
    from autosec.demo.services import DemoEstate
    from autosec.demo.ticketing import TicketingServer

    admin_url = os.environ.get("AUTOSEC_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL)
    from autosec.store.db import unreachable

    problem = unreachable(admin_url)
    if problem:
        print(
            f"PostgreSQL is not reachable at {admin_url}: {problem}\n"
            "Start the local server (pg_ctlcluster 15 main start) or point "
            "AUTOSEC_ADMIN_DATABASE_URL at one where this user may create databases.",
            file=sys.stderr,
        )
        return 2
    token = secrets.token_urlsafe(16)
    workdir = workdir.resolve()
    with (
        TicketingServer(token=token, store_path=workdir / "tickets.json") as ticketing,
        ChatServer() as chat,
    ):
        env = DemoEnvironment(
            workdir,
            admin_url,
            "autosec_demo",
            "autosec_demo_airflow",
            ticketing.url,
            token,
            chat_url=chat.url,
        )
        print(f"preparing {workdir} (store {env.store_db}, Airflow metadata {env.airflow_db})")
        prepare(env)
        with DemoEstate():
            print("running the loop:")
            states = run_loop(env)
        print_summary(summary(env.store_url), env)
        received = len(ticketing.tickets())
        print(f"  tickets received by the ticketing API at {ticketing.url}: {received}")
        print(
            f"  chat messages received: {len(chat.messages())} "
            "(approval requests with their link, and the event digest)"
        )
        for message in chat.messages()[:3]:
            print("    " + message["text"].replace("\n", "\n    "))
    failed = [d for d, s in states.items() if s["state"] != "success"]
    if failed:
        print(f"\nstages that did not succeed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

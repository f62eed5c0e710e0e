"""Fault: the worker dies after the ticket was filed and before the ledger heard of it.

A child process runs ``apply_planned`` against a gateway in front of the ticketing API. The
gateway forwards the POST (the ticket now exists), signals, and holds the answer back; the test
SIGKILLs the child right then. The ledger row was never updated. The retry (``apply_planned``
again, as Airflow's task retry would) must end with exactly one ticket and one applied action.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from autosec.domain.models import Severity
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.remediate import apply_planned, decide_findings
from support.http import LoopbackServer, QuietHandler, serving

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)

CHILD = """
import sys
from datetime import datetime

import requests

from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.remediate import apply_planned
from autosec.store import db

url, base, token, action_id, now = sys.argv[1:]
actions = {"ticket": TicketAction(TicketEndpoint(base, token=token, timeout=60))}
with db.connect(url) as conn, requests.Session() as session:
    apply_planned(conn, [int(action_id)], actions, session, datetime.fromisoformat(now))
print("recorded")
"""


class _HoldingGateway(LoopbackServer):
    """Forwards to the ticketing API. The first ticket POST is forwarded, then ``received`` is
    set and the answer is held until ``release`` (the caller is killed meanwhile)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.received = threading.Event()
        self.release = threading.Event()
        self.held = False
        self.seen: list[tuple[str, str, int]] = []
        super().__init__(_HoldingHandler)


class _HoldingHandler(QuietHandler):
    server: _HoldingGateway
    protocol_version = "HTTP/1.1"

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream = requests.request(
            method, self.server.upstream + self.path, data=body, headers=headers, timeout=10
        )
        self.server.seen.append((method, self.path.split("?")[0], upstream.status_code))
        if method == "POST" and self.path == "/api/tickets" and not self.server.held:
            self.server.held = True
            self.server.received.set()
            self.server.release.wait(30)
        try:
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)
        except OSError:  # the caller was killed while the answer was held
            self.close_connection = True

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")


@pytest.fixture
def gateway(ticketing):
    with serving(_HoldingGateway(ticketing.url)) as server:
        try:
            yield server
        finally:
            server.release.set()


def _backends(conn, application_name: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
    ).fetchone()
    conn.commit()
    return int(row[0])


def test_killed_between_apply_and_record_the_retry_applies_exactly_once(
    estate, store_url, ticketing, gateway, ticket_token
) -> None:
    conn = estate.conn
    estate.scan("runner", {8080: Severity.MEDIUM}, T0)
    plan = decide_findings(conn, estate.policy, T0, requester="autosec-scheduler")
    [action_id] = plan.apply_now
    finding_id = estate.finding("runner", 8080)["id"]
    application_name = f"autosec-fault-{secrets.token_hex(4)}"
    child_url = f"{store_url}?application_name={application_name}"
    argv = [sys.executable, "-c", CHILD, child_url, gateway.url, ticket_token, str(action_id)]
    child = subprocess.Popen(
        [*argv, T0.isoformat()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if not gateway.received.wait(30):
            child.kill()
            pytest.fail(f"the child never sent the ticket: {child.communicate()[1][-2000:]}")
        # The ticket exists on the server; the ledger has not recorded it.
        assert len(ticketing.tickets()) == 1
        assert estate.action(finding_id)["status"] == "planned"
        conn.commit()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        gateway.release.set()
        if child.poll() is None:
            child.kill()
            child.wait(10)
    out, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert "recorded" not in out
    # The dead worker's transaction is rolled back (and its row lock released) once its
    # backend notices; wait for that rather than race it.
    deadline = time.monotonic() + 10
    while _backends(conn, application_name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _backends(conn, application_name) == 0
    assert estate.action(finding_id)["status"] == "planned"

    # The retry: the same ids, the same action, a fresh session.
    actions = {"ticket": TicketAction(TicketEndpoint(gateway.url, token=ticket_token, timeout=10))}
    with requests.Session() as session:
        later = T0 + timedelta(minutes=5)
        counts = apply_planned(conn, [action_id], actions, session, later)
        again = apply_planned(conn, [action_id], actions, session, later)

    assert counts == {"applied": 1, "reviews_opened": 1}
    assert again == {}
    [ticket] = ticketing.tickets()
    action = estate.action(finding_id)
    assert action["id"] == action_id
    assert (action["status"], action["external_ref"]) == ("applied", ticket["key"])
    assert ticket["external_id"] == action["idempotency_key"].strip()
    # The retry found the ticket the dead worker filed instead of opening another.
    assert action["result"]["detail"]["duplicate"] is True
    assert [(m, p, s) for m, p, s in gateway.seen] == [
        ("POST", "/api/tickets", 201),
        ("POST", "/api/tickets", 409),
        ("GET", "/api/tickets", 200),
    ]
    rows = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'applied') FROM actions "
        "WHERE finding_id = %s",
        (finding_id,),
    ).fetchone()
    assert rows == (1, 1)

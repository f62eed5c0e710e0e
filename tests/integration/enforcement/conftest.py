"""What the enforcement tests share: an estate, a policy, the ticketing API, a seeding helper.

Findings reach the store through the real path (inventory -> scan run -> triage), so every
query sees rows shaped exactly as production writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from psycopg.rows import dict_row

from autosec.config.policy import LoadedPolicy, load_policy
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Severity,
)
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.triage import triage_runs
from support.store import nmap_run, port_finding, sync_inventory

TOKEN = "enforcement-test-token"
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
DEFAULT_POLICY = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"

ASSETS = (
    # Allowlisted, low criticality: rules that require the allowlist act on it at once.
    Asset(
        "runner",
        "runner",
        AssetKind.HOST,
        "cmdb",
        "team-ci",
        Environment.DEVELOPMENT,
        Criticality.LOW,
        ("127.0.0.21",),
    ),
    # Production: approval gates apply unless break glass suspends them.
    Asset(
        "web",
        "web",
        AssetKind.WEB_APP,
        "cmdb",
        "team-web",
        Environment.PRODUCTION,
        Criticality.HIGH,
        ("127.0.0.22",),
    ),
)
HOSTS = {a.id: a.addresses[0] for a in ASSETS}

# on_the_loop tickets on the allowlisted runner; production gated; break glass lifts the gate.
ENFORCEMENT_POLICY = """\
version: "enforcement-1"
enforcement:
  auto_action_allowlist: [runner]
  fallback_approvers: [secops-lead]
  rules:
    - id: prod-gate
      match: {environments: [production]}
      action: ticket
      mode: in_the_loop
      approvers: [ciso]
    - id: ticket-on-the-loop
      match: {min_severity: medium}
      action: ticket
      mode: on_the_loop
      approvers: [alice, bob]
      quorum: 1
      approval_expiry_hours: 24
      requires: {allowlisted: true}
    - id: record-the-rest
      action: none
break_glass:
  who: [ciso, group:incident]
  max_minutes: 30
  suspends: [prod-gate]
"""


class CountingSession(requests.Session):
    """A real HTTP session that remembers each request's method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.calls.append((method.upper(), requests.utils.urlparse(url).path))
        return super().request(method, url, *args, **kwargs)

    def closes(self) -> int:
        return sum(1 for m, p in self.calls if m == "POST" and p.endswith("/close"))


@dataclass
class Estate:
    """Seeds the store: the inventory once, then scan runs that triage takes in."""

    conn: object
    policy: LoadedPolicy

    def scan(
        self,
        asset_id: str,
        found: dict[int, Severity],
        at: datetime,
        status: str = "succeeded",
        ports: tuple[int, ...] = (),
    ) -> int:
        """One nmap run over ``asset_id`` reporting ``found`` (port -> severity), triaged."""
        host = HOSTS[asset_id]
        observations = [
            port_finding(asset_id, host, port, severity, "nmap.open-port", f"port {port} open")
            for port, severity in found.items()
        ]
        scope = {"targets": [host], "ports": list(ports)}
        run = nmap_run(self.conn, asset_id, observations, at, scope, status)
        triage_runs(self.conn, self.policy.policy.patching.days_by_severity(), at)
        return run

    def finding(self, asset_id: str, port: int) -> dict:
        row = self.conn.execute(
            "SELECT id, fingerprint, status FROM findings WHERE asset_id = %s "
            "AND (location->>'port')::int = %s",
            (asset_id, port),
        ).fetchone()
        return {"id": row[0], "fingerprint": row[1].strip(), "status": row[2]}

    def action(self, finding_id: int) -> dict:
        return (
            self.conn.cursor(row_factory=dict_row)
            .execute("SELECT * FROM actions WHERE finding_id = %s AND NOT dry_run", (finding_id,))
            .fetchone()
        )

    def events(self, name: str) -> list[tuple[str, dict]]:
        return [
            (subject, payload)
            for subject, payload in self.conn.execute(
                "SELECT subject, payload FROM events WHERE name = %s ORDER BY id", (name,)
            ).fetchall()
        ]


@pytest.fixture
def enforcement_policy(tmp_path: Path) -> LoadedPolicy:
    path = tmp_path / "policy.yaml"
    path.write_text(ENFORCEMENT_POLICY)
    return load_policy(path)


@pytest.fixture
def default_policy() -> LoadedPolicy:
    return load_policy(DEFAULT_POLICY)


def _estate(conn, policy: LoadedPolicy) -> Estate:
    sync_inventory(conn, ASSETS, T0)
    return Estate(conn, policy)


@pytest.fixture
def estate(conn, enforcement_policy) -> Estate:
    return _estate(conn, enforcement_policy)


@pytest.fixture
def default_estate(conn, default_policy) -> Estate:
    return _estate(conn, default_policy)


@pytest.fixture
def ticketing() -> Iterator[TicketingServer]:
    with TicketingServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def ticket_token() -> str:
    return TOKEN


@pytest.fixture
def session() -> Iterator[CountingSession]:
    with CountingSession() as s:
        yield s


@pytest.fixture
def actions(ticketing) -> dict[str, TicketAction]:
    return {"ticket": TicketAction(TicketEndpoint(ticketing.url, token=TOKEN, timeout=5))}

"""The remediate stage end to end: the policy decides, the gate holds, tickets are filed once.

Runs against the real store and the demo ticketing API over HTTP, with findings seeded through
the real inventory -> scan -> triage path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autosec.config.policy import LoadedPolicy, load_policy
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Observation,
    Severity,
)
from autosec.remediation.actions.base import idempotency_key
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.remediate import ActionsFailed, apply_after_gate, apply_planned, decide_findings
from autosec.stages.triage import triage_runs
from autosec.store import approvals
from support.http import Forward, ForwardingGateway, failure, serving
from support.store import nmap_run, port_finding, sync_inventory

pytestmark = pytest.mark.integration
POLICY_PATH = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"
TOKEN = "ticketing-test-token"
REQUESTER = "autosec-scheduler"
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)

ASSETS = (
    # Production web app: high findings need an approved ticket (rule 1).
    Asset(
        "web",
        "web",
        AssetKind.WEB_APP,
        "cmdb",
        "team-web",
        Environment.PRODUCTION,
        Criticality.HIGH,
        ("127.0.0.11",),
    ),
    # Allowlisted, low criticality: medium and low findings are ticketed at once (rules 2, 3).
    Asset(
        "build-runner",
        "build-runner",
        AssetKind.HOST,
        "cmdb",
        "team-ci",
        Environment.DEVELOPMENT,
        Criticality.LOW,
        ("127.0.0.12",),
    ),
    # Not allowlisted: rule 2 fails closed to an approval by the fallback approvers.
    Asset(
        "db",
        "db",
        AssetKind.DATABASE,
        "cmdb",
        "team-data",
        Environment.STAGING,
        Criticality.MEDIUM,
        ("127.0.0.13",),
    ),
)
HOSTS = {a.id: a.addresses[0] for a in ASSETS}
# (asset, port, severity) -> the rule of the default policy that must decide it.
FINDINGS = {
    ("web", 443, Severity.HIGH): "prod-high-ticket-approval",
    ("build-runner", 8080, Severity.MEDIUM): "ticket-medium-up",
    ("build-runner", 22, Severity.LOW): "low-ticket",
    ("build-runner", 9100, Severity.INFO): "info-record-only",
    ("db", 5432, Severity.MEDIUM): "ticket-medium-up",
}


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(POLICY_PATH)


@pytest.fixture
def ticketing() -> Iterator[TicketingServer]:
    with TicketingServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _actions(url: str) -> dict[str, TicketAction]:
    return {"ticket": TicketAction(TicketEndpoint(url, token=TOKEN, timeout=5))}


def _seed(conn, policy: LoadedPolicy, findings=FINDINGS) -> dict[str, int]:
    """Inventory, one scan run per asset, triage: returns finding ids by '<asset>:<port>'."""
    sync_inventory(conn, ASSETS, T0)
    by_asset: dict[str, list[Observation]] = {}
    for asset_id, port, severity in findings:
        by_asset.setdefault(asset_id, []).append(
            port_finding(
                asset_id,
                HOSTS[asset_id],
                port,
                severity,
                f"nmap.test-{severity.value}",
                f"{severity.value} weakness on {port}",
            )
        )
    for asset_id, observations in by_asset.items():
        nmap_run(conn, asset_id, observations, T0, {"targets": [HOSTS[asset_id]]})
    triage_runs(conn, policy.policy.patching.days_by_severity(), T0)
    rows = conn.execute("SELECT id, asset_id, (location->>'port')::int FROM findings").fetchall()
    return {f"{asset}:{port}": fid for fid, asset, port in rows}


def _count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def _action(conn, finding_id: int) -> dict:
    row = conn.execute(
        "SELECT id, status, idempotency_key, approval_id, external_ref, dry_run, result "
        "FROM actions WHERE finding_id = %s AND NOT dry_run",
        (finding_id,),
    ).fetchone()
    keys = ("id", "status", "key", "approval_id", "external_ref", "dry_run", "result")
    return dict(zip(keys, row, strict=True)) if row else {}


def test_decide_gate_apply_once(conn, policy, ticketing, session) -> None:
    ids = _seed(conn, policy)
    actions = _actions(ticketing.url)

    plan = decide_findings(conn, policy, T0, requester=REQUESTER, run_ref="remediate/1")

    # Every open finding is decided, by the rule the default policy says, under its hash.
    assert plan.decisions == len(FINDINGS)
    decisions = conn.execute(
        "SELECT finding_id, rule_id, action, mode, policy_hash, policy_version, run_ref, dry_run, "
        "inputs->>'policy_hash' FROM policy_decisions ORDER BY finding_id"
    ).fetchall()
    rule_by_finding = {ids[f"{a}:{p}"]: rule for (a, p, _), rule in FINDINGS.items()}
    assert {d[0]: d[1] for d in decisions} == rule_by_finding
    assert {d[4] for d in decisions} == {d[8] for d in decisions} == {policy.sha256}
    assert {d[5] for d in decisions} == {policy.version}
    assert {(d[6], d[7]) for d in decisions} == {("remediate/1", False)}
    modes = {d[0]: (d[2], d[3]) for d in decisions}
    assert modes[ids["build-runner:9100"]] == ("none", "out_of_loop")
    assert modes[ids["build-runner:8080"]] == ("ticket", "out_of_loop")
    assert modes[ids["db:5432"]] == ("ticket", "in_the_loop")  # failed closed

    # Info is recorded only; the allowlisted runner acts now; web and db wait at the gate.
    assert _action(conn, ids["build-runner:9100"]) == {}
    now_ids = sorted(_action(conn, ids[k])["id"] for k in ("build-runner:8080", "build-runner:22"))
    assert sorted(plan.apply_now) == now_ids
    web, db = _action(conn, ids["web:443"]), _action(conn, ids["db:5432"])
    assert web["status"] == db["status"] == "awaiting_approval"
    assert sorted(plan.approval_ids) == sorted([web["approval_id"], db["approval_id"]])
    gates = {r["id"]: r for r in approvals.list_approvals(conn) if r["id"] in plan.approval_ids}
    assert gates[web["approval_id"]]["approvers"] == ["secops-lead", "ciso"]
    assert gates[web["approval_id"]]["rule_id"] == "prod-high-ticket-approval"
    assert gates[db["approval_id"]]["approvers"] == ["secops-lead", "group:secops"]
    assert {g["requester"] for g in gates.values()} == {REQUESTER}
    assert {g["policy_hash"] for g in gates.values()} == {policy.sha256}
    assert ticketing.tickets() == []  # deciding sends nothing

    counts = apply_planned(conn, plan.apply_now, actions, session, T0)

    assert counts == {"applied": 2}
    tickets = ticketing.tickets()
    assert len(tickets) == 2
    applied = [_action(conn, ids[k]) for k in ("build-runner:8080", "build-runner:22")]
    assert sorted(t["external_id"] for t in tickets) == sorted(a["key"] for a in applied)
    assert {a["status"] for a in applied} == {"applied"}
    assert sorted(a["external_ref"] for a in applied) == sorted(t["key"] for t in tickets)
    fingerprint = conn.execute(
        "SELECT fingerprint FROM findings WHERE id = %s", (ids["build-runner:8080"],)
    ).fetchone()[0]
    assert applied[0]["key"] == idempotency_key(fingerprint, "ticket", policy.sha256)
    assert {t["assignee"] for t in tickets} == {"team-ci"}

    # A re-run decides nothing new, and re-applying the same ids sends nothing.
    before = {t: _count(conn, t) for t in ("policy_decisions", "actions", "approvals")}
    again = decide_findings(conn, policy, T0 + timedelta(hours=1), requester=REQUESTER)
    assert (again.decisions, again.apply_now, again.approval_ids) == (0, [], [])
    assert {t: _count(conn, t) for t in before} == before
    assert apply_planned(conn, plan.apply_now, actions, session, T0) == {}
    assert len(ticketing.tickets()) == 2

    # While the gate is pending nothing behind it is applied.
    assert apply_after_gate(conn, plan.approval_ids, actions, session, T0) == {}
    assert len(ticketing.tickets()) == 2
    assert _action(conn, ids["web:443"])["status"] == "awaiting_approval"

    decided_at = T0 + timedelta(hours=2)
    approvals.decide(conn, web["approval_id"], "ciso", "approve", "file it", decided_at)
    approvals.decide(
        conn, db["approval_id"], "secops-lead", "reject", "staging, tracked elsewhere", decided_at
    )
    counts = apply_after_gate(conn, plan.approval_ids, actions, session, decided_at)

    assert counts == {"applied": 1, "rejected": 1}
    web, db = _action(conn, ids["web:443"]), _action(conn, ids["db:5432"])
    assert (web["status"], db["status"]) == ("applied", "rejected")
    tickets = ticketing.tickets()
    assert len(tickets) == 3
    assert next(t for t in tickets if t["external_id"] == web["key"])["assignee"] == "team-web"
    assert not [t for t in tickets if t["external_id"] == db["key"]]
    assert db["external_ref"] is None

    # Running the gate's follow-up again (a retried task) files nothing more.
    assert apply_after_gate(conn, plan.approval_ids, actions, session, decided_at) == {}
    assert len(ticketing.tickets()) == 3


def test_dry_run_records_everything_and_does_not_block_the_real_run(
    conn, policy, ticketing, session
) -> None:
    ids = _seed(conn, policy)
    actions = _actions(ticketing.url)

    dry = decide_findings(conn, policy, T0, requester=REQUESTER, dry_run=True)

    assert dry.decisions == len(FINDINGS)
    assert dry.approval_ids == []  # a dry run opens no gate
    assert _count(conn, "approvals") == 0
    assert conn.execute("SELECT DISTINCT dry_run FROM policy_decisions").fetchall() == [(True,)]
    assert len(dry.apply_now) == 4  # every acting decision, gated or not, is only recorded
    assert apply_planned(conn, dry.apply_now, actions, session, T0) == {"dry_run": 4}
    assert conn.execute("SELECT DISTINCT status, dry_run FROM actions").fetchall() == [
        ("dry_run", True)
    ]
    assert ticketing.tickets() == []

    # Another dry run decides nothing again; a real run still decides and acts.
    assert decide_findings(conn, policy, T0, requester=REQUESTER, dry_run=True).decisions == 0
    real = decide_findings(conn, policy, T0 + timedelta(hours=1), requester=REQUESTER)

    assert real.decisions == len(FINDINGS)
    assert len(real.apply_now) == 2 and len(real.approval_ids) == 2
    assert apply_planned(conn, real.apply_now, actions, session, T0) == {"applied": 2}
    tickets = ticketing.tickets()
    runner_keys = {_action(conn, ids[k])["key"] for k in ("build-runner:8080", "build-runner:22")}
    assert {t["external_id"] for t in tickets} == runner_keys
    assert _count(conn, "actions") == 8  # four dry-run rows beside four real ones


# --- a ticketing API that fails ----------------------------------------------------------------


class _Gateway(ForwardingGateway):
    """In front of the ticketing API. ``mode``: "down" answers 500 and forwards nothing;
    "lost" forwards, then answers 500 anyway (the ticket exists, the answer is lost); "up"
    forwards and passes the answer on."""

    def __init__(self, upstream: str) -> None:
        self.mode = "down"
        self.seen: list[tuple[str, str, str]] = []
        super().__init__(upstream)

    def answer(self, method: str, path: str, forward: Forward) -> tuple[int, bytes]:
        self.seen.append((method, path, self.mode))
        if self.mode == "down":
            return failure("upstream unavailable")
        forwarded = forward()
        return forwarded if self.mode == "up" else failure("upstream unavailable")


@pytest.fixture
def gateway(ticketing) -> Iterator[_Gateway]:
    with serving(_Gateway(ticketing.url)) as server:
        yield server


def test_a_failing_ticketing_api_fails_the_action_and_a_retry_files_it_once(
    conn, policy, ticketing, gateway, session
) -> None:
    ids = _seed(conn, policy, {("build-runner", 8080, Severity.MEDIUM): "ticket-medium-up"})
    actions = _actions(gateway.url)
    plan = decide_findings(conn, policy, T0, requester=REQUESTER)
    [action_id] = plan.apply_now

    with pytest.raises(ActionsFailed, match=rf"action {action_id} \(ticket\).*500"):
        apply_planned(conn, plan.apply_now, actions, session, T0)
    failed = _action(conn, ids["build-runner:8080"])
    assert failed["status"] == "failed" and failed["external_ref"] is None
    assert failed["result"]["detail"]["http_status"] == 500
    assert ticketing.tickets() == []

    # The API created the ticket but the answer was lost: still failed in the ledger.
    gateway.mode = "lost"
    with pytest.raises(ActionsFailed):
        apply_planned(conn, plan.apply_now, actions, session, T0)
    assert _action(conn, ids["build-runner:8080"])["status"] == "failed"
    assert len(ticketing.tickets()) == 1

    # Once it answers, the retry finds that ticket instead of opening a second one.
    gateway.mode = "up"
    assert apply_planned(conn, plan.apply_now, actions, session, T0) == {"applied": 1}
    [ticket] = ticketing.tickets()
    done = _action(conn, ids["build-runner:8080"])
    assert (done["status"], done["external_ref"]) == ("applied", ticket["key"])
    assert ticket["external_id"] == done["key"]
    assert done["result"]["detail"]["duplicate"] is True

    requests_before = len(gateway.seen)
    assert apply_planned(conn, plan.apply_now, actions, session, T0) == {}
    assert len(gateway.seen) == requests_before
    assert [(m, p) for m, p, _ in gateway.seen] == [
        ("POST", "/api/tickets"),
        ("POST", "/api/tickets"),
        ("POST", "/api/tickets"),
        ("GET", "/api/tickets"),
    ]
    assert len(ticketing.tickets()) == 1


def test_an_expired_gate_counts_as_rejected(conn, policy, ticketing, session) -> None:
    ids = _seed(conn, policy, {("web", 443, Severity.HIGH): "prod-high-ticket-approval"})
    plan = decide_findings(conn, policy, T0, requester=REQUESTER)
    [approval_id] = plan.approval_ids
    late = T0 + timedelta(hours=73)  # the rule's requests expire after 72 hours

    assert approvals.expire_due(conn, plan.approval_ids, late) == [approval_id]
    counts = apply_after_gate(conn, plan.approval_ids, _actions(ticketing.url), session, late)

    assert counts == {"rejected": 1}
    assert _action(conn, ids["web:443"])["status"] == "rejected"
    assert ticketing.tickets() == []

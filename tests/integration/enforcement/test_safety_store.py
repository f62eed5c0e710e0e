"""The safety rules, end to end in the store: generated estates and findings go through
decide_findings, the approval gate and apply against a real ticketing API.

Whatever the estate and whatever the approvers do, every action applied on a production or
business-critical asset has an approved request whose quorum of approvals was recorded before
the action was applied, and nothing gated but not approved ever reaches the ticketing API.
Even a policy that allowlists every asset and acts automatically on all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from autosec.config.policy import GROUP_PREFIX, LoadedPolicy, load_policy
from autosec.demo.ticketing import TicketingServer
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.stages.remediate import ActionsFailed, apply_after_gate, apply_planned, decide_findings
from autosec.stages.triage import triage_runs
from autosec.store import approvals, inventory, scans

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
TOKEN = "safety-store-token"
REQUESTER = "autosec-scheduler"
HOSTS = [f"h{i}" for i in range(5)]
DEFAULT_POLICY = Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml"

# Every asset allowlisted, every rule automatic: only the engine's protection of production
# and business-critical assets (no rule names them) keeps a human in the loop there.
EAGER_POLICY = f"""\
version: "eager-1"
enforcement:
  auto_action_allowlist: [{", ".join(HOSTS)}]
  fallback_approvers: [secops-lead, group:secops]
  rules:
    - id: critical-on-the-loop
      match: {{severities: [critical]}}
      action: ticket
      mode: on_the_loop
      approvers: [alice, bob]
      quorum: 2
      approval_expiry_hours: 24
      requires: {{allowlisted: true}}
    - id: the-rest-automatic
      match: {{min_severity: low}}
      action: ticket
      mode: out_of_loop
      requires: {{allowlisted: true, max_criticality: business_critical}}
    - id: info-record-only
      match: {{severities: [info]}}
      action: none
"""


@pytest.fixture(scope="module")
def loaded_policies(tmp_path_factory) -> dict[str, LoadedPolicy]:
    path = tmp_path_factory.mktemp("policies") / "eager.yaml"
    path.write_text(EAGER_POLICY)
    return {"default": load_policy(DEFAULT_POLICY), "eager": load_policy(path)}


@st.composite
def estates(draw: st.DrawFn) -> tuple[list[Asset], list[Observation]]:
    assets = []
    for index in range(draw(st.integers(2, len(HOSTS)))):
        assets.append(
            Asset(
                id=HOSTS[index],
                name=HOSTS[index],
                kind=AssetKind.HOST,
                source="cmdb",
                owner=f"team-{index}",
                environment=draw(st.sampled_from(Environment)),
                criticality=draw(st.sampled_from(Criticality)),
                addresses=(f"127.0.1.{index + 1}",),
            )
        )
    observations = []
    for asset in assets:
        ports = draw(
            st.lists(
                st.sampled_from([22, 80, 443, 5432, 8080]), unique=True, min_size=1, max_size=3
            )
        )
        for port in ports:
            severity = draw(st.sampled_from(Severity))
            observations.append(
                Observation(
                    asset.id,
                    "nmap",
                    f"nmap.test-{severity.value}",
                    f"{severity.value} weakness on {port}",
                    severity,
                    Location(host=asset.addresses[0], port=port, protocol="tcp"),
                )
            )
    return assets, observations


def _reset(conn) -> None:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'autosec_alembic_version'"
        )
    ]
    conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    conn.commit()


def _seed(conn, loaded: LoadedPolicy, assets: list[Asset], observations: list[Observation]):
    sync = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, sync, "cmdb", assets, T0)
    conn.commit()
    for asset in assets:
        mine = [o for o in observations if o.asset_id == asset.id]
        run = scans.start_scan_run(conn, "nmap", [asset.id], {"targets": []}, ["nmap"], T0)
        scans.add_observations(conn, run, mine)
        scans.finish_scan_run(conn, run, "succeeded", T0)
    triage_runs(conn, loaded.policy.patching.days_by_severity(), T0)


def _identities(approvers: list[str], count: int) -> list[tuple[str, list[str]]]:
    named = [(a, []) for a in approvers if not a.startswith(GROUP_PREFIX)]
    groups = [a[len(GROUP_PREFIX) :] for a in approvers if a.startswith(GROUP_PREFIX)]
    members = [(f"member-{i}", groups[:1]) for i in range(count)] if groups else []
    return (named + members)[:count]


def _decide_gates(conn, approval_ids: list[int], choices: list[str], at: datetime) -> None:
    for approval_id, choice in zip(approval_ids, choices, strict=False):
        [gate] = [r for r in approvals.list_approvals(conn) if r["id"] == approval_id][:1]
        if choice == "approve":
            for user, groups in _identities(gate["approvers"], gate["quorum"]):
                approvals.decide(conn, approval_id, user, "approve", None, at, groups)
        elif choice == "reject":
            user, groups = _identities(gate["approvers"], 1)[0]
            approvals.decide(conn, approval_id, user, "reject", "not now", at, groups)
        elif choice == "half" and gate["quorum"] > 1:  # short of the quorum: still pending
            user, groups = _identities(gate["approvers"], 1)[0]
            approvals.decide(conn, approval_id, user, "approve", None, at, groups)


def _apply(step, *args) -> None:
    try:
        step(*args)
    except ActionsFailed as exc:  # pragma: no cover - the API is up; a failure is a bug
        pytest.fail(f"an action failed against the ticketing API: {exc}")


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policy_name=st.sampled_from(["default", "eager"]),
    estate=estates(),
    # One choice per gate (approving is the interesting case, so it is the likeliest).
    choices=st.lists(
        st.sampled_from(["approve", "approve", "reject", "half", "leave"]), min_size=15, max_size=15
    ),
)
def test_nothing_is_applied_on_protected_assets_without_a_prior_approval(
    conn, loaded_policies, policy_name, estate, choices
) -> None:
    _reset(conn)
    loaded = loaded_policies[policy_name]
    assets, observations = estate
    _seed(conn, loaded, assets, observations)
    with TicketingServer(token=TOKEN) as ticketing, requests.Session() as session:
        actions = {"ticket": TicketAction(TicketEndpoint(ticketing.url, token=TOKEN, timeout=5))}

        plan = decide_findings(conn, loaded, T0, requester=REQUESTER)
        _apply(apply_planned, conn, plan.apply_now, actions, session, T0)
        _decide_gates(conn, plan.approval_ids, choices, T0 + timedelta(hours=1))
        _apply(apply_after_gate, conn, plan.approval_ids, actions, session, T0 + timedelta(hours=2))
        late = T0 + timedelta(days=30)
        approvals.expire_due(conn, plan.approval_ids, late)
        _apply(apply_after_gate, conn, plan.approval_ids, actions, session, late)
        tickets = {t["external_id"]: t for t in ticketing.tickets()}

    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT x.id, x.status, x.mode, x.idempotency_key, x.updated_at, x.approval_id, "
            "a.environment, a.criticality, a.id AS asset_id, d.rule_id, "
            "g.status AS gate_status, g.requester, g.quorum "
            "FROM actions x JOIN findings f ON f.id = x.finding_id "
            "JOIN assets a ON a.id = f.asset_id JOIN policy_decisions d ON d.id = x.decision_id "
            "LEFT JOIN approvals g ON g.id = x.approval_id WHERE NOT x.dry_run ORDER BY x.id"
        )
        .fetchall()
    )
    rules = {r.id: r for r in loaded.policy.enforcement.rules}
    applied_keys = set()
    for row in rows:
        key = row["idempotency_key"].strip()
        protected = row["environment"] == "production" or row["criticality"] == "business_critical"
        if row["status"] != "applied":
            assert key not in tickets, f"action {row['id']} is {row['status']} but was sent"
            continue
        applied_keys.add(key)
        if protected and not rules[row["rule_id"]].names_protected_assets:
            assert row["approval_id"] is not None, f"action {row['id']} on {row['asset_id']}"
            assert row["gate_status"] == "approved"
            approvers = {
                d["approver"].casefold()
                for d in approvals.decisions_for(conn, row["approval_id"])
                if d["decision"] == "approve" and d["decided_at"] <= row["updated_at"]
            }
            assert len(approvers) >= row["quorum"]
            assert row["requester"].casefold() not in approvers
    # What reached the ticketing API is exactly what the ledger says was applied.
    assert set(tickets) == applied_keys

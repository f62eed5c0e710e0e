"""remediate: the policy decides per finding; actions are planned, gated, applied, recorded.

Every request carries an idempotency key (finding fingerprint + action + policy hash), so a
retried or re-run task never acts twice. Dry run plans and records everything and applies
nothing; it opens no approval gate either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autosec.policy.engine import FindingFacts, decide
from autosec.remediation.actions.base import Action, ActionRequest
from autosec.remediation.registry import get_action
from autosec.store import approvals, findings, inventory
from autosec.store import remediation as ledger
from autosec.store.db import Connection


class ActionsFailed(RuntimeError):
    """Some actions could not be applied; they stay in the ledger as failed, to retry."""


@dataclass
class RemediationPlan:
    decisions: int = 0
    apply_now: list[int] = field(default_factory=list)
    approval_ids: list[int] = field(default_factory=list)


def decide_findings(
    conn: Connection,
    loaded_policy,
    now: datetime,
    requester: str,
    run_ref: str | None = None,
    dry_run: bool = False,
) -> RemediationPlan:
    plan = RemediationPlan()
    rows = findings.actionable_findings(
        conn, loaded_policy.sha256, dry_run=dry_run or loaded_policy.policy.enforcement.dry_run
    )
    assets = {
        a.id: a
        for a in inventory.load_assets(conn, {r["asset_id"] for r in rows}, active_only=False)
    }
    for row in rows:
        decision = decide(FindingFacts.from_row(row), assets[row["asset_id"]], loaded_policy)
        if dry_run and not decision.dry_run:
            decision = dataclasses.replace(
                decision,
                dry_run=True,
                reasons=[*decision.reasons, "dry run requested for this run"],
            )
        decision_id = ledger.record_decision(conn, row["id"], decision, now, run_ref)
        if decision_id is None:
            continue
        plan.decisions += 1
        if not decision.acts:
            continue
        request = get_action(decision.action)().plan(row, decision)
        action_id = ledger.record_action(conn, decision_id, row["id"], request, decision.mode, now)
        if action_id is None:
            continue
        if decision.needs_approval and not decision.dry_run:
            approval_id = approvals.create_approval(
                conn,
                requester=requester,
                approvers=decision.approvers,
                quorum=decision.quorum,
                summary=f"{decision.action}: {row['title']} on {row['asset_id']} "
                f"({row['severity']})",
                rule_id=decision.rule_id,
                policy_hash=decision.policy_hash,
                now=now,
                expiry_hours=decision.expiry_hours,
            )
            ledger.gate_action(conn, action_id, approval_id, now)
            plan.approval_ids.append(approval_id)
        else:
            plan.apply_now.append(action_id)
    conn.commit()
    return plan


def apply_planned(
    conn: Connection,
    action_ids: Sequence[int],
    actions: Mapping[str, Action],
    session: Any,
    now: datetime,
) -> dict[str, int]:
    """Apply planned actions; record every result; raise if any failed (after recording)."""
    counts: dict[str, int] = {}
    failures: list[str] = []
    for row in ledger.actions_to_apply(conn, action_ids):
        request = ActionRequest.from_dict(row["request"])
        result = actions[row["action"]].apply(request, session)
        ledger.record_result(conn, row["id"], result, now)
        conn.commit()
        counts[result.status] = counts.get(result.status, 0) + 1
        if not result.ok:
            failures.append(f"action {row['id']} ({row['action']}): {result.detail}")
    if failures:
        raise ActionsFailed("; ".join(failures))
    return counts


def apply_after_gate(
    conn: Connection,
    approval_ids: Sequence[int],
    actions: Mapping[str, Action],
    session: Any,
    now: datetime,
) -> dict[str, int]:
    """Apply what was approved; mark what was rejected or expired as rejected."""
    if not approval_ids:
        return {}
    _, rejected = ledger.release_gated(conn, approval_ids, now)
    conn.commit()
    counts = apply_planned(
        conn, ledger.approved_action_ids(conn, approval_ids), actions, session, now
    )
    if rejected:
        counts["rejected"] = len(rejected)
    return counts

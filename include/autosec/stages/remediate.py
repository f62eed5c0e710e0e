"""remediate: the policy decides per finding; actions are planned, gated, applied, recorded.

Every request carries an idempotency key (finding fingerprint + action + policy hash), so a
retried or re-run task never acts twice. Dry run plans and records everything and applies
nothing; it opens no approval gate either.

How much a human is involved is the decision's mode: out of the loop acts; on the loop acts and
then opens a *review* (approve keeps the action, a reasoned reject rolls it back); in the loop
waits at an approval gate first. A break glass session in force suspends the rules it names.
After a fix, a verification rescan is requested and later settled from triage's results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autosec.policy.engine import FindingFacts, decide
from autosec.remediation.actions.base import (
    Action,
    ActionRequest,
    ActionResult,
    RollbackUnsupported,
)
from autosec.remediation.registry import get_action
from autosec.stages import break_glass
from autosec.store import approvals, events, findings, inventory
from autosec.store import remediation as ledger
from autosec.store.db import Connection

# Who files review requests: the system, so no human reviewer is ever the requester.
REVIEW_REQUESTER = approvals.SYSTEM_APPROVER


class ActionsFailed(RuntimeError):
    """Some actions could not be applied; they stay in the ledger as failed, to retry."""


class RollbackRefused(ValueError):
    """A rollback request that cannot even be considered (no actor, no reason, no action)."""


class VerificationRefused(ValueError):
    """A verification that cannot be requested for this action."""


@dataclass
class RemediationPlan:
    decisions: int = 0
    apply_now: list[int] = field(default_factory=list)
    approval_ids: list[int] = field(default_factory=list)
    # On-the-loop actions among apply_now: applying them opens a review (which never gates).
    review_action_ids: list[int] = field(default_factory=list)
    # The break glass session in force while deciding, and how many decisions it changed.
    break_glass_session_id: int | None = None
    break_glass_uses: int = 0
    # Decisions whose action could not be built from the finding (e.g. no fixed version).
    unplannable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RollbackOutcome:
    """What one rollback request came to; ``outcome`` is rolled_back, already_rolled_back,
    refused (recorded; the action cannot or may not be undone) or failed (recorded; retry)."""

    action_id: int
    outcome: str
    message: str
    result: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("rolled_back", "already_rolled_back")


@dataclass(frozen=True)
class VerificationRequest:
    id: int
    action_id: int
    finding_id: int
    asset_id: str
    engine: str
    created: bool


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
    suspension = break_glass.active_suspension(conn, loaded_policy, now)
    if suspension is not None:
        plan.break_glass_session_id = suspension.session_id
    for row in rows:
        decision = decide(
            FindingFacts.from_row(row),
            assets[row["asset_id"]],
            loaded_policy,
            suspended_rules=suspension.rules if suspension else frozenset(),
            break_glass_id=suspension.session_id if suspension else None,
        )
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
        if decision.break_glass_used:
            plan.break_glass_uses += 1
            events.emit(
                conn,
                "break_glass.used",
                f"break_glass:{decision.break_glass_id}",
                {
                    "decision_id": decision_id,
                    "finding_id": row["id"],
                    "asset_id": row["asset_id"],
                    "skipped_rules": list(decision.skipped_rules),
                    "rule_id": decision.rule_id,
                    "action": decision.action,
                    "mode": decision.mode,
                    "dry_run": decision.dry_run,
                },
            )
        if not decision.acts:
            continue
        try:
            request = get_action(decision.action)().plan(
                _with_asset(row, assets[row["asset_id"]]), decision
            )
        except ValueError as exc:
            # The decision stands on record; the action cannot be built from this finding.
            plan.unplannable.append(f"finding {row['id']} ({decision.action}): {exc}")
            events.emit(
                conn,
                "action.unplannable",
                f"finding:{row['id']}",
                {"action": decision.action, "error": str(exc)},
            )
            continue
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
            if decision.mode == "on_the_loop" and not decision.dry_run:
                plan.review_action_ids.append(action_id)
    conn.commit()
    return plan


def _with_asset(row: Mapping[str, Any], asset) -> dict[str, Any]:
    """The finding row plus what actions need to know about its asset."""
    return {
        **row,
        "asset_addresses": list(asset.addresses),
        "asset_tags": list(asset.tags),
        "asset_environment": asset.environment.value,
        "asset_criticality": asset.criticality.value,
    }


def apply_planned(
    conn: Connection,
    action_ids: Sequence[int],
    actions: Mapping[str, Action],
    session: Any,
    now: datetime,
) -> dict[str, int]:
    """Apply planned actions; record every result; raise if any failed (after recording).

    An applied on-the-loop action gets its review request here (counted as
    ``reviews_opened``); a review never holds the run up.
    """
    counts: dict[str, int] = {}
    failures: list[str] = []
    for row in ledger.actions_to_apply(conn, action_ids):
        request = ActionRequest.from_dict(row["request"])
        action = actions.get(row["action"])
        if action is None:
            result = ActionResult(
                request.idempotency_key,
                "failed",
                detail={"error": f"no connection is configured for the {row['action']} action"},
            )
        else:
            result = action.apply(request, session)
        ledger.record_result(conn, row["id"], result, now)
        conn.commit()
        counts[result.status] = counts.get(result.status, 0) + 1
        if not result.ok:
            failures.append(f"action {row['id']} ({row['action']}): {result.detail}")
    reviews = open_reviews(conn, action_ids, now)
    if reviews:
        counts["reviews_opened"] = len(reviews)
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


# --- on the loop: reviews and rollbacks -------------------------------------------------------


def open_reviews(conn: Connection, action_ids: Sequence[int], now: datetime) -> list[int]:
    """Open a review for each applied on-the-loop action among ``action_ids`` that has none.

    The reviewers, quorum and expiry are the deciding rule's approvers (as recorded with the
    decision). Idempotent: an action gets one review, however often this runs.
    """
    opened: list[int] = []
    for row in ledger.actions_needing_review(conn, action_ids):
        record = row["decision"] or {}
        ref = f", {row['external_ref']}" if row["external_ref"] else ""
        review_id = approvals.create_approval(
            conn,
            requester=REVIEW_REQUESTER,
            approvers=record.get("approvers") or [],
            quorum=int(record.get("quorum") or 1),
            summary=f"review {row['action']}{ref} (applied on the loop): {row['title']} on "
            f"{row['asset_id']} ({row['severity']}); approve to keep it, reject to roll it back",
            rule_id=row["rule_id"],
            policy_hash=row["policy_hash"],
            now=now,
            expiry_hours=float(record.get("expiry_hours") or 72),
            kind="review",
        )
        ledger.attach_review(conn, row["id"], review_id, now)
        opened.append(review_id)
    conn.commit()
    return opened


def rollback_action(
    conn: Connection,
    action_id: int,
    actions: Mapping[str, Action],
    session: Any,
    actor: str,
    reason: str,
    now: datetime,
    review_id: int | None = None,
) -> RollbackOutcome:
    """Undo an applied action through its ``rollback()``; the one path for the CLI and reviews.

    Idempotent: an action already rolled back is left alone and nothing is recorded again.
    A refusal (the action cannot be undone, or is not applied: final) and a failure (the remote
    system said no, or the action is not configured: retried) are recorded in the rollback log
    and leave the action's status as it was.
    Raises ``RollbackRefused`` (recording nothing) without an actor, a reason or the action.
    """
    actor, reason = (actor or "").strip(), (reason or "").strip()
    if not actor:
        raise RollbackRefused("a rollback needs the name of who asks for it")
    if not reason:
        raise RollbackRefused("a rollback needs a reason")
    with conn.transaction():
        row = ledger.load_action(conn, action_id, lock=True)
        if row is None:
            raise RollbackRefused(f"action {action_id} does not exist")
        outcome = _rollback_locked(conn, row, actions, session, actor, reason, now, review_id)
    conn.commit()
    return outcome


def _rollback_locked(
    conn: Connection,
    row: dict,
    actions: Mapping[str, Action],
    session: Any,
    actor: str,
    reason: str,
    now: datetime,
    review_id: int | None,
) -> RollbackOutcome:
    action_id = row["id"]
    if row["status"] == "rolled_back":
        return RollbackOutcome(
            action_id,
            "already_rolled_back",
            f"action {action_id} was already rolled back by {row['rolled_back_by']} at "
            f"{row['rolled_back_at'].isoformat()}: nothing done",
            row["rollback_result"],
        )

    def refuse(message: str) -> RollbackOutcome:
        detail = {"error": message}
        ledger.record_rollback_attempt(
            conn, action_id, actor, reason, "refused", detail, now, review_id
        )
        events.emit(
            conn,
            "action.rollback_refused",
            f"action:{action_id}",
            {"actor": actor, "reason": reason, "review_id": review_id, "error": message},
        )
        return RollbackOutcome(action_id, "refused", message, detail)

    def fail(message: str, detail: dict[str, Any]) -> RollbackOutcome:
        detail = {"error": message, **detail}
        ledger.record_rollback_attempt(
            conn, action_id, actor, reason, "failed", detail, now, review_id
        )
        return RollbackOutcome(action_id, "failed", message, detail)

    if row["dry_run"] or row["status"] != "applied":
        what = "a dry run" if row["dry_run"] else row["status"]
        return refuse(f"action {action_id} is {what}: only an applied action can be rolled back")
    implementation = actions.get(row["action"])
    if implementation is None:
        return fail(
            f"no {row['action']!r} action is configured to roll action {action_id} back", {}
        )
    try:
        result = implementation.rollback(ActionResult.from_dict(row["result"]), session)
    except RollbackUnsupported as exc:
        return refuse(f"action {action_id} ({row['action']}) cannot be rolled back: {exc}")
    except ValueError as exc:
        # A missing endpoint or an unusable result: recorded, and retried once it is fixed.
        return fail(f"action {action_id} ({row['action']}) could not be rolled back: {exc}", {})
    if result.status != "rolled_back":
        return fail(
            f"action {action_id} ({row['action']}) was not rolled back: "
            f"{result.detail.get('error') or result.status}",
            {"result": result.as_dict()},
        )
    ledger.record_rollback(conn, action_id, result.as_dict(), actor, reason, now, review_id)
    events.emit(
        conn,
        "action.rolled_back",
        f"action:{action_id}",
        {
            "actor": actor,
            "reason": reason,
            "review_id": review_id,
            "action": row["action"],
            "external_ref": row["external_ref"],
        },
    )
    return RollbackOutcome(
        action_id,
        "rolled_back",
        f"action {action_id} ({row['action']}"
        + (f" {row['external_ref']}" if row["external_ref"] else "")
        + f") rolled back by {actor}",
        result.as_dict(),
    )


def settle_reviews(
    conn: Connection,
    actions: Mapping[str, Action],
    session: Any,
    now: datetime,
) -> dict[str, int]:
    """Roll back what reviewers rejected; expire reviews past their expiry (the action stays,
    the expiry is escalated). Raises ``ActionsFailed`` after recording when a rollback failed.
    """
    counts: dict[str, int] = {}
    expired = approvals.expire_due(conn, ledger.pending_review_ids(conn), now)
    if expired:
        counts["reviews_expired"] = len(expired)
    failures: list[str] = []
    for row in ledger.rejected_reviews(conn):
        outcome = rollback_action(
            conn,
            row["action_id"],
            actions,
            session,
            actor=row["approver"],
            reason=row["reason"] or "review rejected",
            now=now,
            review_id=row["review_id"],
        )
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        if outcome.outcome == "failed":
            failures.append(outcome.message)
    if failures:
        raise ActionsFailed("; ".join(failures))
    return counts


# --- verification rescans ---------------------------------------------------------------------


def request_verification(
    conn: Connection, action_id: int, now: datetime, requested_by: str = REVIEW_REQUESTER
) -> VerificationRequest:
    """Ask for a rescan of the action's finding by the engine that found it.

    The scan planner adds the asset (``store.remediation.pending_verifications``); the request
    is settled by ``settle_verifications`` once triage has taken in a successful rescan.
    Idempotent: while one is pending for the action, asking again returns it.
    """
    row = ledger.load_action(conn, action_id)
    if row is None:
        raise VerificationRefused(f"action {action_id} does not exist")
    if row["dry_run"]:
        raise VerificationRefused(f"action {action_id} is a dry run: it changed nothing to verify")
    finding = ledger.find_finding(conn, row["finding_id"])
    if not inventory.load_assets(conn, [finding["asset_id"]], active_only=True):
        raise VerificationRefused(
            f"asset {finding['asset_id']} of action {action_id} is retired: it is not scanned"
        )
    verification_id, created = ledger.add_verification(
        conn, action_id, finding["id"], finding["asset_id"], finding["engine"], now, requested_by
    )
    if created:
        events.emit(
            conn,
            "verification.requested",
            f"verification:{verification_id}",
            {
                "action_id": action_id,
                "finding_id": finding["id"],
                "asset_id": finding["asset_id"],
                "engine": finding["engine"],
                "requested_by": requested_by,
            },
        )
    conn.commit()
    return VerificationRequest(
        verification_id, action_id, finding["id"], finding["asset_id"], finding["engine"], created
    )


_STILL_THERE = frozenset({"open", "reopened", "accepted", "false_positive"})


def settle_verifications(conn: Connection, now: datetime) -> dict[str, int]:
    """Settle pending verifications from what triage recorded after each request.

    Only a successful, triaged rescan of the asset by the finding's engine that started after
    the request counts. The finding fixed → confirmed_fixed; reported again by such a rescan →
    still_present (the finding stays open). A rescan that neither reported nor closed it (a
    narrower scan) settles nothing. Nothing here changes a finding: triage alone closes them.
    """
    counts = {"confirmed_fixed": 0, "still_present": 0, "pending": 0}
    for row in ledger.pending_verification_rows(conn):
        rescans = ledger.rescans_since(conn, row["asset_id"], row["engine"], row["requested_at"])
        outcome, scan_run_id = None, None
        if rescans and row["finding_status"] == "fixed":
            outcome = "confirmed_fixed"
            closing = row["fixed_by_scan_run_id"]
            scan_run_id = closing if closing in rescans else rescans[0]
        elif row["finding_status"] in _STILL_THERE and row["last_scan_run_id"] in rescans:
            outcome, scan_run_id = "still_present", row["last_scan_run_id"]
        if outcome is None:
            counts["pending"] += 1
            continue
        ledger.settle_verification(conn, row["id"], outcome, scan_run_id, now)
        events.emit(
            conn,
            "verification.settled",
            f"verification:{row['id']}",
            {
                "outcome": outcome,
                "action_id": row["action_id"],
                "finding_id": row["finding_id"],
                "asset_id": row["asset_id"],
                "engine": row["engine"],
                "scan_run_id": scan_run_id,
            },
        )
        counts[outcome] += 1
    conn.commit()
    return counts


# --- follow-up: the ticket follows its finding; a reported fix asks for a rescan ----------------

# The actions with something on the remote side to follow; the others end when they are applied.
FOLLOW_UP_ACTIONS = ("ticket", "patch_request")
# Who asks for the verification when the remote side reports a fix.
FIX_REPORTED_BY = {"ticket": "ticketing", "patch_request": "git_host"}
_STILL_OPEN = frozenset({"open", "reopened"})


def follow_up(
    conn: Connection,
    actions: Mapping[str, Action],
    session: Any,
    now: datetime,
) -> dict[str, int]:
    """Follow each applied ticket and pull request after acting; safe to run every hour.

    - A ticket whose finding triage fixed is closed once, with a comment naming the scan run
      that closed the finding (``closed_at`` set, ``ticket.closed`` emitted).
    - A finding reopened after its action is commented on once per reopen transition (a
      closed ticket gets the comment too: the ticketing API has no reopen); a verification
      rescan that still found the finding is commented on once as well (``ticket.commented``).
    - A fix reported on the remote side (a ticket someone marked resolved, a merged pull
      request) while the finding is still open asks for one verification rescan per report;
      only triage's rescan closes the finding.

    Everything done or seen is appended to the action's ``follow_up`` log. A remote failure is
    logged there (kind "error") and counted, and the step is retried on the next run; it never
    stops the other actions. Dry runs and rolled-back actions are not followed.
    """
    counts = {"closed": 0, "commented": 0, "verifications_requested": 0, "errors": 0}
    candidates = ledger.follow_up_candidates(conn, FOLLOW_UP_ACTIONS)
    conn.commit()
    for action_id in candidates:
        row = ledger.lock_for_follow_up(conn, action_id)
        if row is not None:  # None: rolled back meanwhile, or another run holds it
            _FollowUp(conn, row, actions.get(row["action"]), session, now, counts).run()
        conn.commit()
    return counts


@dataclass
class _FollowUp:
    """One action's follow-up within one run; ``counts`` is the run's tally."""

    conn: Connection
    row: dict[str, Any]
    action: Any
    session: Any
    now: datetime
    counts: dict[str, int]
    result: ActionResult = field(init=False)
    # The action's follow-up log as stored, kept in step with what this run writes.
    log: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.result = ActionResult.from_dict(self.row["result"])
        self.log = list(self.row["follow_up"] or [])

    def run(self) -> None:
        status = self.row["finding_status"]
        if self.row["action"] == "ticket":
            self._comment_reopens()
            self._comment_still_present()
            if self.row["closed_at"] is None and status == "fixed":
                self._close()
            elif self.row["closed_at"] is None and status in _STILL_OPEN:
                state = self._call("read", lambda a: a.read(self.result, self.session))
                if state is not None:
                    self._seen(state.status, state.resolved_at, state.as_dict())
                    if state.status == "resolved":
                        self._fix_reported(state.resolved_at or state.updated_at, state.as_dict())
        elif status in _STILL_OPEN:
            pull = self._call("read", lambda a: a.pull_state(self.result, self.session))
            if pull is not None:
                self._seen(pull.state, pull.merged_at or pull.closed_at, pull.as_dict())
                if pull.state == "merged":
                    self._fix_reported(pull.merged_at, pull.as_dict())

    # --- the steps ----------------------------------------------------------------------------

    def _comment_reopens(self) -> None:
        done = self._logged("commented", "history_id")
        closed_at = self.row["closed_at"]
        for reopen in ledger.reopen_transitions(
            self.conn, self.row["finding_id"], self.row["created_at"]
        ):
            if reopen["id"] in done:
                continue
            text = (
                f"autosec: seen again in scan run {reopen['scan_run_id']} on "
                f"{_when(reopen['at'])}: the finding on {self.row['asset_id']} was fixed and is "
                "open again."
            )
            if closed_at is not None:
                text += (
                    f" This ticket was closed as fixed on {_when(closed_at)}. The ticketing API "
                    "offers no reopen, so autosec leaves it closed and records this here: reopen "
                    "it by hand (or file a new one) while the work is not done."
                )
            self._comment(
                text, "reopened", history_id=reopen["id"], scan_run_id=reopen["scan_run_id"]
            )

    def _comment_still_present(self) -> None:
        done = self._logged("commented", "verification_id")
        for check in ledger.still_present_verifications(self.conn, self.row["id"]):
            if check["id"] in done:
                continue
            text = (
                f"autosec: the verification rescan (scan run {check['scan_run_id']}) still finds "
                f"this on {self.row['asset_id']}: the fix did not hold and the finding stays "
                "open. Resolve the ticket again once it is fixed and autosec will ask for "
                "another rescan."
            )
            self._comment(
                text, "still_present", verification_id=check["id"], scan_run_id=check["scan_run_id"]
            )

    def _comment(self, text: str, reason: str, **about: Any) -> None:
        outcome = self._call("comment", lambda a: a.comment(self.result, self.session, text))
        if outcome is None:
            return
        self._append({"kind": "commented", "reason": reason, **about, "result": outcome.as_dict()})
        self._emit("ticket.commented", {"reason": reason, **about})
        self.counts["commented"] += 1

    def _close(self) -> None:
        fix = ledger.last_fix(self.conn, self.row["finding_id"])
        run = fix["scan_run_id"] if fix else None
        if fix is not None and run is not None:
            how = (
                f"scan run {run} ({fix['engine']}, {_when(fix['at'])}) rescanned "
                f"{self.row['asset_id']} and no longer found this finding"
            )
        else:
            how = f"a covering rescan of {self.row['asset_id']} no longer found this finding"
        text = f"autosec: fixed. {how[0].upper()}{how[1:]}, so this ticket is closed as fixed."
        outcome = self._call("close", lambda a: a.close(self.result, self.session, text))
        if outcome is None:
            return
        entry = {
            "at": self.now.isoformat(),
            "kind": "closed",
            "scan_run_id": run,
            "history_id": fix["id"] if fix else None,
            "result": outcome.as_dict(),
        }
        if ledger.mark_ticket_closed(self.conn, self.row["id"], entry, self.now):
            self._emit("ticket.closed", {"scan_run_id": run})
            self.counts["closed"] += 1

    def _seen(self, state: str, since: str | None, remote: dict[str, Any]) -> None:
        """Log the remote state when it differs from the last one logged."""
        last = next((e for e in reversed(self.log) if e.get("kind") == "seen"), None)
        if last is None or (last.get("state"), last.get("since")) != (state, since):
            self._append({"kind": "seen", "state": state, "since": since, "remote": remote})

    def _fix_reported(self, marker: str | None, remote: dict[str, Any]) -> None:
        """One verification per reported fix: ``marker`` (when it was reported) tells them apart."""
        if any(
            e.get("kind") == "verification_requested" and e.get("marker") == marker
            for e in self.log
        ):
            return
        requested_by = FIX_REPORTED_BY[self.row["action"]]
        try:
            request = request_verification(
                self.conn, self.row["id"], self.now, requested_by=requested_by
            )
        except VerificationRefused as exc:
            self._error("verification", {"error": str(exc), "http_status": None})
            return
        self._append(
            {
                "kind": "verification_requested",
                "marker": marker,
                "requested_by": requested_by,
                "verification_id": request.id,
                "created": request.created,
                "remote": remote,
            }
        )
        if request.created:
            self.counts["verifications_requested"] += 1

    # --- plumbing -----------------------------------------------------------------------------

    def _call(self, step: str, call: Any) -> Any:
        """What ``call(action)`` answered, or None after logging and counting the failure."""
        if self.action is None:
            error = f"no connection is configured for the {self.row['action']} action"
            self._error(step, {"error": error, "http_status": None})
            return None
        try:
            outcome = call(self.action)
        except ValueError as exc:  # no endpoint, or a result the action cannot use
            self._error(step, {"error": str(exc), "http_status": None})
            return None
        if isinstance(outcome, ActionResult) and not outcome.ok:
            self._error(step, outcome.detail)
            return None
        return outcome

    def _error(self, step: str, detail: Mapping[str, Any]) -> None:
        """Log and count a failed step. The same step failing the same way again, with only
        errors logged since, is counted on its entry (``repeats``, ``last_at``, the latest
        ``error``): an API down for days leaves one entry per failing step, not one per run."""
        self.counts["errors"] += 1
        at = self.now.isoformat()
        entry: dict[str, Any] = {
            "kind": "error",
            "step": step,
            "error": str(detail.get("error") or "unknown error"),
            "http_status": detail.get("http_status"),
        }
        if detail.get("body"):
            entry["body"] = detail["body"]
        for index in range(len(self.log) - 1, -1, -1):
            previous = self.log[index]
            if previous.get("kind") != "error":
                break
            if (previous.get("step"), previous.get("http_status")) == (step, entry["http_status"]):
                repeated = {
                    **entry,
                    "at": previous["at"],
                    "last_at": at,
                    "repeats": int(previous.get("repeats") or 1) + 1,
                }
                ledger.replace_follow_up_entry(self.conn, self.row["id"], index, repeated)
                self.log[index] = repeated
                return
        self._append(entry)

    def _append(self, entry: dict[str, Any]) -> None:
        entry = {"at": self.now.isoformat(), **entry}
        ledger.append_follow_up(self.conn, self.row["id"], entry)
        self.log.append(entry)

    def _logged(self, kind: str, field_name: str) -> set[Any]:
        return {e.get(field_name) for e in self.log if e.get("kind") == kind}

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        events.emit(
            self.conn,
            name,
            f"action:{self.row['id']}",
            {
                "action_id": self.row["id"],
                "finding_id": self.row["finding_id"],
                "asset_id": self.row["asset_id"],
                "ticket": self.row["external_ref"],
                **payload,
            },
        )


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

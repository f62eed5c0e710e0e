"""drills: run the rare playbooks on synthetic input and check they still do what the policy says.

Where a drill runs: in a *throwaway schema* of the real store, built by the store's own
migrations, and dropped when the drill ends (pass or fail). The drill's connection sees only
that schema (its search_path names nothing else), so the real approvals page, the break glass
state the remediate stage reads, the events notifiers send from, and the reports never see a
drill's rows. Marking rows with a ``drill`` run_ref and deleting them afterwards was rejected:
the approval and rollback logs are append-only by design (a trigger refuses deletes), a break
glass session opened in the real table would suspend real rules for as long as it was open, and
a ``finding.black_swan`` event in the real log would page real people.

What a drill calls: only loopback stand-ins it starts itself (the demo ticketing API on an
ephemeral port, with a random token), through a session that refuses any other URL. The real
Airflow connections are never read, so a drill on a production deployment cannot reach the real
ticketing system. "Dry run" here means exactly that: nothing real changes, while the real code
paths (decide, gate, apply, record, roll back) run unmodified against the real policy.

Each drill's result is recorded in the real store as a ``drill.completed`` event.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from psycopg.conninfo import make_conninfo

from autosec.config.policy import GROUP_PREFIX, LoadedPolicy
from autosec.demo.ticketing import TicketingServer
from autosec.drills import playbooks
from autosec.drills.playbooks import Expectation, Playbook, SyntheticFinding
from autosec.policy.black_swan import BlackSwanFacts, evaluate
from autosec.policy.engine import FindingFacts
from autosec.remediation.actions.base import Action
from autosec.remediation.actions.ticket import TicketAction, TicketEndpoint
from autosec.remediation.approvals import ApprovalRefused
from autosec.stages import break_glass
from autosec.stages.remediate import (
    ActionsFailed,
    apply_after_gate,
    apply_planned,
    decide_findings,
    rollback_action,
)
from autosec.stages.triage import triage_runs
from autosec.store import approvals, db, events, inventory, scans
from autosec.store import remediation as ledger
from autosec.store.db import Connection

SANDBOX_PREFIX = "autosec_drill_"
DRILL_REQUESTER = "autosec-drill"
DRILL_ACTOR = "autosec-drill"
DRILL_REASON = "drill: rehearsing the playbook on synthetic input"
STALE_AFTER = timedelta(days=1)
_SANDBOX_NAME = re.compile(rf"^{SANDBOX_PREFIX}(\d+)_[a-z0-9_]+$")


class DrillsFailed(RuntimeError):
    """At least one drill failed or did not report; the message lists each one and why."""


class DrillCannotRun(RuntimeError):
    """The playbook cannot be exercised under this policy or estate (the drill fails)."""


class StandInRefused(RuntimeError):
    """A drill tried to reach something other than its own loopback stand-in."""


@dataclass(frozen=True)
class DrillResult:
    name: str
    passed: bool
    seconds: float
    budget: float
    detail: str
    expected: dict[str, Any] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrillResult:
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            seconds=float(data["seconds"]),
            budget=float(data["budget"]),
            detail=str(data["detail"]),
            expected=dict(data.get("expected") or {}),
            observed=dict(data.get("observed") or {}),
        )

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        timing = f"{self.seconds:.2f}s (budget {self.budget:g}s)"
        return f"{self.name}: {verdict} in {timing}: {self.detail}"


# --- the sandbox ------------------------------------------------------------------------------


def sandbox_url(store_url: str, schema: str) -> str:
    """``store_url`` with a search_path of ``schema`` only, so nothing else is reachable."""
    option = f"-csearch_path={schema}"
    if "://" in store_url:
        separator = "&" if "?" in store_url else "?"
        return f"{store_url}{separator}options={quote(option, safe='')}"
    return make_conninfo(store_url, options=option)


@contextmanager
def sandbox(store_url: str, label: str, created: datetime) -> Iterator[Connection]:
    """A connection to a freshly migrated schema of its own, dropped on the way out."""
    clean = re.sub(r"[^a-z0-9_]", "_", label.lower())[:23] or "drill"
    schema = f"{SANDBOX_PREFIX}{int(created.timestamp())}_{clean}_{secrets.token_hex(3)}"
    _create_schema(store_url, schema)
    try:
        url = sandbox_url(store_url, schema)
        db.upgrade(url)
        with db.connect(url) as conn:
            yield conn
    finally:
        _drop_schema(store_url, schema)


def _create_schema(store_url: str, schema: str) -> None:
    db.create_schema(store_url, schema)


def _drop_schema(store_url: str, schema: str) -> None:
    if not schema.startswith(SANDBOX_PREFIX):  # never anything but a drill's own sandbox
        raise ValueError(f"refusing to drop schema {schema!r}: not a drill sandbox")
    db.drop_schema(store_url, schema)


def sandboxes(store_url: str) -> list[str]:
    """Drill sandboxes that exist right now (normally none: each drill drops its own)."""
    return [s for s in db.schemas_named(store_url, SANDBOX_PREFIX) if _SANDBOX_NAME.match(s)]


def drop_stale_sandboxes(
    store_url: str, now: datetime, older_than: timedelta = STALE_AFTER
) -> list[str]:
    """Drop sandboxes a killed worker left behind (created before ``now - older_than``)."""
    dropped = []
    for schema in sandboxes(store_url):
        created = int(_SANDBOX_NAME.match(schema).group(1))
        if created < (now - older_than).timestamp():
            _drop_schema(store_url, schema)
            dropped.append(schema)
    return dropped


# --- stand-ins --------------------------------------------------------------------------------


class StandInSession:
    """The only HTTP a drill makes: to its own loopback stand-in, each call remembered.

    ``fail_posts`` answers that many POSTs with a 500 without sending them (the endpoint is
    down). Any URL outside the stand-in raises ``StandInRefused`` before a byte is sent.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise StandInRefused(f"a drill stand-in must listen on loopback, not {base_url}")
        self.base_url = base_url.rstrip("/") + "/"
        self.calls: list[tuple[str, str, int]] = []
        self.fail_posts = 0
        self._http = requests.Session()

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", url, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        method = method.upper()
        if not str(url).startswith(self.base_url):
            raise StandInRefused(
                f"drill refused {method} {url}: only its stand-in at {self.base_url} may be called"
            )
        path = urlsplit(url).path
        if method == "POST" and self.fail_posts > 0:
            self.fail_posts -= 1
            response = requests.Response()
            response.status_code = 500
            response._content = b'{"error": "drill: the endpoint is down"}'
            response.headers["Content-Type"] = "application/json"
            response.url = url
            self.calls.append((method, path, 500))
            return response
        response = self._http.request(method, url, **kwargs)
        self.calls.append((method, path, response.status_code))
        return response

    def close(self) -> None:
        self._http.close()


@dataclass
class StandIns:
    ticketing: TicketingServer
    session: StandInSession
    actions: dict[str, Action]

    def remote_records(self, key: str) -> list[dict]:
        return [t for t in self.ticketing.tickets() if t.get("external_id") == key]


@contextmanager
def stand_ins() -> Iterator[StandIns]:
    """The demo ticketing API on an ephemeral loopback port, and the session that reaches it."""
    token = secrets.token_urlsafe(16)
    with TicketingServer(host="127.0.0.1", port=0, token=token) as server:
        session = StandInSession(server.url)
        # Only the ticket action has a stand-in: any other action fails in the ledger as one
        # without a configured connection, and nothing is sent.
        actions: dict[str, Action] = {
            "ticket": TicketAction(TicketEndpoint(server.url, token=token, timeout=5))
        }
        try:
            yield StandIns(server, session, actions)
        finally:
            session.close()


# --- running a playbook -----------------------------------------------------------------------


@dataclass
class _Run:
    conn: Connection
    loaded: LoadedPolicy
    now: datetime
    run_ref: str
    inputs: tuple[SyntheticFinding, ...]
    stand_ins: StandIns
    notes: list[str] = field(default_factory=list)

    def seed_assets(self) -> None:
        assets = list({f.asset.id: f.asset for f in self.inputs}.values())
        sync = inventory.start_sync(self.conn, playbooks.DRILL_SOURCE, "drill", self.run_ref)
        inventory.apply_source_snapshot(self.conn, sync, playbooks.DRILL_SOURCE, assets, self.now)
        self.conn.commit()

    def scan(self, finding: SyntheticFinding, at: datetime) -> int:
        """One succeeded scan run reporting ``finding``, triaged: the new finding's id."""
        observation = finding.observation
        run_id = scans.start_scan_run(
            self.conn,
            observation.engine,
            [finding.asset.id],
            {"targets": list(finding.asset.addresses)},
            [observation.engine],
            at,
            run_ref=self.run_ref,
        )
        scans.add_observations(self.conn, run_id, [observation])
        scans.finish_scan_run(self.conn, run_id, "succeeded", at)
        days = self.loaded.policy.patching.days_by_severity()
        new = triage_runs(self.conn, days, at, run_ids=[run_id]).new_finding_ids
        if len(new) != 1:
            raise DrillCannotRun(f"triage made {len(new)} findings of the synthetic observation")
        return new[0]

    def decide(self, at: datetime):
        plan = decide_findings(
            self.conn, self.loaded, at, requester=DRILL_REQUESTER, run_ref=self.run_ref
        )
        self.notes.extend(f"unplannable: {line}" for line in plan.unplannable)
        return plan

    def decision(self, finding_id: int) -> dict:
        decisions = ledger.explain_finding(self.conn, finding_id)["decisions"]
        if not decisions:
            raise DrillCannotRun(f"the synthetic finding {finding_id} was not decided")
        decision = decisions[-1]
        self.notes.append(
            f"rule {decision['rule_id']} decided {decision['action']} {decision['mode']}: "
            + "; ".join(decision["reasons"])
        )
        return decision

    def action(self, finding_id: int) -> dict | None:
        actions = self.decision_quiet(finding_id)["actions"]
        return actions[0] if actions else None

    def decision_quiet(self, finding_id: int) -> dict:
        return ledger.explain_finding(self.conn, finding_id)["decisions"][-1]

    def apply(self, action_ids: Sequence[int], at: datetime) -> None:
        try:
            apply_planned(self.conn, action_ids, self.stand_ins.actions, self.stand_ins.session, at)
        except ActionsFailed as exc:
            self.notes.append(f"apply: {exc}")


def _approver(approvers: Sequence[str], index: int = 0) -> tuple[str, tuple[str, ...]]:
    """The ``index``-th distinct identity allowed by ``approvers`` (a named user, else a
    synthetic member of a named group)."""
    named = [a for a in approvers if not a.startswith(GROUP_PREFIX)]
    if index < len(named):
        return named[index], ()
    groups = [a[len(GROUP_PREFIX) :] for a in approvers if a.startswith(GROUP_PREFIX)]
    if groups:
        return f"drill-approver-{index}", (groups[0],)
    return f"drill-nobody-{index}", ()


def _approve(run: _Run, approval: dict, at: datetime) -> str:
    """Approve a gate in the sandbox with as many allowed approvers as its quorum needs."""
    status = approval["status"]
    for index in range(int(approval["quorum"])):
        user, groups = _approver(approval["approvers"], index)
        status = approvals.decide(
            run.conn, approval["id"], user, "approve", DRILL_REASON, at, approver_groups=groups
        )
    return status


def _attempts(run: _Run, finding_id: int) -> int:
    """Actions for the finding that something tried to apply (applied, failed, rolled back)."""
    actions = run.decision_quiet(finding_id)["actions"]
    return sum(1 for a in actions if a["status"] in ("applied", "failed", "rolled_back"))


def _black_swan(run: _Run) -> dict[str, Any]:
    [synthetic] = run.inputs
    policy = run.loaded.policy
    run.seed_assets()
    finding_id = run.scan(synthetic, run.now)
    row = ledger.explain_finding(run.conn, finding_id)["finding"]
    facts = BlackSwanFacts.from_finding(
        FindingFacts.from_row(row, kev=synthetic.kev),
        automatable=synthetic.automatable,
        total_impact=synthetic.total_impact,
        cvss_vector=synthetic.observation.cvss_vector,
    )
    verdict = evaluate(facts, synthetic.asset, policy.black_swan.criteria)
    observed: dict[str, Any] = {"black_swan": verdict.is_black_swan, "black_swan_event": False}
    if verdict.is_black_swan:
        triggers = sorted(policy.black_swan.triggers)
        events.emit(
            run.conn,
            "finding.black_swan",
            f"finding:{finding_id}",
            {**verdict.as_record(), "triggers": triggers, "asset_id": synthetic.asset.id},
        )
        run.conn.commit()
        observed.update(black_swan_event=True, triggers=triggers)
    else:
        run.notes.append("not a black swan: " + "; ".join(verdict.missing))
    plan = run.decide(run.now)
    decision = run.decision(finding_id)
    observed["decision_acts"] = decision["action"] != "none"
    observed["decision_mode"] = decision["mode"]
    run.apply(plan.apply_now, run.now)
    action = run.action(finding_id)
    observed["approval"] = action["approval"]["status"] if action and action["approval"] else None
    observed["applied"] = _attempts(run, finding_id)
    observed["requests_sent"] = len(run.stand_ins.session.calls)
    return observed


def _approval_expiry(run: _Run) -> dict[str, Any]:
    [synthetic] = run.inputs
    run.seed_assets()
    finding_id = run.scan(synthetic, run.now)
    run.decide(run.now)
    decision = run.decision(finding_id)
    action = run.action(finding_id)
    gate = action["approval"] if action else None
    observed: dict[str, Any] = {"gated": gate is not None}
    if gate is None:
        run.notes.append(
            f"no approval gate: {decision['action']} {decision['mode']} on a production asset"
        )
        observed["applied"] = _attempts(run, finding_id)
        return observed
    observed["expiry_hours"] = (gate["expires_at"] - gate["created_at"]).total_seconds() / 3600
    expires_at = gate["expires_at"]
    early = approvals.expire_due(run.conn, [gate["id"]], expires_at - timedelta(seconds=1))
    observed["expired_early"] = bool(early)
    approvals.expire_due(run.conn, [gate["id"]], expires_at)
    after_sweep = ledger.explain_finding(run.conn, finding_id)["decisions"][-1]["actions"][0]
    observed["approval"] = after_sweep["approval"]["status"]
    observed["escalated"] = after_sweep["approval"]["escalated_at"] is not None
    late = expires_at + timedelta(minutes=1)
    user, groups = _approver(gate["approvers"])
    try:
        approvals.decide(
            run.conn, gate["id"], user, "approve", DRILL_REASON, late, approver_groups=groups
        )
        observed["late_approval_refused"] = False
    except ApprovalRefused as exc:
        observed["late_approval_refused"] = True
        run.notes.append(f"late approval by {user} refused: {exc}")
    counts = apply_after_gate(
        run.conn, [gate["id"]], run.stand_ins.actions, run.stand_ins.session, late
    )
    run.notes.append(f"after the gate: {counts or 'nothing'}")
    observed["action_status"] = run.action(finding_id)["status"]
    observed["applied"] = _attempts(run, finding_id)
    observed["requests_sent"] = len(run.stand_ins.session.calls)
    return observed


def _action_failure_rollback(run: _Run) -> dict[str, Any]:
    [synthetic] = run.inputs
    stand = run.stand_ins
    run.seed_assets()
    finding_id = run.scan(synthetic, run.now)
    run.decide(run.now)
    run.decision(finding_id)
    action = run.action(finding_id)
    observed: dict[str, Any] = {"acts": action is not None}
    if action is None:
        return observed
    if action["action"] not in stand.actions:
        raise DrillCannotRun(
            f"the policy decides {action['action']} for the synthetic finding; the drill has a "
            "loopback stand-in for the ticket action only"
        )
    at = run.now + timedelta(minutes=1)
    stand.session.fail_posts = 1
    if action["approval"] is not None:
        status = _approve(run, action["approval"], at)
        run.notes.append(f"approved in the sandbox ({status})")
        try:
            apply_after_gate(run.conn, [action["approval"]["id"]], stand.actions, stand.session, at)
        except ActionsFailed as exc:
            run.notes.append(f"first attempt: {exc}")
    else:
        run.apply([action["id"]], at)
    observed["first_attempt"] = run.action(finding_id)["status"]
    stand.session.fail_posts = 0
    run.apply([action["id"]], at + timedelta(minutes=1))
    observed["retry"] = run.action(finding_id)["status"]
    key = action["idempotency_key"]
    observed["remote_records"] = len(stand.remote_records(key))
    before = len(stand.session.calls)
    run.apply([action["id"]], at + timedelta(minutes=2))
    observed["second_retry_requests"] = len(stand.session.calls) - before
    outcome = rollback_action(
        run.conn,
        action["id"],
        stand.actions,
        stand.session,
        actor=DRILL_ACTOR,
        reason=DRILL_REASON,
        now=at + timedelta(minutes=3),
    )
    observed["rollback"] = outcome.outcome
    if not outcome.ok:
        run.notes.append(f"rollback: {outcome.message}")
    observed["ledger_status"] = run.action(finding_id)["status"]
    records = stand.remote_records(key)
    observed["remote_closed"] = bool(records) and all(r["status"] == "closed" for r in records)
    again = rollback_action(
        run.conn,
        action["id"],
        stand.actions,
        stand.session,
        actor=DRILL_ACTOR,
        reason=DRILL_REASON,
        now=at + timedelta(minutes=4),
    )
    observed["rollback_again"] = again.outcome
    return observed


def _break_glass(run: _Run) -> dict[str, Any]:
    loaded, conn = run.loaded, run.conn
    user, groups = playbooks.break_glass_opener(loaded.policy)
    try:
        session = break_glass.open_session(conn, loaded, user, DRILL_REASON, run.now, groups=groups)
    except break_glass.BreakGlassRefused as exc:
        run.notes.append(f"opening refused: {exc}")
        return {"opened": False, "refused": True}
    observed: dict[str, Any] = {
        "opened": True,
        "refused": False,
        "suspended_rules": sorted(session["suspended_rules"]),
        "within_max_minutes": session["expires_at"] - session["opened_at"]
        <= timedelta(minutes=loaded.policy.break_glass.max_minutes),
    }
    rule_id, _, why = playbooks.break_glass_target(loaded)
    during_at, close_at, after_at = (run.now + timedelta(minutes=m) for m in (1, 2, 3))
    if rule_id is None:
        run.notes.append(f"no finding to exercise the suspension on: {why}")
        observed["skipped_rules"] = []
    else:
        during, after = run.inputs
        run.seed_assets()
        finding_id = run.scan(during, during_at)
        run.decide(during_at)
        decision = run.decision(finding_id)
        observed["skipped_rules"] = list(decision["skipped_rules"])
        named = decision["break_glass"]
        observed["decision_names_session"] = bool(named) and named["id"] == session["id"]
        observed["uses_recorded"] = len(ledger.break_glass_uses(conn, session["id"]))
    closed = break_glass.close_session(conn, loaded, session["id"], user, close_at, groups=groups)
    observed["closed"] = break_glass.state(closed, close_at) == "closed"
    observed["suspended_after_close"] = (
        break_glass.active_suspension(conn, loaded, after_at) is not None
    )
    if rule_id is not None:
        finding_id = run.scan(after, after_at)
        run.decide(after_at)
        observed["restored_rule"] = run.decision(finding_id)["rule_id"]
    return observed


RUNNERS: dict[str, Callable[[_Run], dict[str, Any]]] = {
    playbooks.BLACK_SWAN: _black_swan,
    playbooks.APPROVAL_EXPIRY: _approval_expiry,
    playbooks.ACTION_FAILURE_ROLLBACK: _action_failure_rollback,
    playbooks.BREAK_GLASS: _break_glass,
}


def _mismatches(expected: Expectation, observed: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, want in expected.outcome.items():
        got = observed.get(key, "(not observed)")
        if isinstance(want, float) and isinstance(got, int | float):
            same = abs(want - got) < 1e-6
        else:
            same = got == want
        if not same:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    return problems


def run_drill(
    store_url: str,
    name: str,
    loaded: LoadedPolicy,
    now: datetime,
    run_ref: str = "drill",
    clock: Callable[[], float] = time.monotonic,
) -> DrillResult:
    """Run one playbook in its own sandbox against ``loaded``; the result says whether it did
    what the policy dictates within its budget, and why not.

    A playbook that cannot run (or raises) fails with the reason. The sandbox and stand-ins are
    set up before the clock starts; an error setting them up (the store is down) is raised, so
    the task retries instead of reporting a failed drill.
    """
    playbook: Playbook = playbooks.get_playbook(name)
    runner = RUNNERS[name]
    expected = playbook.expect(loaded)
    inputs = playbook.inputs(loaded)
    with sandbox(store_url, name, now) as conn, stand_ins() as stand:
        run = _Run(conn, loaded, now, run_ref, inputs, stand)
        started = clock()
        try:
            observed = runner(run)
            error = None
        except Exception as exc:  # noqa: BLE001 - reported as the drill's failure, not swallowed
            conn.rollback()
            observed, error = {}, f"{type(exc).__name__}: {exc}"
        seconds = clock() - started
    problems = [] if error is None else [f"the playbook did not complete: {error}"]
    problems += _mismatches(expected, observed) if error is None else []
    if seconds > playbook.budget_seconds:
        problems.append(f"took {seconds:.2f}s, over its {playbook.budget_seconds:g}s budget")
    if problems:
        detail = "; ".join(problems)
        if run.notes:
            detail += " | context: " + " | ".join(run.notes)
    else:
        detail = f"as the policy dictates: {expected.statement}"
    return DrillResult(
        name=name,
        passed=not problems,
        seconds=round(seconds, 3),
        budget=float(playbook.budget_seconds),
        detail=detail,
        expected=dict(expected.outcome),
        observed=observed,
    )


def run_drills(
    store_url: str,
    loaded: LoadedPolicy,
    now: datetime,
    names: Sequence[str] | None = None,
    run_ref: str = "drill",
) -> list[DrillResult]:
    """Every playbook (or ``names``), one after another."""
    return [
        run_drill(store_url, name, loaded, now, run_ref)
        for name in (names or playbooks.playbook_names())
    ]


def record_result(conn: Connection, result: DrillResult, run_ref: str) -> None:
    """The result as a ``drill.completed`` event in the real store, for the reports."""
    events.emit(
        conn, "drill.completed", f"drill:{result.name}", {**result.as_dict(), "run_ref": run_ref}
    )
    conn.commit()


def check_results(names: Sequence[str], results: Sequence[Mapping[str, Any] | None]) -> str:
    """A summary when every drill in ``names`` passed; else ``DrillsFailed`` listing each drill
    that failed (with why) or did not report at all."""
    by_name = {r["name"]: DrillResult.from_dict(r) for r in results if r}
    failed = [by_name[n].line() for n in names if n in by_name and not by_name[n].passed]
    missing = [f"{n}: did not report (its task failed)" for n in names if n not in by_name]
    if failed or missing:
        raise DrillsFailed(
            f"{len(failed) + len(missing)} of {len(names)} drill(s) failed: "
            + " || ".join(failed + missing)
        )
    return "\n".join(by_name[n].line() for n in names)

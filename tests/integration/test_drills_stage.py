"""The drills: each playbook passes under the default policy, in a sandbox that leaves nothing
behind, and fails, saying why, when the policy or the machinery no longer does what it should."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autosec.config.policy import LoadedPolicy, load_policy
from autosec.drills import playbooks
from autosec.remediation.actions.base import RollbackUnsupported
from autosec.remediation.actions.ticket import TicketAction
from autosec.stages import drills
from autosec.store import approvals

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 2, 6, tzinfo=UTC)
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "include" / "policies" / "default.yaml"
REAL_TABLES = ("assets", "findings", "policy_decisions", "actions", "approvals", "events")


@pytest.fixture(scope="module")
def default_policy() -> LoadedPolicy:
    return load_policy(DEFAULT_POLICY)


def _policy(tmp_path: Path, text: str) -> LoadedPolicy:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


def _counts(conn) -> dict[str, int]:
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in REAL_TABLES}  # noqa: S608
    counts["break_glass_sessions"] = conn.execute(
        "SELECT count(*) FROM break_glass_sessions"
    ).fetchone()[0]
    conn.commit()
    return counts


def test_every_playbook_has_a_runner_and_a_budget(default_policy) -> None:
    assert set(drills.RUNNERS) == set(playbooks.PLAYBOOKS)
    assert playbooks.playbook_names() == [
        "black_swan",
        "approval_expiry",
        "action_failure_rollback",
        "break_glass",
    ]
    for playbook in playbooks.PLAYBOOKS.values():
        assert playbook.budget_seconds > 0
        assert playbook.expect(default_policy).outcome
    with pytest.raises(KeyError, match="unknown drill 'fire'"):
        playbooks.get_playbook("fire")


def test_every_drill_passes_under_the_default_policy_and_leaves_nothing_behind(
    conn, store_url, default_policy
) -> None:
    before = _counts(conn)

    results = drills.run_drills(store_url, default_policy, NOW, run_ref="drills/manual-1")

    assert [r.name for r in results] == playbooks.playbook_names()
    for result in results:
        assert result.passed, result.line()
        assert result.observed == {**result.observed, **result.expected}
        assert 0 <= result.seconds <= result.budget
        assert result.detail.startswith("as the policy dictates: ")
    by_name = {r.name: r for r in results}
    assert by_name["black_swan"].observed["triggers"] == ["finding.black_swan"]
    assert by_name["approval_expiry"].observed["expiry_hours"] == 72
    assert by_name["break_glass"].observed["skipped_rules"] == ["prod-high-ticket-approval"]
    # Nothing reached the real tables, and every sandbox is gone.
    assert _counts(conn) == before
    assert drills.sandboxes(store_url) == []

    for result in results:
        drills.record_result(conn, result, "drills/manual-1")
    recorded = conn.execute(
        "SELECT subject, payload FROM events WHERE name = 'drill.completed' ORDER BY id"
    ).fetchall()
    assert [s for s, _ in recorded] == [f"drill:{n}" for n in playbooks.playbook_names()]
    assert all(p["passed"] and p["run_ref"] == "drills/manual-1" for _, p in recorded)
    assert drills.DrillResult.from_dict(recorded[0][1]) == results[0]


# --- a broken policy or a broken mechanism fails the matching drill -----------------------------

ACTS_ON_PRODUCTION = """\
version: "broken-acts-on-production"
enforcement:
  fallback_approvers: [secops-lead]
  rules:
    - id: contain-production-now
      match: {min_severity: high, environments: [production]}
      action: ticket
      mode: out_of_loop
      requires: {environments: [production]}
      names_protected_assets: true
    - id: the-rest
      action: ticket
      mode: in_the_loop
      approvers: [secops-lead]
"""


def test_a_policy_acting_on_production_without_approval_fails_black_swan_and_expiry(
    conn, store_url, tmp_path
) -> None:
    loaded = _policy(tmp_path, ACTS_ON_PRODUCTION)

    swan = drills.run_drill(store_url, "black_swan", loaded, NOW)
    expiry = drills.run_drill(store_url, "approval_expiry", loaded, NOW)
    failure = drills.run_drill(store_url, "action_failure_rollback", loaded, NOW)

    assert not swan.passed
    assert "decision_mode: expected 'in_the_loop', got 'out_of_loop'" in swan.detail
    assert "applied: expected 0, got 1" in swan.detail  # applied, to the drill's stand-in only
    assert "rule contain-production-now decided ticket out_of_loop" in swan.detail
    assert not expiry.passed
    assert expiry.detail.startswith("gated: expected True, got False")
    assert "no approval gate: ticket out_of_loop on a production asset" in expiry.detail
    assert failure.passed, failure.line()  # the development runner is still gated and retried
    assert drills.sandboxes(store_url) == []


def test_an_expiry_sweep_that_expires_nothing_fails_the_expiry_drill(
    conn, store_url, default_policy, monkeypatch
) -> None:
    monkeypatch.setattr(approvals, "expire_due", lambda conn, ids=None, now=None: [])

    result = drills.run_drill(store_url, "approval_expiry", default_policy, NOW)

    assert not result.passed
    assert "approval: expected 'expired', got 'pending'" in result.detail
    assert "escalated: expected True, got False" in result.detail
    # The approval rules still refuse a late approval on their own (defence in depth).
    assert result.observed["late_approval_refused"] is True
    assert result.observed["applied"] == 0


def test_a_rollback_that_no_longer_works_fails_the_failure_drill(
    conn, store_url, default_policy, monkeypatch
) -> None:
    def cannot(self, result, session, **kwargs):
        raise RollbackUnsupported("tickets can no longer be closed")

    monkeypatch.setattr(TicketAction, "rollback", cannot)

    result = drills.run_drill(store_url, "action_failure_rollback", default_policy, NOW)

    assert not result.passed
    assert "rollback: expected 'rolled_back', got 'refused'" in result.detail
    assert "tickets can no longer be closed" in result.detail
    assert result.observed["retry"] == "applied" and result.observed["remote_records"] == 1


def test_a_policy_without_black_swan_criteria_fails_the_black_swan_drill(
    conn, store_url, tmp_path
) -> None:
    text = DEFAULT_POLICY.read_text().replace(
        "    known_exploited: true\n    automatable: true\n    total_impact: true\n"
        "    exposed_or_mission_critical: true\n",
        "    known_exploited: false\n    automatable: false\n    total_impact: false\n"
        "    exposed_or_mission_critical: false\n",
    )
    loaded = _policy(tmp_path, text)
    assert not any(loaded.policy.black_swan.criteria.model_dump().values())

    result = drills.run_drill(store_url, "black_swan", loaded, NOW)

    assert not result.passed
    assert "black_swan: expected True, got False" in result.detail
    assert "requires no criterion" in result.detail


def test_break_glass_the_policy_does_not_allow_must_be_refused(conn, store_url, tmp_path) -> None:
    text = DEFAULT_POLICY.read_text().replace("  who: [ciso]\n", "  who: []\n")
    loaded = _policy(tmp_path, text)

    result = drills.run_drill(store_url, "break_glass", loaded, NOW)

    assert result.passed, result.line()
    assert result.observed == {"opened": False, "refused": True}
    assert "an attempt to open break glass is refused and recorded" in result.detail


def test_break_glass_on_a_shadowed_rule_cannot_be_exercised(conn, store_url, tmp_path) -> None:
    text = ACTS_ON_PRODUCTION + "break_glass:\n  who: [ciso]\n  suspends: [the-rest]\n"
    loaded = _policy(tmp_path, text)

    result = drills.run_drill(store_url, "break_glass", loaded, NOW)

    assert not result.passed
    assert "skipped_rules: expected ['(a suspendable rule)'], got []" in result.detail
    assert "its synthetic finding is decided by contain-production-now" in result.detail
    assert result.observed["closed"] is True  # the session it opened was closed again


def test_a_drill_over_its_budget_fails(conn, store_url, default_policy) -> None:
    ticks = itertools.count(0, 500)

    result = drills.run_drill(
        store_url, "black_swan", default_policy, NOW, clock=lambda: float(next(ticks))
    )

    assert not result.passed
    assert result.seconds == 500
    assert result.detail.startswith("took 500.00s, over its 60s budget | context: rule ")
    assert result.observed["decision_mode"] == "in_the_loop"  # right outcome, too slow


# --- the report, the sandbox, the stand-in ------------------------------------------------------


def test_the_report_names_every_failed_and_missing_drill() -> None:
    ok = drills.DrillResult("black_swan", True, 0.1, 60, "fine").as_dict()
    bad = drills.DrillResult("break_glass", False, 0.2, 60, "closed: expected True").as_dict()
    names = ["black_swan", "break_glass", "approval_expiry"]

    with pytest.raises(drills.DrillsFailed) as raised:
        drills.check_results(names, [ok, bad, None])

    message = str(raised.value)
    assert message.startswith("2 of 3 drill(s) failed: ")
    assert "break_glass: FAILED in 0.20s (budget 60s): closed: expected True" in message
    assert "approval_expiry: did not report (its task failed)" in message
    assert "black_swan" not in message
    summary = drills.check_results(names[:1], [ok])
    assert summary == "black_swan: passed in 0.10s (budget 60s): fine"


def test_a_sandbox_sees_only_itself_and_is_dropped_even_on_error(conn, store_url) -> None:
    with pytest.raises(RuntimeError, match="boom"), drills.sandbox(store_url, "probe", NOW) as box:
        [schemas] = box.execute("SELECT current_schemas(false)").fetchone()
        assert len(schemas) == 1 and schemas[0].startswith("autosec_drill_")
        assert drills.sandboxes(store_url) == schemas
        box.execute("INSERT INTO events (name, subject, payload) VALUES ('x', 'y', '{}')")
        box.commit()
        raise RuntimeError("boom")

    assert drills.sandboxes(store_url) == []
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_stale_sandboxes_are_dropped_and_fresh_ones_kept(conn, store_url) -> None:
    old = f"{drills.SANDBOX_PREFIX}{int(NOW.timestamp()) - 3 * 86400}_black_swan_abc123"
    fresh = f"{drills.SANDBOX_PREFIX}{int(NOW.timestamp()) - 60}_break_glass_def456"
    for schema in (old, fresh, "autosec_drillish"):
        conn.execute(f'CREATE SCHEMA "{schema}"')
    conn.commit()
    try:
        assert drills.drop_stale_sandboxes(store_url, NOW) == [old]
        assert drills.sandboxes(store_url) == [fresh]
    finally:
        for schema in (old, fresh, "autosec_drillish"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}"')
        conn.commit()


def test_the_stand_in_session_reaches_nothing_but_its_stand_in() -> None:
    with drills.stand_ins() as stand:
        session = stand.session
        assert session.get(f"{stand.ticketing.url}/healthz").status_code == 200
        with pytest.raises(drills.StandInRefused, match="only its stand-in"):
            session.post("https://tickets.example.com/api/tickets", json={})
        host, port = stand.ticketing.address
        with pytest.raises(drills.StandInRefused):
            session.get(f"http://{host}:{port + 1}/api/tickets")
        session.fail_posts = 1
        assert session.post(f"{stand.ticketing.url}/api/tickets", json={}).status_code == 500
        assert stand.ticketing.tickets() == []
        assert [c[2] for c in session.calls] == [200, 500]
    with pytest.raises(drills.StandInRefused, match="loopback"):
        drills.StandInSession("https://tickets.example.com")

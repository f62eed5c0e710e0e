"""Migration 0002 upgrades a store that holds 0001 data, and downgrades back cleanly."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from autosec.store import approvals, db
from autosec.store import remediation as ledger

pytestmark = pytest.mark.integration
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
HASH = "9" * 64
NEW_TABLES = ("action_rollbacks", "break_glass_sessions", "verification_requests")
NEW_COLUMNS = {
    ("approvals", "kind"),
    ("actions", "review_id"),
    ("actions", "rolled_back_at"),
    ("actions", "rolled_back_by"),
    ("actions", "rollback_reason"),
    ("actions", "rollback_result"),
    ("policy_decisions", "break_glass_session_id"),
}


@pytest.fixture
def fresh_url(postgres_available) -> Iterator[str]:
    name = f"autosec_migration_{os.getpid()}_{secrets.token_hex(3)}"
    db.create_database(ADMIN_URL, name)
    try:
        yield ADMIN_URL.rpartition("/")[0] + "/" + name
    finally:
        db.drop_database(ADMIN_URL, name)


def _seed_0001(conn) -> dict[str, int]:
    """A store as 0001 wrote it: a finding, its decision, a decided gate and two actions."""
    sync = conn.execute(
        "INSERT INTO sync_runs (source, kind, status) VALUES ('cmdb', 'file', 'succeeded') "
        "RETURNING id"
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, "
        "first_seen, last_seen, last_sync_run_id) VALUES ('web', 'web', 'web_app', 'cmdb', "
        "'team-web', 'production', 'high', %s, %s, %s)",
        (T0, T0, sync),
    )
    finding = conn.execute(
        "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, "
        "title, severity, status, priority, location, first_seen, last_seen) VALUES "
        "(%s, 1, 'web', 'nmap', 'nmap.open-port', 'port 443 open', 'high', 'open', 'act', "
        "'{\"port\": 443}', %s, %s) RETURNING id",
        ("a" * 64, T0, T0),
    ).fetchone()[0]
    decision = conn.execute(
        "INSERT INTO policy_decisions (finding_id, policy_hash, policy_version, rule_id, action, "
        "mode, inputs, reasons, decided_at) VALUES (%s, %s, '1', 'gate', 'ticket', "
        "'in_the_loop', '{}', '[]', %s) RETURNING id",
        (finding, HASH, T0),
    ).fetchone()[0]
    approval = conn.execute(
        "INSERT INTO approvals (requester, approvers, quorum, status, summary, rule_id, "
        "policy_hash, created_at, expires_at, decided_at) VALUES ('autosec', '{ciso}', 1, "
        "'approved', 'ticket: port 443 open', 'gate', %s, %s, %s, %s) RETURNING id",
        (HASH, T0, T0 + timedelta(hours=72), T0),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO approval_decisions (approval_id, approver, decision, reason, policy_hash, "
        "decided_at) VALUES (%s, 'ciso', 'approve', 'go', %s, %s)",
        (approval, HASH, T0),
    )
    action = conn.execute(
        "INSERT INTO actions (idempotency_key, decision_id, finding_id, action, mode, status, "
        "request, result, external_ref, approval_id, created_at, updated_at) VALUES "
        "(%s, %s, %s, 'ticket', 'in_the_loop', 'applied', '{}', '{}', 'SEC-1', %s, %s, %s) "
        "RETURNING id",
        ("b" * 64, decision, finding, approval, T0, T0),
    ).fetchone()[0]
    conn.commit()
    return {"finding": finding, "decision": decision, "approval": approval, "action": action}


def _columns(conn) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    ).fetchall()
    return {(t, c) for t, c in rows}


def _tables_present(conn) -> set[str]:
    return {
        t
        for t in NEW_TABLES
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (t,)).fetchone()[0]
    }


def test_0002_upgrades_existing_data_and_downgrades_cleanly(fresh_url) -> None:
    db.upgrade(fresh_url, "0001")
    with db.connect(fresh_url) as conn:
        ids = _seed_0001(conn)
        assert _tables_present(conn) == set()
        assert not NEW_COLUMNS & _columns(conn)

    db.upgrade(fresh_url, "0002")

    with db.connect(fresh_url) as conn:
        assert db.current_revision(conn) == "0002"
        assert _tables_present(conn) == set(NEW_TABLES)
        assert _columns(conn) >= NEW_COLUMNS
        # Existing requests are gates; existing actions have no review, rollback or session.
        [gate] = approvals.list_approvals(conn, kind="approval")
        assert (gate["id"], gate["kind"], gate["action"]) == (ids["approval"], "approval", "ticket")
        assert approvals.list_approvals(conn, kind="review") == []
        action = ledger.load_action(conn, ids["action"])
        assert (action["status"], action["external_ref"]) == ("applied", "SEC-1")
        assert (action["review_id"], action["rolled_back_by"], action["rollback_result"]) == (
            None,
            None,
            None,
        )
        [decision] = ledger.decision_for(conn, ids["finding"])
        assert decision["break_glass_session_id"] is None
        # The new tables take rows that point at the old ones.
        session = ledger.open_break_glass(
            conn, "ciso", "drill", T0, T0 + timedelta(minutes=5), ["gate"], HASH
        )
        assert ledger.add_verification(
            conn, ids["action"], ids["finding"], "web", "nmap", T0, "alice"
        ) == (1, True)
        conn.commit()
        assert ledger.active_break_glass(conn, T0 + timedelta(minutes=1))["id"] == session
        # And they refuse what the schema rules out.
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE approvals SET kind = 'other' WHERE id = %s", (ids["approval"],))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "UPDATE actions SET status = 'rolled_back' WHERE id = %s", (ids["action"],)
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            ledger.open_break_glass(conn, "ciso", " ", T0, T0 + timedelta(minutes=5), [], HASH)
        conn.rollback()

    db.downgrade(fresh_url, "0001")

    with db.connect(fresh_url) as conn:
        assert db.current_revision(conn) == "0001"
        assert _tables_present(conn) == set()
        assert not NEW_COLUMNS & _columns(conn)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM findings), (SELECT count(*) FROM policy_decisions), "
            "(SELECT count(*) FROM approvals), (SELECT count(*) FROM approval_decisions), "
            "(SELECT count(*) FROM actions)"
        ).fetchone()
        assert counts == (1, 1, 1, 1, 1)
        assert conn.execute(
            "SELECT status, external_ref FROM actions WHERE id = %s", (ids["action"],)
        ).fetchone() == ("applied", "SEC-1")

    db.upgrade(fresh_url, "0002")
    with db.connect(fresh_url) as conn:
        assert db.current_revision(conn) == "0002"
        assert approvals.statuses(conn, [ids["approval"]]) == {ids["approval"]: "approved"}

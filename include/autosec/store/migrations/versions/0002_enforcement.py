"""Enforcement: on-the-loop reviews, rollbacks, break glass sessions, verification rescans.

- ``approvals.kind``: 'approval' (a gate that must pass before acting) or 'review' (an action
  already taken that a reviewer keeps or rolls back). Existing rows are gates.
- ``actions``: the review that follows an on-the-loop action, and who rolled it back, when, why
  and with what result. ``action_rollbacks`` logs every attempt (append-only), refusals too.
- ``break_glass_sessions``: who suspended which enforcement rules, why, and for how long;
  ``policy_decisions.break_glass_session_id`` names the session a decision was changed by.
- ``verification_requests``: a rescan asked for after a fix, and what the rescan showed.

Downgrading drops all of it; review requests stay behind as plain requests without a kind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE approvals
    ADD COLUMN kind text NOT NULL DEFAULT 'approval' CHECK (kind IN ('approval', 'review'));
CREATE INDEX approvals_kind_pending_idx ON approvals (kind, id) WHERE status = 'pending';

ALTER TABLE actions
    ADD COLUMN review_id bigint REFERENCES approvals (id),
    ADD COLUMN rolled_back_at timestamptz,
    ADD COLUMN rolled_back_by text,
    ADD COLUMN rollback_reason text,
    ADD COLUMN rollback_result jsonb,
    ADD CONSTRAINT actions_rollback_recorded CHECK (
        status <> 'rolled_back'
        OR (rolled_back_at IS NOT NULL AND rolled_back_by IS NOT NULL
            AND rollback_reason IS NOT NULL)
    ) NOT VALID;
CREATE INDEX actions_review_idx ON actions (review_id) WHERE review_id IS NOT NULL;

CREATE TABLE action_rollbacks (
    id bigserial PRIMARY KEY,
    action_id bigint NOT NULL REFERENCES actions (id),
    review_id bigint REFERENCES approvals (id),
    actor text NOT NULL CHECK (btrim(actor) <> ''),
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    outcome text NOT NULL CHECK (outcome IN ('rolled_back', 'refused', 'failed')),
    detail jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL
);
CREATE INDEX action_rollbacks_action_idx ON action_rollbacks (action_id, id);
CREATE TRIGGER action_rollbacks_append_only
    BEFORE UPDATE OR DELETE ON action_rollbacks
    FOR EACH ROW EXECUTE FUNCTION autosec_append_only();

CREATE TABLE break_glass_sessions (
    id bigserial PRIMARY KEY,
    opened_by text NOT NULL CHECK (btrim(opened_by) <> ''),
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    opened_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    closed_at timestamptz,
    closed_by text,
    suspended_rules text[] NOT NULL,
    policy_hash char(64) NOT NULL,
    CHECK (expires_at > opened_at),
    CHECK ((closed_at IS NULL) = (closed_by IS NULL))
);
CREATE INDEX break_glass_sessions_open_idx ON break_glass_sessions (expires_at)
    WHERE closed_at IS NULL;

ALTER TABLE policy_decisions
    ADD COLUMN break_glass_session_id bigint REFERENCES break_glass_sessions (id);

CREATE TABLE verification_requests (
    id bigserial PRIMARY KEY,
    action_id bigint NOT NULL REFERENCES actions (id),
    finding_id bigint NOT NULL REFERENCES findings (id),
    asset_id text NOT NULL REFERENCES assets (id),
    engine text NOT NULL,
    requested_at timestamptz NOT NULL,
    requested_by text NOT NULL DEFAULT 'autosec',
    scan_run_id bigint REFERENCES scan_runs (id),
    outcome text CHECK (outcome IN ('confirmed_fixed', 'still_present')),
    settled_at timestamptz,
    CHECK ((outcome IS NULL) = (settled_at IS NULL)),
    CHECK (outcome IS NULL OR scan_run_id IS NOT NULL)
);
CREATE UNIQUE INDEX verification_requests_one_pending_idx
    ON verification_requests (action_id) WHERE outcome IS NULL;
CREATE INDEX verification_requests_pending_idx
    ON verification_requests (engine, asset_id) WHERE outcome IS NULL;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS verification_requests;
ALTER TABLE policy_decisions DROP COLUMN IF EXISTS break_glass_session_id;
DROP TABLE IF EXISTS break_glass_sessions;
DROP TABLE IF EXISTS action_rollbacks;
DROP INDEX IF EXISTS actions_review_idx;
ALTER TABLE actions
    DROP CONSTRAINT IF EXISTS actions_rollback_recorded,
    DROP COLUMN IF EXISTS rollback_result,
    DROP COLUMN IF EXISTS rollback_reason,
    DROP COLUMN IF EXISTS rolled_back_by,
    DROP COLUMN IF EXISTS rolled_back_at,
    DROP COLUMN IF EXISTS review_id;
DROP INDEX IF EXISTS approvals_kind_pending_idx;
ALTER TABLE approvals DROP COLUMN IF EXISTS kind;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(DOWNGRADE)

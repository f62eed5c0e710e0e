"""The initial store: inventory, discovery, scans, findings, decisions, actions, approvals, reports.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE sync_runs (
    id bigserial PRIMARY KEY,
    source text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    counts jsonb NOT NULL DEFAULT '{}',
    error text,
    run_ref text
);

CREATE TABLE assets (
    id text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    source text NOT NULL,
    owner text NOT NULL,
    environment text NOT NULL,
    criticality text NOT NULL,
    addresses text[] NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    retired_at timestamptz,
    last_sync_run_id bigint REFERENCES sync_runs (id)
);
CREATE INDEX assets_source_idx ON assets (source, status);

CREATE TABLE asset_changes (
    id bigserial PRIMARY KEY,
    asset_id text NOT NULL REFERENCES assets (id),
    source text NOT NULL,
    change text NOT NULL
        CHECK (change IN ('new', 'changed', 'owner_changed', 'retired', 'reactivated')),
    before jsonb,
    after jsonb,
    sync_run_id bigint NOT NULL REFERENCES sync_runs (id),
    at timestamptz NOT NULL
);
CREATE INDEX asset_changes_asset_idx ON asset_changes (asset_id, at);

CREATE TABLE input_rejections (
    id bigserial PRIMARY KEY,
    stage text NOT NULL,
    source text NOT NULL,
    location text NOT NULL,
    value text,
    reason text NOT NULL,
    run_ref text,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blind_spots (
    id bigserial PRIMARY KEY,
    address text NOT NULL,
    port integer NOT NULL DEFAULT 0,
    source text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    evidence jsonb NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    resolved_at timestamptz,
    UNIQUE (address, port, source)
);

CREATE TABLE scan_runs (
    id bigserial PRIMARY KEY,
    engine text NOT NULL,
    engine_version text,
    asset_ids text[] NOT NULL,
    scope jsonb NOT NULL DEFAULT '{}',
    argv text[],
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out')),
    exit_code integer,
    error text,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    triaged_at timestamptz,
    run_ref text
);
CREATE INDEX scan_runs_untriaged_idx ON scan_runs (id) WHERE triaged_at IS NULL;

CREATE TABLE asset_scan_state (
    asset_id text NOT NULL REFERENCES assets (id),
    engine text NOT NULL,
    last_scan_run_id bigint REFERENCES scan_runs (id),
    last_success_at timestamptz,
    PRIMARY KEY (asset_id, engine)
);

CREATE TABLE evidence (
    id bigserial PRIMARY KEY,
    scan_run_id bigint NOT NULL REFERENCES scan_runs (id),
    sha256 char(64) NOT NULL,
    path text NOT NULL,
    size_bytes bigint NOT NULL,
    media_type text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE observations (
    id bigserial PRIMARY KEY,
    scan_run_id bigint NOT NULL REFERENCES scan_runs (id),
    asset_id text NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX observations_run_idx ON observations (scan_run_id);

CREATE TABLE findings (
    id bigserial PRIMARY KEY,
    fingerprint char(64) NOT NULL UNIQUE,
    fingerprint_version smallint NOT NULL,
    asset_id text NOT NULL REFERENCES assets (id),
    engine text NOT NULL,
    rule_id text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    severity text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    status text NOT NULL
        CHECK (status IN ('open', 'fixed', 'reopened', 'accepted', 'false_positive')),
    priority text NOT NULL,
    cvss_vector text,
    cvss_score numeric(3, 1) CHECK (cvss_score BETWEEN 0 AND 10),
    cve_ids text[] NOT NULL DEFAULT '{}',
    cwe text,
    location jsonb NOT NULL,
    evidence_sha256 char(64),
    owner text,
    due_date date,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    fixed_at timestamptz,
    last_scan_run_id bigint REFERENCES scan_runs (id)
) WITH (fillfactor = 80);
CREATE INDEX findings_asset_engine_idx ON findings (asset_id, engine, status);

CREATE TABLE finding_history (
    id bigserial PRIMARY KEY,
    finding_id bigint NOT NULL REFERENCES findings (id),
    from_status text,
    to_status text NOT NULL,
    scan_run_id bigint REFERENCES scan_runs (id),
    reason text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX finding_history_finding_idx ON finding_history (finding_id, at);

CREATE TABLE policy_decisions (
    id bigserial PRIMARY KEY,
    finding_id bigint NOT NULL REFERENCES findings (id),
    policy_hash char(64) NOT NULL,
    policy_version text NOT NULL,
    rule_id text,
    action text NOT NULL,
    mode text NOT NULL,
    inputs jsonb NOT NULL,
    reasons jsonb NOT NULL,
    decided_at timestamptz NOT NULL,
    run_ref text,
    dry_run boolean NOT NULL DEFAULT false,
    UNIQUE (finding_id, policy_hash, dry_run)
);

CREATE TABLE approvals (
    id bigserial PRIMARY KEY,
    requester text NOT NULL,
    approvers text[] NOT NULL,
    quorum integer NOT NULL CHECK (quorum >= 1),
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    summary text NOT NULL,
    rule_id text,
    policy_hash char(64) NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    decided_at timestamptz,
    escalated_at timestamptz
);
CREATE INDEX approvals_pending_idx ON approvals (id) WHERE status = 'pending';

CREATE TABLE approval_decisions (
    id bigserial PRIMARY KEY,
    approval_id bigint NOT NULL REFERENCES approvals (id),
    approver text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('approve', 'reject', 'expire')),
    reason text,
    policy_hash char(64) NOT NULL,
    decided_at timestamptz NOT NULL,
    UNIQUE (approval_id, approver)
);

-- The decision log is append-only: corrections are new rows, never edits.
CREATE FUNCTION autosec_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER approval_decisions_append_only
    BEFORE UPDATE OR DELETE ON approval_decisions
    FOR EACH ROW EXECUTE FUNCTION autosec_append_only();

CREATE TABLE actions (
    id bigserial PRIMARY KEY,
    idempotency_key char(64) NOT NULL UNIQUE,
    decision_id bigint NOT NULL REFERENCES policy_decisions (id),
    finding_id bigint NOT NULL REFERENCES findings (id),
    action text NOT NULL,
    mode text NOT NULL,
    status text NOT NULL CHECK (status IN ('planned', 'awaiting_approval', 'applied',
        'dry_run', 'failed', 'rejected', 'rolled_back')),
    dry_run boolean NOT NULL DEFAULT false,
    request jsonb NOT NULL,
    result jsonb,
    external_ref text,
    approval_id bigint REFERENCES approvals (id),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE reports (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    media_type text NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    path text NOT NULL,
    sha256 char(64) NOT NULL,
    size_bytes bigint NOT NULL,
    policy_hash char(64),
    created_at timestamptz NOT NULL
);

CREATE TABLE events (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    subject text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_name_idx ON events (name, at);
"""

TABLES = [
    "events",
    "reports",
    "actions",
    "approval_decisions",
    "approvals",
    "policy_decisions",
    "finding_history",
    "findings",
    "observations",
    "evidence",
    "asset_scan_state",
    "scan_runs",
    "blind_spots",
    "input_rejections",
    "asset_changes",
    "assets",
    "sync_runs",
]


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS autosec_append_only()")

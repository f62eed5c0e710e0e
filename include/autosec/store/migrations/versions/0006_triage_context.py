"""Triage context: exceptions (risk acceptance, false positive) and the decision points behind
each finding's priority.

- ``findings``: what enrichment knew when triage last saw the finding (known exploited, the KEV
  due date and ransomware use, EPSS score and percentile, the CVSS version its vector parsed as),
  the SSVC decision points behind its priority (``priority_decision_id``), where its owner came
  from, when it was declared a black swan (set once, so the event is raised once), and the
  exception that set it to accepted / false positive.
- ``priority_decisions``: each distinct set of decision points once (the outcome, the table
  version and row, every point, and how each inferred point was inferred), append-only. A
  million findings share a few hundred of them, so each finding row carries a 4-byte reference
  instead of ~350 bytes of JSON: ``JOIN priority_decisions d ON d.id = f.priority_decision_id``
  and read ``d.points``.
- ``finding_history.exception_id``: the exception a status change was made by.
- ``finding_exceptions``: a risk acceptance or false positive, scoped to one finding
  (fingerprint), one CVE on every asset, or one asset; with a reason, who asked, who approved
  (never the requester: a CHECK refuses it whatever the caller), and an expiry.
- ``finding_exception_log``: every step of every exception (requested, approved, rejected,
  revoked, expired), append-only.
- ``scan_runs.triage_status`` / ``triage_error``: a run whose triaged batch broke the data
  contract is marked 'rejected' with the failing expectations, and nothing of it is stored.
- Fingerprints: stored version 1 fingerprints are recomputed as version 2 (see
  ``autosec.domain.fingerprint``); downgrading recomputes them as version 1. Either way, when
  two findings would share a fingerprint the migration stops, names them, and writes nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE finding_exceptions (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('risk_acceptance', 'false_positive')),
    scope text NOT NULL CHECK (scope IN ('finding', 'cve', 'asset')),
    fingerprint char(64),
    cve_id text,
    asset_id text REFERENCES assets (id),
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    requested_by text NOT NULL CHECK (btrim(requested_by) <> ''),
    requested_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'requested'
        CHECK (status IN ('requested', 'approved', 'rejected', 'revoked', 'expired')),
    approved_by text,
    approved_at timestamptz,
    decided_by text,
    decided_at timestamptz,
    decision_reason text,
    CHECK (expires_at > requested_at),
    CONSTRAINT finding_exceptions_one_target CHECK (
        (scope = 'finding' AND fingerprint IS NOT NULL AND cve_id IS NULL AND asset_id IS NULL)
        OR (scope = 'cve' AND cve_id ~ '^CVE-[0-9]{4}-[0-9]{4,}$'
            AND fingerprint IS NULL AND asset_id IS NULL)
        OR (scope = 'asset' AND asset_id IS NOT NULL AND fingerprint IS NULL AND cve_id IS NULL)
    ),
    -- Nobody approves their own exception, whatever the caller checked (case and blanks ignored).
    CONSTRAINT finding_exceptions_not_self_approved CHECK (
        approved_by IS NULL OR lower(btrim(approved_by)) <> lower(btrim(requested_by))
    ),
    CONSTRAINT finding_exceptions_approval_recorded CHECK (
        (approved_by IS NULL) = (approved_at IS NULL)
        AND (status <> 'approved' OR approved_by IS NOT NULL)
    ),
    CONSTRAINT finding_exceptions_refusal_explained CHECK (
        status NOT IN ('rejected', 'revoked') OR (
            btrim(coalesce(decided_by, '')) <> ''
            AND btrim(coalesce(decision_reason, '')) <> ''
            AND decided_at IS NOT NULL
        )
    )
);
CREATE INDEX finding_exceptions_active_idx ON finding_exceptions (expires_at)
    WHERE status = 'approved';
CREATE INDEX finding_exceptions_fingerprint_idx ON finding_exceptions (fingerprint)
    WHERE scope = 'finding';
CREATE INDEX finding_exceptions_cve_idx ON finding_exceptions (cve_id) WHERE scope = 'cve';
CREATE INDEX finding_exceptions_asset_idx ON finding_exceptions (asset_id) WHERE scope = 'asset';

CREATE TABLE finding_exception_log (
    id bigserial PRIMARY KEY,
    exception_id bigint NOT NULL REFERENCES finding_exceptions (id),
    at timestamptz NOT NULL,
    step text NOT NULL
        CHECK (step IN ('requested', 'approved', 'rejected', 'revoked', 'expired')),
    actor text NOT NULL CHECK (btrim(actor) <> ''),
    reason text,
    findings integer NOT NULL DEFAULT 0 CHECK (findings >= 0)
);
CREATE INDEX finding_exception_log_exception_idx ON finding_exception_log (exception_id, id);
CREATE TRIGGER finding_exception_log_append_only
    BEFORE UPDATE OR DELETE ON finding_exception_log
    FOR EACH ROW EXECUTE FUNCTION autosec_append_only();

CREATE TABLE priority_decisions (
    id serial PRIMARY KEY,
    points jsonb NOT NULL UNIQUE CHECK (points ? 'priority' AND points ? 'table'),
    first_used_at timestamptz NOT NULL DEFAULT now()
);
-- Findings point at these rows without a foreign key (a per-row check would cost every
-- upsert); the rows are never changed or removed instead.
CREATE TRIGGER priority_decisions_append_only
    BEFORE UPDATE OR DELETE ON priority_decisions
    FOR EACH ROW EXECUTE FUNCTION autosec_append_only();

ALTER TABLE findings
    ADD COLUMN priority_decision_id integer,
    ADD COLUMN known_exploited boolean NOT NULL DEFAULT false,
    ADD COLUMN kev_due_date date,
    ADD COLUMN kev_ransomware boolean NOT NULL DEFAULT false,
    ADD COLUMN epss_score numeric(6, 5) CHECK (epss_score BETWEEN 0 AND 1),
    ADD COLUMN epss_percentile numeric(6, 5) CHECK (epss_percentile BETWEEN 0 AND 1),
    ADD COLUMN cvss_version text,
    ADD COLUMN owner_source text,
    ADD COLUMN black_swan_at timestamptz,
    ADD COLUMN exception_id bigint REFERENCES finding_exceptions (id);
CREATE INDEX findings_exception_idx ON findings (exception_id) WHERE exception_id IS NOT NULL;

ALTER TABLE finding_history
    ADD COLUMN exception_id bigint REFERENCES finding_exceptions (id);

ALTER TABLE scan_runs
    ADD COLUMN triage_status text CHECK (triage_status IN ('triaged', 'rejected')),
    ADD COLUMN triage_error text,
    ADD CONSTRAINT scan_runs_rejection_explained CHECK (
        triage_status IS DISTINCT FROM 'rejected' OR btrim(coalesce(triage_error, '')) <> ''
    );
"""

DOWNGRADE = """
ALTER TABLE scan_runs
    DROP CONSTRAINT IF EXISTS scan_runs_rejection_explained,
    DROP COLUMN IF EXISTS triage_error,
    DROP COLUMN IF EXISTS triage_status;
ALTER TABLE finding_history DROP COLUMN IF EXISTS exception_id;
DROP INDEX IF EXISTS findings_exception_idx;
ALTER TABLE findings
    DROP COLUMN IF EXISTS exception_id,
    DROP COLUMN IF EXISTS black_swan_at,
    DROP COLUMN IF EXISTS owner_source,
    DROP COLUMN IF EXISTS cvss_version,
    DROP COLUMN IF EXISTS epss_percentile,
    DROP COLUMN IF EXISTS epss_score,
    DROP COLUMN IF EXISTS kev_ransomware,
    DROP COLUMN IF EXISTS kev_due_date,
    DROP COLUMN IF EXISTS known_exploited,
    DROP COLUMN IF EXISTS priority_decision_id;
DROP TABLE IF EXISTS priority_decisions;
DROP TABLE IF EXISTS finding_exception_log;
DROP TABLE IF EXISTS finding_exceptions;
"""


# The fingerprint versions this revision moves between: fixed here, whatever later releases use.
FINGERPRINT_VERSION_AFTER = 2
FINGERPRINT_VERSION_BEFORE = 1


def _refingerprint(version: int) -> None:
    from autosec.store.findings import refingerprint_findings

    refingerprint_findings(op.get_bind().connection.driver_connection, version)


def upgrade() -> None:
    op.execute(SCHEMA)
    _refingerprint(FINGERPRINT_VERSION_AFTER)


def downgrade() -> None:
    _refingerprint(FINGERPRINT_VERSION_BEFORE)
    op.execute(DOWNGRADE)

"""Compliance packs: the framework and the pieces of each report.

- ``report_packs``: one row per compliance pack built: the framework and its version, the
  period, the policy it was built under and the sha256 of its manifest (which lists the sha256
  of every piece). The same framework, period and manifest are one pack: building it again
  records nothing new.
- ``reports.framework`` / ``reports.pack_id``: every piece of a pack (HTML, PDF, POA&M CSV and
  XLSX, OCSF, SARIF, manifest) is a report row of its own with its sha256, naming the framework
  and the pack it belongs to. Posture reports name neither.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE report_packs (
    id bigserial PRIMARY KEY,
    framework text NOT NULL CHECK (framework ~ '^[a-z][a-z0-9_]*$'),
    framework_version text NOT NULL,
    framework_sha256 char(64) NOT NULL,
    period_start date NOT NULL,
    period_end date NOT NULL,
    policy_hash char(64),
    manifest_sha256 char(64) NOT NULL,
    pieces integer NOT NULL CHECK (pieces > 0),
    created_at timestamptz NOT NULL,
    run_ref text,
    CHECK (period_end >= period_start),
    UNIQUE (framework, period_start, period_end, manifest_sha256)
);
CREATE INDEX report_packs_framework_period_idx
    ON report_packs (framework, period_end DESC, id DESC);

ALTER TABLE reports
    ADD COLUMN framework text,
    ADD COLUMN pack_id bigint REFERENCES report_packs (id),
    ADD CONSTRAINT reports_pack_piece_names_framework CHECK (
        pack_id IS NULL OR framework IS NOT NULL
    );
CREATE INDEX reports_pack_idx ON reports (pack_id) WHERE pack_id IS NOT NULL;
CREATE INDEX reports_framework_idx ON reports (framework, period_end DESC)
    WHERE framework IS NOT NULL;
"""

DOWNGRADE = """
DROP INDEX IF EXISTS reports_framework_idx;
DROP INDEX IF EXISTS reports_pack_idx;
ALTER TABLE reports
    DROP CONSTRAINT IF EXISTS reports_pack_piece_names_framework,
    DROP COLUMN IF EXISTS pack_id,
    DROP COLUMN IF EXISTS framework;
DROP TABLE IF EXISTS report_packs;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""Daily rollups the dashboard pages and the metrics endpoint read, so they stay fast at
millions of findings.

- ``rollup_findings_daily``: per day, team (the findings' owner; '' when nobody owns them) and
  severity: what was open at the end of the day, how much of it was past its due date (an SLA
  breach), how much of it is known exploited, what was opened (new or reopened) and fixed that
  day, and the seconds from first seen to fixed summed over the day's fixes, so a mean time to
  fix over any period is an exact sum / count. Rows that would be all zero are not kept.
- ``rollup_daily``: one row a day for the estate: active assets, assets scanned within their
  cadence, open blind spots and approvals waiting. ``basis`` says how the row was made:
  'snapshot' (taken that day from the store as it was; the scan cadence is each asset's own
  adaptive cadence) or 'history' (rebuilt later from finding history, scan runs and the
  lifecycle timestamps; scanned within cadence then means a successful run of an enabled engine
  within the default cadence). Inventory completeness stays in ``inventory_completeness``.
- ``rollup_overdue_assets``: the assets the latest snapshot found overdue by their cadence, and
  for which enabled engines, so the Coverage page lists them without recomputing every asset's
  cadence on each view. Replaced by every snapshot.
- Indexes for the Findings page (ordered by due date, filtered by owner) and for the day's
  history (``finding_history.at``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE rollup_findings_daily (
    day date NOT NULL,
    team text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    open_findings integer NOT NULL DEFAULT 0 CHECK (open_findings >= 0),
    sla_breached integer NOT NULL DEFAULT 0 CHECK (sla_breached >= 0),
    kev_open integer NOT NULL DEFAULT 0 CHECK (kev_open >= 0),
    opened integer NOT NULL DEFAULT 0 CHECK (opened >= 0),
    fixed integer NOT NULL DEFAULT 0 CHECK (fixed >= 0),
    fix_seconds double precision NOT NULL DEFAULT 0 CHECK (fix_seconds >= 0),
    PRIMARY KEY (day, team, severity),
    CHECK (sla_breached <= open_findings AND kev_open <= open_findings)
);

CREATE TABLE rollup_daily (
    day date PRIMARY KEY,
    basis text NOT NULL CHECK (basis IN ('snapshot', 'history')),
    assets_total integer NOT NULL CHECK (assets_total >= 0),
    assets_within_cadence integer NOT NULL CHECK (assets_within_cadence >= 0),
    blind_spots_open integer NOT NULL CHECK (blind_spots_open >= 0),
    approvals_waiting integer NOT NULL CHECK (approvals_waiting >= 0),
    computed_at timestamptz NOT NULL,
    CHECK (assets_within_cadence <= assets_total)
);

CREATE TABLE rollup_overdue_assets (
    asset_id text PRIMARY KEY,
    kind text NOT NULL,
    owner text,
    engines text[] NOT NULL CHECK (cardinality(engines) > 0),
    computed_at timestamptz NOT NULL
);

CREATE INDEX findings_due_order_idx
    ON findings ((coalesce(due_date, 'infinity'::date)), id);
CREATE INDEX findings_owner_due_order_idx
    ON findings (owner, (coalesce(due_date, 'infinity'::date)), id);
CREATE INDEX finding_history_at_idx ON finding_history (at);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS finding_history_at_idx;
DROP INDEX IF EXISTS findings_owner_due_order_idx;
DROP INDEX IF EXISTS findings_due_order_idx;
DROP TABLE IF EXISTS rollup_overdue_assets;
DROP TABLE IF EXISTS rollup_daily;
DROP TABLE IF EXISTS rollup_findings_daily;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(DOWNGRADE)

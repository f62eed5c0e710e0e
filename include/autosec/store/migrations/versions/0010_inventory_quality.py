"""Inventory quality, per source and per day: how much of the inventory can be trusted.

- ``inventory_quality_daily``: one row per (day, source), rewritten during the day and frozen
  once it is over. For the source's active assets: how many have a real owner (not blank, not a
  placeholder such as ``unknown``), how many a known environment, how many are stale (the source
  has not synced successfully within its ``stale_after_days``, or its last good sync did not
  confirm them), and how many rows its latest good sync quarantined. The figures add up across
  sources, so the whole inventory's row for a day is their sum.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE inventory_quality_daily (
            day date NOT NULL,
            source text NOT NULL,
            active integer NOT NULL CHECK (active >= 0),
            with_owner integer NOT NULL CHECK (with_owner BETWEEN 0 AND active),
            with_environment integer NOT NULL CHECK (with_environment BETWEEN 0 AND active),
            stale integer NOT NULL CHECK (stale BETWEEN 0 AND active),
            quarantined integer NOT NULL DEFAULT 0 CHECK (quarantined >= 0),
            last_success_at timestamptz,
            stale_after_days integer NOT NULL CHECK (stale_after_days >= 1),
            recorded_at timestamptz NOT NULL,
            PRIMARY KEY (day, source)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS inventory_quality_daily")

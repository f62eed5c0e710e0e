"""Follow-up after acting: ticket lifecycle and event delivery.

- ``actions.follow_up``: every follow-up on the remote object (a comment on reopen, the
  close once the finding is fixed), with ``closed_at`` once a ticket was closed as fixed.
- ``events.delivered_at``: when the notifier delivered the event (NULL: not yet), so a
  delivery run sends each event once and a digest never repeats itself.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE actions
            ADD COLUMN closed_at timestamptz,
            ADD COLUMN follow_up jsonb NOT NULL DEFAULT '[]';
        ALTER TABLE events ADD COLUMN delivered_at timestamptz;
        CREATE INDEX events_undelivered_idx ON events (id) WHERE delivered_at IS NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS events_undelivered_idx;
        ALTER TABLE events DROP COLUMN IF EXISTS delivered_at;
        ALTER TABLE actions DROP COLUMN IF EXISTS follow_up, DROP COLUMN IF EXISTS closed_at;
        """
    )

"""Notification deliveries: per-team digests, rate limits, and SLA breaches raised once.

- ``events.routed_at``: when the delivery run handed the event to the routes that want it
  (NULL: not yet). Each event is routed once; events already delivered keep their time.
- ``notification_deliveries``: one message to one channel. A *digest* gathers a route's
  events about one team while it is ``open`` (one open digest per route and team); it is
  ``sealed`` with its text, recipients and idempotency key frozen before the first attempt to
  send it, and ``sent`` once the channel took it. A send that may have happened but was not
  recorded is repeated with the same text and key (at least once; the receiver can tell a
  repeat). A digest the channel's rate limit had no room for is ``summarised`` into one
  *overflow* message. ``failed``: gave up after repeated failed sends; ``dropped``: its route
  is no longer configured.
- ``notification_items``: which event went into which digest, once per route.
- ``actions_approval_idx``: an approval event's team is found through its action.
- ``sla_breaches``: an open finding past its due date, recorded once per breach so
  ``sla.breached`` is raised once. A breach ends when the finding is closed or reopened, or its
  due date moves; a later breach of the same finding is a new one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE events ADD COLUMN routed_at timestamptz;
UPDATE events SET routed_at = delivered_at WHERE delivered_at IS NOT NULL;
CREATE INDEX events_unrouted_idx ON events (id) WHERE routed_at IS NULL;

CREATE TABLE notification_deliveries (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('digest', 'overflow')),
    channel text NOT NULL CHECK (btrim(channel) <> ''),
    route text,
    team text,
    status text NOT NULL
        CHECK (status IN ('open', 'sealed', 'sent', 'summarised', 'failed', 'dropped')),
    opened_at timestamptz NOT NULL,
    not_before timestamptz NOT NULL,
    sealed_at timestamptz,
    sent_at timestamptz,
    summary_id bigint REFERENCES notification_deliveries (id),
    idempotency_key char(64) UNIQUE,
    message jsonb,
    events integer NOT NULL DEFAULT 0 CHECK (events >= 0),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    CONSTRAINT notification_deliveries_digest_names_route_and_team CHECK (
        (kind = 'digest') = (route IS NOT NULL AND team IS NOT NULL)
    ),
    CONSTRAINT notification_deliveries_sealed_is_frozen CHECK (
        status NOT IN ('sealed', 'sent', 'failed')
        OR (message IS NOT NULL AND idempotency_key IS NOT NULL AND sealed_at IS NOT NULL)
    ),
    CONSTRAINT notification_deliveries_sent_has_time CHECK (
        (status = 'sent') = (sent_at IS NOT NULL)
    ),
    CONSTRAINT notification_deliveries_summarised_names_summary CHECK (
        (status = 'summarised') = (summary_id IS NOT NULL)
    )
);
CREATE UNIQUE INDEX notification_deliveries_open_idx ON notification_deliveries (route, team)
    WHERE status = 'open';
CREATE INDEX notification_deliveries_pending_idx ON notification_deliveries (channel, id)
    WHERE status IN ('open', 'sealed');
CREATE INDEX notification_deliveries_window_idx ON notification_deliveries (channel, sealed_at)
    WHERE status IN ('sealed', 'sent', 'failed');
CREATE INDEX notification_deliveries_last_digest_idx
    ON notification_deliveries (route, team, sealed_at DESC)
    WHERE kind = 'digest' AND sealed_at IS NOT NULL;
CREATE INDEX notification_deliveries_summary_idx ON notification_deliveries (summary_id)
    WHERE summary_id IS NOT NULL;

CREATE TABLE notification_items (
    route text NOT NULL,
    event_id bigint NOT NULL REFERENCES events (id),
    delivery_id bigint NOT NULL REFERENCES notification_deliveries (id),
    PRIMARY KEY (route, event_id)
);
CREATE INDEX notification_items_delivery_idx ON notification_items (delivery_id, event_id);
-- An approval event's team is its action's finding's owner: found by the approval id.
CREATE INDEX actions_approval_idx ON actions (approval_id) WHERE approval_id IS NOT NULL;

CREATE TABLE sla_breaches (
    id bigserial PRIMARY KEY,
    finding_id bigint NOT NULL REFERENCES findings (id),
    due_date date NOT NULL,
    breached_at timestamptz NOT NULL,
    ended_at timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= breached_at)
);
CREATE UNIQUE INDEX sla_breaches_active_idx ON sla_breaches (finding_id) WHERE ended_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS sla_breaches;
DROP INDEX IF EXISTS actions_approval_idx;
DROP TABLE IF EXISTS notification_items;
DROP TABLE IF EXISTS notification_deliveries;
DROP INDEX IF EXISTS events_unrouted_idx;
ALTER TABLE events DROP COLUMN IF EXISTS routed_at;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(DOWNGRADE)

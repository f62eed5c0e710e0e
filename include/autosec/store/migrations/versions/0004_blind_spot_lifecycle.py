"""The blind spot lifecycle: new -> assigned -> adopted or dismissed, never silently dropped.

- ``blind_spots``: the owner and the assignment rule that named it, the lifecycle, and the
  decision (who, why, when, and the inventory asset it was adopted as). A decided blind spot is
  no longer open (``status = 'resolved'``) but stays decided when discovery sees it again.
- ``blind_spot_log``: every step of every blind spot (found, assigned, dismissed, adopted, seen
  again after a decision, no longer seen), append-only.
- ``inventory_completeness``: one row a day, inventoried / (inventoried + open blind spots).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE blind_spots
            ADD COLUMN owner text,
            ADD COLUMN assigned_by_rule text,
            ADD COLUMN lifecycle text NOT NULL DEFAULT 'new'
                CHECK (lifecycle IN ('new', 'assigned', 'adopted', 'dismissed')),
            ADD COLUMN decided_by text,
            ADD COLUMN decision_reason text,
            ADD COLUMN decided_at timestamptz,
            ADD COLUMN adopted_asset_id text REFERENCES assets (id),
            ADD CONSTRAINT blind_spots_dismissal_is_explained CHECK (
                lifecycle <> 'dismissed' OR (
                    btrim(coalesce(decided_by, '')) <> ''
                    AND btrim(coalesce(decision_reason, '')) <> ''
                    AND decided_at IS NOT NULL
                )
            ),
            ADD CONSTRAINT blind_spots_adoption_names_asset CHECK (
                lifecycle <> 'adopted' OR (
                    btrim(coalesce(decided_by, '')) <> ''
                    AND adopted_asset_id IS NOT NULL
                    AND decided_at IS NOT NULL
                )
            ),
            ADD CONSTRAINT blind_spots_assignment_names_owner CHECK (
                lifecycle <> 'assigned' OR btrim(coalesce(owner, '')) <> ''
            );
        CREATE INDEX blind_spots_lifecycle_idx ON blind_spots (lifecycle, status);

        CREATE TABLE blind_spot_log (
            id bigserial PRIMARY KEY,
            blind_spot_id bigint NOT NULL REFERENCES blind_spots (id),
            at timestamptz NOT NULL,
            from_lifecycle text,
            to_lifecycle text NOT NULL,
            actor text NOT NULL,
            reason text
        );
        CREATE INDEX blind_spot_log_spot_idx ON blind_spot_log (blind_spot_id, id);
        CREATE TRIGGER blind_spot_log_append_only
            BEFORE UPDATE OR DELETE ON blind_spot_log
            FOR EACH ROW EXECUTE FUNCTION autosec_append_only();

        CREATE TABLE inventory_completeness (
            day date PRIMARY KEY,
            inventoried integer NOT NULL CHECK (inventoried >= 0),
            open_blind_spots integer NOT NULL CHECK (open_blind_spots >= 0),
            ratio numeric CHECK (ratio >= 0 AND ratio <= 1)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS inventory_completeness;
        DROP TABLE IF EXISTS blind_spot_log;
        DROP INDEX IF EXISTS blind_spots_lifecycle_idx;
        ALTER TABLE blind_spots
            DROP CONSTRAINT IF EXISTS blind_spots_assignment_names_owner,
            DROP CONSTRAINT IF EXISTS blind_spots_adoption_names_asset,
            DROP CONSTRAINT IF EXISTS blind_spots_dismissal_is_explained,
            DROP COLUMN IF EXISTS adopted_asset_id,
            DROP COLUMN IF EXISTS decided_at,
            DROP COLUMN IF EXISTS decision_reason,
            DROP COLUMN IF EXISTS decided_by,
            DROP COLUMN IF EXISTS lifecycle,
            DROP COLUMN IF EXISTS assigned_by_rule,
            DROP COLUMN IF EXISTS owner;
        """
    )

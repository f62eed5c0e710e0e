"""Vulnerability intelligence: OSV advisories, the KEV catalog, EPSS scores, feed state.

- ``intel_advisories``: one row per OSV record (GHSA, PYSEC, ...), the normalised record kept
  whole as JSONB so matching reads exactly what was loaded; aliases indexed for CVE lookups.
- ``intel_affected_packages``: one row per ``affected`` entry, keyed for matching by
  (``ecosystem_key``, ``name_key``): the base ecosystem (``Debian`` for ``Debian:11``) and the
  normalised name (PEP 503 for PyPI). Ranges stay JSONB: matching needs the ecosystem's own
  version ordering, which SQL does not have.
- ``intel_kev``: the CISA KEV catalog, one row per CVE, as the last complete catalog listed it.
- ``intel_epss``: one EPSS score per CVE (bulk loaded: COPY into a staging table, one upsert).
- ``intel_feed_state``: per feed, what is loaded (source, version, the feed's own date, record
  count, sha256 of the file) and the last failed attempt, so a stale feed is visible.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE intel_advisories (
            id text PRIMARY KEY CHECK (btrim(id) <> ''),
            aliases text[] NOT NULL DEFAULT '{}',
            summary text NOT NULL DEFAULT '',
            modified timestamptz NOT NULL,
            published timestamptz,
            withdrawn timestamptz,
            record jsonb NOT NULL,
            feed text NOT NULL,
            loaded_at timestamptz NOT NULL
        );
        CREATE INDEX intel_advisories_aliases_idx ON intel_advisories USING gin (aliases);

        CREATE TABLE intel_affected_packages (
            advisory_id text NOT NULL REFERENCES intel_advisories (id) ON DELETE CASCADE,
            position integer NOT NULL CHECK (position >= 0),
            ecosystem text NOT NULL,
            name text NOT NULL,
            ecosystem_key text NOT NULL,
            name_key text NOT NULL,
            purl text,
            ranges jsonb NOT NULL DEFAULT '[]',
            versions text[] NOT NULL DEFAULT '{}',
            PRIMARY KEY (advisory_id, position)
        );
        CREATE INDEX intel_affected_packages_lookup_idx
            ON intel_affected_packages (ecosystem_key, name_key);

        CREATE TABLE intel_kev (
            cve_id text PRIMARY KEY CHECK (cve_id ~ '^CVE-[0-9]{4}-[0-9]{4,19}$'),
            vendor_project text NOT NULL,
            product text NOT NULL,
            vulnerability_name text NOT NULL,
            date_added date NOT NULL,
            short_description text NOT NULL,
            required_action text NOT NULL,
            due_date date NOT NULL,
            known_ransomware_campaign_use text NOT NULL,
            notes text NOT NULL DEFAULT '',
            cwes text[] NOT NULL DEFAULT '{}',
            loaded_at timestamptz NOT NULL
        );

        CREATE TABLE intel_epss (
            cve_id text PRIMARY KEY CHECK (cve_id ~ '^CVE-[0-9]{4}-[0-9]{4,19}$'),
            epss numeric(6, 5) NOT NULL CHECK (epss BETWEEN 0 AND 1),
            percentile numeric(6, 5) NOT NULL CHECK (percentile BETWEEN 0 AND 1),
            score_date date,
            model_version text
        ) WITH (fillfactor = 80);

        CREATE TABLE intel_feed_state (
            feed text PRIMARY KEY CHECK (btrim(feed) <> ''),
            source text,
            version text,
            feed_date timestamptz,
            loaded_at timestamptz,
            record_count integer CHECK (record_count >= 0),
            sha256 char(64),
            last_attempt_at timestamptz,
            last_error text
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS intel_feed_state;
        DROP TABLE IF EXISTS intel_epss;
        DROP TABLE IF EXISTS intel_kev;
        DROP TABLE IF EXISTS intel_affected_packages;
        DROP TABLE IF EXISTS intel_advisories;
        """
    )

"""Vulnerability intelligence in the store: advisories, KEV, EPSS and each feed's state.

Loads are bulk and idempotent: rows stream through COPY into a temporary staging table and one
``INSERT ... ON CONFLICT`` moves them in, touching only what changed. None of these functions
commits: the stage commits the data and the feed's state together, so a failed load leaves the
last snapshot exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row

from autosec.intel.epss import EpssScore
from autosec.intel.kev import KevCatalog, KevEntry
from autosec.intel.matching import package_key
from autosec.intel.osv import Advisory, advisory_from_dict


@dataclass(frozen=True)
class LoadCounts:
    """What one load changed: ``total`` distinct records read, of which new and updated."""

    total: int
    new: int
    updated: int
    removed: int = 0

    @property
    def unchanged(self) -> int:
        return self.total - self.new - self.updated

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
        }


@dataclass(frozen=True)
class FeedState:
    feed: str
    source: str | None
    version: str | None
    feed_date: datetime | None
    loaded_at: datetime | None
    record_count: int | None
    sha256: str | None
    last_attempt_at: datetime | None
    last_error: str | None


# --- advisories -----------------------------------------------------------------------------


def load_advisories(
    conn: psycopg.Connection, advisories: Iterable[Advisory], feed: str, now: datetime
) -> LoadCounts:
    """Upsert advisories (streamed; an older ``modified`` never replaces a newer record) and
    rebuild the affected-package rows of the records that changed."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS intel_advisory_stage (id text, aliases text[], "
        "summary text, modified timestamptz, published timestamptz, withdrawn timestamptz, "
        "record jsonb, keys jsonb) ON COMMIT DELETE ROWS"
    )
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS intel_advisory_changed (id text PRIMARY KEY, "
        "inserted boolean) ON COMMIT DELETE ROWS"
    )
    conn.execute("TRUNCATE intel_advisory_stage, intel_advisory_changed")
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY intel_advisory_stage (id, aliases, summary, modified, published, withdrawn, "
            "record, keys) FROM STDIN"
        ) as copy,
    ):
        for advisory in advisories:
            keys = [
                list(package_key(a.ecosystem, a.name)) if a.name else ["", ""]
                for a in advisory.affected
            ]
            copy.write_row(
                (
                    advisory.id,
                    list(advisory.aliases),
                    advisory.summary,
                    advisory.modified,
                    advisory.published,
                    advisory.withdrawn,
                    json.dumps(advisory.to_dict(), sort_keys=True),
                    json.dumps(keys),
                )
            )
    incoming = (
        "(SELECT DISTINCT ON (id) * FROM intel_advisory_stage ORDER BY id, modified DESC) AS s"
    )
    total = conn.execute(f"SELECT count(*) FROM {incoming}").fetchone()[0]  # noqa: S608
    conn.execute(
        "WITH upserted AS ("  # noqa: S608 - only module constants are interpolated
        " INSERT INTO intel_advisories (id, aliases, summary, modified, published, withdrawn,"
        "  record, feed, loaded_at)"
        f" SELECT s.id, s.aliases, s.summary, s.modified, s.published, s.withdrawn, s.record,"
        f"  %(feed)s, %(now)s FROM {incoming}"
        " ON CONFLICT (id) DO UPDATE SET aliases = EXCLUDED.aliases,"
        "  summary = EXCLUDED.summary, modified = EXCLUDED.modified,"
        "  published = EXCLUDED.published, withdrawn = EXCLUDED.withdrawn,"
        "  record = EXCLUDED.record, feed = EXCLUDED.feed, loaded_at = EXCLUDED.loaded_at"
        " WHERE intel_advisories.record IS DISTINCT FROM EXCLUDED.record"
        "  AND intel_advisories.modified <= EXCLUDED.modified"
        " RETURNING id, (xmax = 0) AS inserted) "
        "INSERT INTO intel_advisory_changed (id, inserted) SELECT id, inserted FROM upserted",
        {"feed": feed, "now": now},
    )
    conn.execute(
        "DELETE FROM intel_affected_packages p USING intel_advisory_changed c "
        "WHERE p.advisory_id = c.id AND NOT c.inserted"
    )
    conn.execute(
        "INSERT INTO intel_affected_packages (advisory_id, position, ecosystem, name,"  # noqa: S608
        " ecosystem_key, name_key, purl, ranges, versions) "
        "SELECT s.id, a.ordinality - 1, coalesce(a.value -> 'package' ->> 'ecosystem', ''),"
        " coalesce(a.value -> 'package' ->> 'name', ''), s.keys -> (a.ordinality::int - 1) ->> 0,"
        " s.keys -> (a.ordinality::int - 1) ->> 1, a.value -> 'package' ->> 'purl',"
        " coalesce(a.value -> 'ranges', '[]'::jsonb),"
        " ARRAY(SELECT jsonb_array_elements_text(coalesce(a.value -> 'versions', '[]'::jsonb)))"
        f" FROM {incoming} JOIN intel_advisory_changed c ON c.id = s.id"
        " CROSS JOIN LATERAL jsonb_array_elements(s.record -> 'affected') WITH ORDINALITY AS a"
    )
    new, updated = conn.execute(
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
        "FROM intel_advisory_changed"
    ).fetchone()
    return LoadCounts(total=total, new=new, updated=updated)


def advisories_for(conn: psycopg.Connection, keys: Collection[tuple[str, str]]) -> list[Advisory]:
    """Advisories (not withdrawn) with an affected entry for any (ecosystem, name) key, as
    :func:`autosec.intel.matching.package_key` spells them."""
    keys = sorted(set(keys))
    if not keys:
        return []
    rows = conn.execute(
        "SELECT a.record FROM intel_advisories a WHERE a.withdrawn IS NULL AND EXISTS ("
        " SELECT 1 FROM intel_affected_packages p"
        " JOIN unnest(%s::text[], %s::text[]) AS k(ecosystem_key, name_key)"
        "  ON p.ecosystem_key = k.ecosystem_key AND p.name_key = k.name_key"
        " WHERE p.advisory_id = a.id) ORDER BY a.id",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return [advisory_from_dict(r[0]) for r in rows]


def advisory_count(conn: psycopg.Connection, include_withdrawn: bool = False) -> int:
    where = "" if include_withdrawn else " WHERE withdrawn IS NULL"
    return conn.execute(f"SELECT count(*) FROM intel_advisories{where}").fetchone()[0]  # noqa: S608


def newest_advisory_modified(conn: psycopg.Connection) -> datetime | None:
    """When the newest loaded advisory was last modified (how current the advisories are)."""
    return conn.execute("SELECT max(modified) FROM intel_advisories").fetchone()[0]


# --- KEV --------------------------------------------------------------------------------------

_KEV_COLUMNS = (
    "cve_id",
    "vendor_project",
    "product",
    "vulnerability_name",
    "date_added",
    "short_description",
    "required_action",
    "due_date",
    "known_ransomware_campaign_use",
    "notes",
    "cwes",
)


def load_kev(conn: psycopg.Connection, catalog: KevCatalog, now: datetime) -> LoadCounts:
    """Make ``intel_kev`` the catalog: upsert every entry, remove what it no longer lists.

    The catalog is complete by definition (parsing refuses a truncated one), so an entry CISA
    removed is removed here too; the caller refuses a catalog older than the loaded one.
    """
    columns = ", ".join(_KEV_COLUMNS)
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS intel_kev_stage (cve_id text, vendor_project text,"
        " product text, vulnerability_name text, date_added date, short_description text,"
        " required_action text, due_date date, known_ransomware_campaign_use text, notes text,"
        " cwes text[]) ON COMMIT DELETE ROWS"
    )
    conn.execute("TRUNCATE intel_kev_stage")
    with conn.cursor() as cur, cur.copy(f"COPY intel_kev_stage ({columns}) FROM STDIN") as copy:
        for e in catalog.entries:
            copy.write_row(
                (
                    e.cve_id,
                    e.vendor_project,
                    e.product,
                    e.vulnerability_name,
                    e.date_added,
                    e.short_description,
                    e.required_action,
                    e.due_date,
                    e.known_ransomware_campaign_use,
                    e.notes,
                    list(e.cwes),
                )
            )
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _KEV_COLUMNS[1:])
    differs = " OR ".join(f"intel_kev.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in _KEV_COLUMNS[1:])
    rows = conn.execute(
        f"INSERT INTO intel_kev ({columns}, loaded_at) "  # noqa: S608 - module constants only
        f"SELECT {columns}, %s FROM intel_kev_stage "
        f"ON CONFLICT (cve_id) DO UPDATE SET {updates}, loaded_at = EXCLUDED.loaded_at "
        f"WHERE {differs} RETURNING (xmax = 0) AS inserted",
        (now,),
    ).fetchall()
    removed = conn.execute(
        "DELETE FROM intel_kev k WHERE NOT EXISTS "
        "(SELECT 1 FROM intel_kev_stage s WHERE s.cve_id = k.cve_id)"
    ).rowcount
    new = sum(1 for r in rows if r[0])
    return LoadCounts(total=len(catalog.entries), new=new, updated=len(rows) - new, removed=removed)


def kev_for(conn: psycopg.Connection, cve_ids: Collection[str]) -> dict[str, KevEntry]:
    """KEV entries by CVE id for the ids given (upper-cased); absent ids are not listed."""
    wanted = sorted({c.strip().upper() for c in cve_ids if c and c.strip()})
    if not wanted:
        return {}
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT {', '.join(_KEV_COLUMNS)} FROM intel_kev WHERE cve_id = ANY(%s)",  # noqa: S608
            (wanted,),
        )
        .fetchall()
    )
    return {r["cve_id"]: KevEntry(**{**r, "cwes": tuple(r["cwes"])}) for r in rows}


def kev_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM intel_kev").fetchone()[0]


# --- EPSS -------------------------------------------------------------------------------------


def load_epss(
    conn: psycopg.Connection,
    scores: Iterable[EpssScore],
    score_date: date | None,
    model_version: str | None,
) -> LoadCounts:
    """COPY the scores (streamed) into a staging table, then one upsert. A score from an older
    ``score_date`` never replaces a newer one (a stale mirror cannot roll scores back)."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS intel_epss_stage (cve_id text, epss numeric(6, 5), "
        "percentile numeric(6, 5)) ON COMMIT DELETE ROWS"
    )
    conn.execute("TRUNCATE intel_epss_stage")
    with (
        conn.cursor() as cur,
        cur.copy("COPY intel_epss_stage (cve_id, epss, percentile) FROM STDIN") as copy,
    ):
        for score in scores:
            copy.write_row((score.cve_id, score.epss, score.percentile))
    total = conn.execute("SELECT count(DISTINCT cve_id) FROM intel_epss_stage").fetchone()[0]
    rows = conn.execute(
        "INSERT INTO intel_epss (cve_id, epss, percentile, score_date, model_version) "
        "SELECT DISTINCT ON (cve_id) cve_id, epss, percentile, %(day)s, %(model)s "
        "FROM intel_epss_stage ORDER BY cve_id "
        "ON CONFLICT (cve_id) DO UPDATE SET epss = EXCLUDED.epss,"
        " percentile = EXCLUDED.percentile, score_date = EXCLUDED.score_date,"
        " model_version = EXCLUDED.model_version "
        "WHERE (intel_epss.score_date IS NULL OR EXCLUDED.score_date IS NULL"
        "       OR intel_epss.score_date <= EXCLUDED.score_date)"
        " AND (intel_epss.epss, intel_epss.percentile, intel_epss.score_date,"
        "      intel_epss.model_version)"
        "     IS DISTINCT FROM"
        "     (EXCLUDED.epss, EXCLUDED.percentile, EXCLUDED.score_date, EXCLUDED.model_version) "
        "RETURNING (xmax = 0) AS inserted",
        {"day": score_date, "model": model_version},
    ).fetchall()
    new = sum(1 for r in rows if r[0])
    return LoadCounts(total=total, new=new, updated=len(rows) - new)


def epss_for(conn: psycopg.Connection, cve_ids: Collection[str]) -> dict[str, EpssScore]:
    wanted = sorted({c.strip().upper() for c in cve_ids if c and c.strip()})
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT cve_id, epss, percentile FROM intel_epss WHERE cve_id = ANY(%s)", (wanted,)
    ).fetchall()
    return {r[0]: EpssScore(r[0], float(r[1]), float(r[2])) for r in rows}


def epss_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM intel_epss").fetchone()[0]


# --- feed state -------------------------------------------------------------------------------


def feed_state(conn: psycopg.Connection, feed: str) -> FeedState | None:
    row = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM intel_feed_state WHERE feed = %s", (feed,))
        .fetchone()
    )
    return FeedState(**row) if row else None


def feed_states(conn: psycopg.Connection) -> list[FeedState]:
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM intel_feed_state ORDER BY feed")
        .fetchall()
    )
    return [FeedState(**r) for r in rows]


def record_feed_loaded(
    conn: psycopg.Connection,
    feed: str,
    *,
    source: str,
    version: str | None,
    feed_date: datetime | None,
    record_count: int,
    sha256: str | None,
    now: datetime,
) -> None:
    """What is loaded now; clears the last error (this attempt succeeded)."""
    conn.execute(
        "INSERT INTO intel_feed_state (feed, source, version, feed_date, loaded_at, record_count,"
        " sha256, last_attempt_at, last_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL) "
        "ON CONFLICT (feed) DO UPDATE SET source = EXCLUDED.source, version = EXCLUDED.version,"
        " feed_date = EXCLUDED.feed_date, loaded_at = EXCLUDED.loaded_at,"
        " record_count = EXCLUDED.record_count, sha256 = EXCLUDED.sha256,"
        " last_attempt_at = EXCLUDED.last_attempt_at, last_error = NULL",
        (feed, source, version, feed_date, now, record_count, sha256, now),
    )


def record_feed_checked(conn: psycopg.Connection, feed: str, now: datetime) -> None:
    """An attempt that found the loaded snapshot current: nothing else changes."""
    conn.execute(
        "UPDATE intel_feed_state SET last_attempt_at = %s, last_error = NULL WHERE feed = %s",
        (now, feed),
    )


def record_feed_failure(conn: psycopg.Connection, feed: str, error: str, now: datetime) -> None:
    """A failed attempt; what was loaded before stays as it is."""
    conn.execute(
        "INSERT INTO intel_feed_state (feed, last_attempt_at, last_error) VALUES (%s, %s, %s) "
        "ON CONFLICT (feed) DO UPDATE SET last_attempt_at = EXCLUDED.last_attempt_at,"
        " last_error = EXCLUDED.last_error",
        (feed, now, error[:2000]),
    )

"""Inventory quality figures per source, recorded once a day (``inventory_quality_daily``).

For each source's active assets: how many have a real owner, a known environment, and how many
are stale. An active asset is confirmed by its source's last successful sync (``sync_runs``,
succeeded or partial): ``apply_source_snapshot`` does not touch an unchanged row, so the
asset's own ``last_seen`` says when it last *changed*, not when it was last listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row

from autosec.domain.models import Environment
from autosec.inventory.quality import OWNER_PLACEHOLDERS, stale_assets

_CURRENT = """
WITH good AS (
    SELECT DISTINCT ON (source) source, finished_at, counts
    FROM sync_runs
    WHERE status IN ('succeeded', 'partial') AND finished_at IS NOT NULL
    ORDER BY source, finished_at DESC, id DESC
), held AS (
    SELECT source, count(*) AS active,
           count(*) FILTER (WHERE btrim(owner) <> ''
                            AND lower(btrim(owner)) <> ALL(%(placeholders)s)) AS with_owner,
           count(*) FILTER (WHERE environment = ANY(%(environments)s)) AS with_environment
    FROM assets WHERE status = 'active' GROUP BY source
)
SELECT coalesce(h.source, g.source) AS source,
       coalesce(h.active, 0) AS active,
       coalesce(h.with_owner, 0) AS with_owner,
       coalesce(h.with_environment, 0) AS with_environment,
       g.finished_at AS last_success_at,
       coalesce((g.counts->>'unlisted')::int, 0) + coalesce((g.counts->>'kept')::int, 0)
           AS unconfirmed,
       coalesce((g.counts->>'quarantined')::int, 0) AS quarantined
FROM held h FULL JOIN good g ON g.source = h.source
"""

_UPSERT = (
    "INSERT INTO inventory_quality_daily (day, source, active, with_owner, with_environment, "
    "stale, quarantined, last_success_at, stale_after_days, recorded_at) "
    "VALUES (%(day)s, %(source)s, %(active)s, %(with_owner)s, %(with_environment)s, %(stale)s, "
    "%(quarantined)s, %(last_success_at)s, %(stale_after_days)s, %(recorded_at)s) "
    "ON CONFLICT (day, source) DO UPDATE SET active = EXCLUDED.active, "
    "with_owner = EXCLUDED.with_owner, with_environment = EXCLUDED.with_environment, "
    "stale = EXCLUDED.stale, quarantined = EXCLUDED.quarantined, "
    "last_success_at = EXCLUDED.last_success_at, stale_after_days = EXCLUDED.stale_after_days, "
    "recorded_at = EXCLUDED.recorded_at"
)


def current_quality(
    conn: psycopg.Connection,
    now: datetime,
    stale_after_days: Mapping[str, int],
    default_stale_after_days: int = 7,
) -> list[dict]:
    """Each source's figures ``now``, by source name.

    ``stale_after_days`` gives each configured source its window; a source only the store knows
    (removed from the estate, its assets still active) gets the default. A configured source
    that never synced is listed with no assets and no last success.
    """
    rows = {
        r["source"]: r
        for r in conn.cursor(row_factory=dict_row)
        .execute(
            _CURRENT,
            {
                "placeholders": list(OWNER_PLACEHOLDERS),
                "environments": [e.value for e in Environment],
            },
        )
        .fetchall()
    }
    figures = []
    for source in sorted(set(rows) | set(stale_after_days)):
        row = rows.get(source) or {
            "source": source,
            "active": 0,
            "with_owner": 0,
            "with_environment": 0,
            "last_success_at": None,
            "unconfirmed": 0,
            "quarantined": 0,
        }
        window = stale_after_days.get(source, default_stale_after_days)
        figures.append(
            {
                "source": source,
                "active": row["active"],
                "with_owner": row["with_owner"],
                "with_environment": row["with_environment"],
                "stale": stale_assets(
                    row["active"], row["unconfirmed"], row["last_success_at"], window, now
                ),
                "quarantined": row["quarantined"],
                "last_success_at": row["last_success_at"],
                "stale_after_days": window,
            }
        )
    return figures


def snapshot_quality(
    conn: psycopg.Connection,
    day: date,
    now: datetime,
    stale_after_days: Mapping[str, int],
    default_stale_after_days: int = 7,
) -> list[dict]:
    """Record (or rewrite) ``day``'s figures for every source; does not commit."""
    figures = current_quality(conn, now, stale_after_days, default_stale_after_days)
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, [{**f, "day": day, "recorded_at": now} for f in figures])
    return figures


def latest_quality(conn: psycopg.Connection, on_or_before: date) -> list[dict]:
    """The per-source rows of the latest recorded day up to ``on_or_before``, by source."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT day, source, active, with_owner, with_environment, stale, quarantined, "
            "last_success_at, stale_after_days FROM inventory_quality_daily WHERE day = "
            "(SELECT max(day) FROM inventory_quality_daily WHERE day <= %(d)s) ORDER BY source",
            {"d": on_or_before},
        )
        .fetchall()
    )


def quality_trend(conn: psycopg.Connection, since: date, until: date) -> list[dict]:
    """Per day from ``since`` to ``until``: the whole inventory's quality figures (the sum over
    sources) beside the day's completeness (inventoried / inventoried + open blind spots)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "WITH q AS (SELECT day, sum(active)::int AS active, "
            "sum(with_owner)::int AS with_owner, sum(with_environment)::int AS with_environment, "
            "sum(stale)::int AS stale, sum(quarantined)::int AS quarantined "
            "FROM inventory_quality_daily WHERE day BETWEEN %(since)s AND %(until)s "
            "GROUP BY day) "
            "SELECT coalesce(q.day, c.day) AS day, q.active, q.with_owner, q.with_environment, "
            "q.stale, q.quarantined, c.inventoried, c.open_blind_spots, c.ratio AS completeness "
            "FROM q FULL JOIN (SELECT * FROM inventory_completeness "
            "WHERE day BETWEEN %(since)s AND %(until)s) c ON c.day = q.day ORDER BY 1",
            {"since": since, "until": until},
        )
        .fetchall()
    )

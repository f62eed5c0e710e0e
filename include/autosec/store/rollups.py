"""Daily rollups of posture, and the reads the dashboard pages and the metrics endpoint make.

The pages never count findings themselves: they read one row per day, team and severity
(``rollup_findings_daily``) and one row per day for the estate (``rollup_daily``), written by
the rollup task. Today's rows are a snapshot of the store as it is, replaced on every refresh;
a past day with no rows is rebuilt from the finding history (status changes with their times),
scan runs and the lifecycle timestamps of assets, blind spots and approvals. The Findings list
is the one page that reads ``findings``, one keyset page at a time along an index, with the
decision points behind each priority (``priority_decisions``).

Days are UTC days. Findings nobody owns are rolled up under the team ``''``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

UNOWNED = ""
OPEN_STATUSES = ("open", "reopened")
STATUSES = ("open", "reopened", "fixed", "accepted", "false_positive")
SEVERITIES = ("critical", "high", "medium", "low", "info")
_LOCK_KEY = "autosec.rollups"

# A finding is known exploited when triage said so, or when a CVE of it is in the KEV catalog
# loaded since (triage runs when scans do; the catalog can change in between). The catalog is
# read once per statement (an InitPlan), and findings without CVEs skip the comparison.
_KEV = (
    "(f.known_exploited OR (f.cve_ids <> '{}' AND f.cve_ids && "
    "(SELECT coalesce(array_agg(k.cve_id), '{}') FROM intel_kev k)))"
)
_OPENS = (
    "(h.to_status IN ('open', 'reopened') "
    "AND h.from_status IS DISTINCT FROM 'open' AND h.from_status IS DISTINCT FROM 'reopened')"
)
_FIXES = "(h.to_status = 'fixed' AND h.from_status IN ('open', 'reopened'))"


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _lock(conn: psycopg.Connection) -> None:
    """One refresh at a time: a second one waits instead of interleaving its deletes."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))


# --- writing ----------------------------------------------------------------------------------

_SNAPSHOT_FINDINGS = f"""
WITH state AS (
    SELECT coalesce(f.owner, '') AS team, f.severity,
           count(*) AS open_findings,
           count(*) FILTER (WHERE f.due_date < %(day)s) AS sla_breached,
           count(*) FILTER (WHERE {_KEV}) AS kev_open
    FROM findings f
    WHERE f.status IN ('open', 'reopened')
    GROUP BY 1, 2
),
moves AS (
    SELECT coalesce(f.owner, '') AS team, f.severity,
           count(*) FILTER (WHERE {_OPENS}) AS opened,
           count(*) FILTER (WHERE {_FIXES}) AS fixed,
           coalesce(sum(extract(epoch FROM h.at - f.first_seen)) FILTER (WHERE {_FIXES}), 0)
               AS fix_seconds
    FROM finding_history h JOIN findings f ON f.id = h.finding_id
    WHERE h.at >= %(start)s AND h.at < %(end)s
    GROUP BY 1, 2
)
INSERT INTO rollup_findings_daily
    (day, team, severity, open_findings, sla_breached, kev_open, opened, fixed, fix_seconds)
SELECT %(day)s, coalesce(s.team, m.team), coalesce(s.severity, m.severity),
       coalesce(s.open_findings, 0), coalesce(s.sla_breached, 0), coalesce(s.kev_open, 0),
       coalesce(m.opened, 0), coalesce(m.fixed, 0), greatest(coalesce(m.fix_seconds, 0), 0)
FROM state s FULL JOIN moves m ON m.team = s.team AND m.severity = s.severity
WHERE coalesce(s.open_findings, 0) + coalesce(m.opened, 0) + coalesce(m.fixed, 0) > 0
"""  # noqa: S608 - fixed SQL fragments only

_SNAPSHOT_DAY = """
INSERT INTO rollup_daily (day, basis, assets_total, assets_within_cadence, blind_spots_open,
                          approvals_waiting, computed_at)
SELECT %(day)s, 'snapshot', %(assets_total)s, %(assets_within_cadence)s,
       (SELECT count(*) FROM blind_spots WHERE status = 'open'),
       (SELECT count(*) FROM approvals WHERE status = 'pending'),
       %(now)s
ON CONFLICT (day) DO UPDATE SET
    basis = EXCLUDED.basis, assets_total = EXCLUDED.assets_total,
    assets_within_cadence = EXCLUDED.assets_within_cadence,
    blind_spots_open = EXCLUDED.blind_spots_open,
    approvals_waiting = EXCLUDED.approvals_waiting, computed_at = EXCLUDED.computed_at
RETURNING *
"""


def snapshot(
    conn: psycopg.Connection,
    day: date,
    now: datetime,
    assets_total: int,
    assets_within_cadence: int,
) -> dict:
    """Replace ``day``'s rollup with the store as it is now; the caller commits.

    Open, breached and known exploited counts come from ``findings``; what was opened and fixed
    that day from ``finding_history``. Idempotent: a later refresh the same day replaces it.
    """
    if not 0 <= assets_within_cadence <= assets_total:
        raise ValueError(
            f"assets within cadence ({assets_within_cadence}) must be between 0 and the "
            f"assets total ({assets_total})"
        )
    _lock(conn)
    conn.execute("DELETE FROM rollup_findings_daily WHERE day = %s", (day,))
    start = day_start(day)
    conn.execute(_SNAPSHOT_FINDINGS, {"day": day, "start": start, "end": start + timedelta(days=1)})
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            _SNAPSHOT_DAY,
            {
                "day": day,
                "assets_total": assets_total,
                "assets_within_cadence": assets_within_cadence,
                "now": now,
            },
        )
        .fetchone()
    )


@dataclass(frozen=True)
class OverdueAsset:
    """An asset some enabled engine is overdue on, by the asset's own scan cadence."""

    asset_id: str
    kind: str
    owner: str | None
    engines: tuple[str, ...]


def replace_overdue(
    conn: psycopg.Connection, overdue: Sequence[OverdueAsset], now: datetime
) -> int:
    """Make ``rollup_overdue_assets`` the list just computed; the caller commits."""
    _lock(conn)
    conn.execute("DELETE FROM rollup_overdue_assets")
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY rollup_overdue_assets (asset_id, kind, owner, engines, computed_at) FROM STDIN"
        ) as copy,
    ):
        for asset in overdue:
            copy.write_row((asset.asset_id, asset.kind, asset.owner, list(asset.engines), now))
    return len(overdue)


def earliest_activity(conn: psycopg.Connection) -> date | None:
    """The first UTC day anything was recorded (an asset, a finding's history), or None."""
    row = conn.execute(
        "SELECT least((SELECT min(first_seen) FROM assets), (SELECT min(at) FROM finding_history))"
    ).fetchone()
    return row[0].astimezone(UTC).date() if row and row[0] else None


def missing_days(conn: psycopg.Connection, first: date, last: date) -> list[date]:
    """Days from ``first`` to ``last`` (inclusive) that have no rollup yet."""
    if last < first:
        return []
    rows = conn.execute(
        "SELECT d::date FROM generate_series(%s::date, %s::date, interval '1 day') AS d "
        "WHERE NOT EXISTS (SELECT 1 FROM rollup_daily r WHERE r.day = d::date) ORDER BY 1",
        (first, last),
    ).fetchall()
    return [r[0] for r in rows]


# Open, breached and known exploited counts at the end of past days, from the history: each
# status change into open/reopened starts an open span, the next change out of it ends it.
# A span adds +1 open on its first day and -1 on the day it ended; it is breached from the day
# after its due date (or its first day, if later) until it ended. Running sums of these
# deltas give every day's counts without visiting a finding once per day. Owner, severity,
# due date and KEV status are the findings' current ones.
_REBUILD_FINDINGS = f"""
WITH transitions AS (
    SELECT h.finding_id, h.at, h.id, h.to_status IN ('open', 'reopened') AS opens
    FROM finding_history h
    WHERE (h.to_status IN ('open', 'reopened'))
          <> coalesce(h.from_status IN ('open', 'reopened'), false)
),
spans AS (
    SELECT finding_id, opens,
           (at AT TIME ZONE 'UTC')::date AS start_day,
           (lead(at) OVER (PARTITION BY finding_id ORDER BY at, id) AT TIME ZONE 'UTC')::date
               AS end_day
    FROM transitions
),
deltas AS (
    SELECT coalesce(f.owner, '') AS team, f.severity, e.day,
           e.d_open, e.d_breach, CASE WHEN {_KEV} THEN e.d_open ELSE 0 END AS d_kev
    FROM spans s
    JOIN findings f ON f.id = s.finding_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN f.due_date IS NOT NULL
                    THEN greatest(s.start_day, f.due_date + 1) END AS breach_day
    ) b
    CROSS JOIN LATERAL (VALUES
        (s.start_day, 1, 0),
        (s.end_day, -1, 0),
        (CASE WHEN b.breach_day < coalesce(s.end_day, 'infinity'::date)
              THEN b.breach_day END, 0, 1),
        (CASE WHEN b.breach_day < s.end_day THEN s.end_day END, 0, -1)
    ) AS e(day, d_open, d_breach)
    WHERE s.opens AND s.start_day <= %(last)s AND e.day IS NOT NULL AND e.day <= %(last)s
),
daily AS (
    SELECT team, severity, day, sum(d_open) AS d_open, sum(d_breach) AS d_breach,
           sum(d_kev) AS d_kev
    FROM deltas GROUP BY 1, 2, 3
),
keys AS (SELECT DISTINCT team, severity FROM daily),
grid AS (
    SELECT k.team, k.severity, g.day::date AS day
    FROM keys k
    CROSS JOIN generate_series(
        least((SELECT min(day) FROM daily), %(first)s::date), %(last)s::date, interval '1 day'
    ) AS g(day)
),
running AS (
    SELECT g.team, g.severity, g.day,
           sum(coalesce(d.d_open, 0)) OVER w AS open_findings,
           sum(coalesce(d.d_breach, 0)) OVER w AS sla_breached,
           sum(coalesce(d.d_kev, 0)) OVER w AS kev_open
    FROM grid g LEFT JOIN daily d USING (team, severity, day)
    WINDOW w AS (PARTITION BY g.team, g.severity ORDER BY g.day)
),
moves AS (
    SELECT (h.at AT TIME ZONE 'UTC')::date AS day, coalesce(f.owner, '') AS team, f.severity,
           count(*) FILTER (WHERE {_OPENS}) AS opened,
           count(*) FILTER (WHERE {_FIXES}) AS fixed,
           coalesce(sum(extract(epoch FROM h.at - f.first_seen)) FILTER (WHERE {_FIXES}), 0)
               AS fix_seconds
    FROM finding_history h JOIN findings f ON f.id = h.finding_id
    WHERE h.at >= %(start)s AND h.at < %(end)s
    GROUP BY 1, 2, 3
),
wanted AS (
    SELECT coalesce(r.day, m.day) AS day, coalesce(r.team, m.team) AS team,
           coalesce(r.severity, m.severity) AS severity,
           coalesce(r.open_findings, 0) AS open_findings,
           coalesce(r.sla_breached, 0) AS sla_breached, coalesce(r.kev_open, 0) AS kev_open,
           coalesce(m.opened, 0) AS opened, coalesce(m.fixed, 0) AS fixed,
           greatest(coalesce(m.fix_seconds, 0), 0) AS fix_seconds
    FROM (SELECT * FROM running WHERE day = ANY(%(days)s::date[])) r
    FULL JOIN (SELECT * FROM moves WHERE day = ANY(%(days)s::date[])) m
        ON m.day = r.day AND m.team = r.team AND m.severity = r.severity
)
INSERT INTO rollup_findings_daily
    (day, team, severity, open_findings, sla_breached, kev_open, opened, fixed, fix_seconds)
SELECT day, team, severity, open_findings, sla_breached, kev_open, opened, fixed, fix_seconds
FROM wanted
WHERE open_findings + opened + fixed > 0
ON CONFLICT (day, team, severity) DO NOTHING
"""  # noqa: S608 - fixed SQL fragments only

_REBUILD_DAYS = """
INSERT INTO rollup_daily (day, basis, assets_total, assets_within_cadence, blind_spots_open,
                          approvals_waiting, computed_at)
SELECT d.day, 'history',
       (SELECT count(*) FROM assets a
        WHERE a.first_seen < e.day_end AND (a.retired_at IS NULL OR a.retired_at >= e.day_end)),
       (SELECT count(DISTINCT a.id)
        FROM scan_runs r CROSS JOIN LATERAL unnest(r.asset_ids) AS x(asset_id)
        JOIN assets a ON a.id = x.asset_id
        WHERE r.status = 'succeeded' AND r.engine = ANY(%(engines)s::text[])
          AND r.finished_at < e.day_end AND r.finished_at >= e.day_end - %(window)s
          AND a.first_seen < e.day_end
          AND (a.retired_at IS NULL OR a.retired_at >= e.day_end)),
       (SELECT count(*) FROM blind_spots b
        WHERE b.first_seen < e.day_end
          AND (b.resolved_at IS NULL OR b.resolved_at >= e.day_end)),
       (SELECT count(*) FROM approvals p
        WHERE p.created_at < e.day_end AND (p.decided_at IS NULL OR p.decided_at >= e.day_end)),
       %(now)s
FROM unnest(%(days)s::date[]) AS d(day)
CROSS JOIN LATERAL (SELECT (d.day + 1)::timestamp AT TIME ZONE 'UTC' AS day_end) e
ON CONFLICT (day) DO NOTHING
"""


def rebuild(
    conn: psycopg.Connection,
    days: Sequence[date],
    now: datetime,
    engines: Sequence[str],
    scan_window: timedelta,
) -> int:
    """Rebuild the rollup of past ``days`` that have none, from history; the caller commits.

    A day that already has a rollup keeps it (a snapshot taken that day knows more than a
    rebuild). Returns how many days were written.
    """
    days = sorted(set(days))
    if not days:
        return 0
    _lock(conn)
    first, last = days[0], days[-1]
    conn.execute(
        _REBUILD_FINDINGS,
        {
            "days": days,
            "first": first,
            "last": last,
            "start": day_start(first),
            "end": day_start(last) + timedelta(days=1),
        },
    )
    written = conn.execute(
        _REBUILD_DAYS,
        {"days": days, "now": now, "engines": list(engines), "window": scan_window},
    ).rowcount
    return written


# --- reading: posture and metrics -------------------------------------------------------------


def latest(conn: psycopg.Connection) -> dict | None:
    """The most recent day's estate rollup, with that day's inventory completeness."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT r.*, c.inventoried, c.open_blind_spots AS completeness_blind_spots, "
            "c.ratio AS completeness FROM rollup_daily r "
            "LEFT JOIN inventory_completeness c ON c.day = r.day "
            "ORDER BY r.day DESC LIMIT 1"
        )
        .fetchone()
    )


def daily_series(conn: psycopg.Connection, since: date) -> list[dict]:
    """Per day from ``since``: the estate rollup and the day's inventory completeness."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT r.*, c.inventoried, c.ratio AS completeness FROM rollup_daily r "
            "LEFT JOIN inventory_completeness c ON c.day = r.day "
            "WHERE r.day >= %s ORDER BY r.day",
            (since,),
        )
        .fetchall()
    )


def severity_series(conn: psycopg.Connection, since: date) -> list[dict]:
    """Per day and severity from ``since``, summed over teams."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT day, severity, sum(open_findings)::bigint AS open_findings, "
            "sum(sla_breached)::bigint AS sla_breached, sum(kev_open)::bigint AS kev_open, "
            "sum(opened)::bigint AS opened, sum(fixed)::bigint AS fixed "
            "FROM rollup_findings_daily WHERE day >= %s GROUP BY day, severity "
            "ORDER BY day, severity",
            (since,),
        )
        .fetchall()
    )


def team_day(conn: psycopg.Connection, day: date) -> list[dict]:
    """Per team and severity on ``day``."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT team, severity, open_findings, sla_breached, kev_open "
            "FROM rollup_findings_daily WHERE day = %s ORDER BY team, severity",
            (day,),
        )
        .fetchall()
    )


def fixes_by_team(conn: psycopg.Connection, since: date, until: date) -> list[dict]:
    """Per team: findings fixed from ``since`` to ``until`` (inclusive) and their fix time."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT team, sum(fixed)::bigint AS fixed, sum(fix_seconds) AS fix_seconds "
            "FROM rollup_findings_daily WHERE day >= %s AND day <= %s AND fixed > 0 "
            "GROUP BY team ORDER BY team",
            (since, until),
        )
        .fetchall()
    )


def fixes_by_team_and_month(conn: psycopg.Connection, since: date) -> list[dict]:
    """Per team and calendar month from ``since``: findings fixed and their fix time."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT team, date_trunc('month', day)::date AS month, sum(fixed)::bigint AS fixed, "
            "sum(fix_seconds) AS fix_seconds FROM rollup_findings_daily "
            "WHERE day >= %s AND fixed > 0 GROUP BY 1, 2 ORDER BY 2, 1",
            (since,),
        )
        .fetchall()
    )


def teams(conn: psycopg.Connection, since: date) -> list[str]:
    """Teams with anything rolled up since ``since`` ('' for unowned findings)."""
    rows = conn.execute(
        "SELECT DISTINCT team FROM rollup_findings_daily WHERE day >= %s ORDER BY team", (since,)
    ).fetchall()
    return [r[0] for r in rows]


def overdue_assets(conn: psycopg.Connection, limit: int) -> tuple[int, list[dict]]:
    """(how many assets are overdue, the first ``limit`` by id with every engine's last
    success on them), as the latest snapshot left them."""
    total = int(conn.execute("SELECT count(*) FROM rollup_overdue_assets").fetchone()[0])
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        "SELECT asset_id, kind, owner, engines AS overdue_engines, computed_at "
        "FROM rollup_overdue_assets ORDER BY asset_id LIMIT %s",
        (limit,),
    ).fetchall()
    scanned: dict[str, list[dict]] = {}
    for state in cur.execute(
        "SELECT asset_id, engine, last_success_at FROM asset_scan_state "
        "WHERE asset_id = ANY(%s) AND last_success_at IS NOT NULL ORDER BY asset_id, engine",
        ([r["asset_id"] for r in rows],),
    ):
        scanned.setdefault(state["asset_id"], []).append(
            {"engine": state["engine"], "last_success_at": state["last_success_at"]}
        )
    for row in rows:
        row["engines"] = scanned.get(row["asset_id"], [])
    return total, rows


# --- reading: the Findings list ---------------------------------------------------------------


@dataclass(frozen=True)
class FindingFilter:
    """What the Findings page filters on; None means any."""

    team: str | None = None
    asset_id: str | None = None
    severity: str | None = None
    status: str | None = "active"
    known_exploited: bool | None = None

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.status is not None and self.status not in (*STATUSES, "active"):
            raise ValueError(f"unknown status {self.status!r}")


@dataclass(frozen=True)
class PageKey:
    """Where a page of findings ends: its last due date (None sorts last) and id."""

    due_date: date | None
    finding_id: int


_DUE_ORDER = sql.SQL("coalesce(f.due_date, 'infinity'::date)")


def _conditions(wanted: FindingFilter) -> tuple[sql.Composable, dict]:
    parts: list[sql.Composable] = [sql.SQL("true")]
    params: dict = {}
    if wanted.team is not None:
        if wanted.team == UNOWNED:
            parts.append(sql.SQL("f.owner IS NULL"))
        else:
            parts.append(sql.SQL("f.owner = %(team)s"))
            params["team"] = wanted.team
    if wanted.asset_id is not None:
        parts.append(sql.SQL("f.asset_id = %(asset_id)s"))
        params["asset_id"] = wanted.asset_id
    if wanted.severity is not None:
        parts.append(sql.SQL("f.severity = %(severity)s"))
        params["severity"] = wanted.severity
    if wanted.status == "active":
        parts.append(sql.SQL("f.status IN ('open', 'reopened')"))
    elif wanted.status is not None:
        parts.append(sql.SQL("f.status = %(status)s"))
        params["status"] = wanted.status
    if wanted.known_exploited is True:
        parts.append(sql.SQL(_KEV))
    elif wanted.known_exploited is False:
        parts.append(sql.SQL("NOT " + _KEV))
    return sql.SQL(" AND ").join(parts), params


def list_findings(
    conn: psycopg.Connection,
    wanted: FindingFilter,
    after: PageKey | None = None,
    limit: int = 50,
) -> tuple[list[dict], PageKey | None]:
    """One page of findings, soonest due first (no due date last), and the key of the next
    page (None on the last one). Keyset paging along ``findings_due_order_idx``."""
    where, params = _conditions(wanted)
    if after is not None:
        where = sql.SQL(
            "{} AND ({}, f.id) > (coalesce(%(after_due)s::date, 'infinity'::date), %(after_id)s)"
        ).format(where, _DUE_ORDER)
        params.update(after_due=after.due_date, after_id=after.finding_id)
    params["limit"] = limit + 1
    query = sql.SQL(
        "SELECT f.id, f.asset_id, a.name AS asset_name, f.owner, f.engine, f.rule_id, f.title, "
        "f.severity, f.status, f.priority, d.points AS priority_points, f.due_date, f.first_seen, "
        "f.last_seen, f.fixed_at, f.cve_ids, f.cvss_score, f.epss_score, f.epss_percentile, "
        "f.known_exploited, f.kev_due_date, f.kev_ransomware, f.location, f.exception_id, "
        "coalesce(kev.cve_ids, '{{}}') AS kev_cve_ids, kev.due_date AS kev_catalog_due_date "
        "FROM findings f JOIN assets a ON a.id = f.asset_id "
        "LEFT JOIN priority_decisions d ON d.id = f.priority_decision_id "
        "LEFT JOIN LATERAL (SELECT array_agg(k.cve_id ORDER BY k.cve_id) AS cve_ids, "
        "  min(k.due_date) AS due_date FROM intel_kev k WHERE k.cve_id = ANY(f.cve_ids)) kev "
        "ON true "
        "WHERE {where} ORDER BY {order}, f.id LIMIT %(limit)s"
    ).format(where=where, order=_DUE_ORDER)
    rows = conn.cursor(row_factory=dict_row).execute(query, params).fetchall()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, PageKey(rows[-1]["due_date"], rows[-1]["id"])


def count_findings(conn: psycopg.Connection, wanted: FindingFilter, cap: int) -> int:
    """How many findings match, counting no further than ``cap + 1`` (cheap at any size)."""
    where, params = _conditions(wanted)
    params["cap"] = cap + 1
    query = sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM findings f WHERE {where} LIMIT %(cap)s) AS m"
    ).format(where=where)
    return int(conn.execute(query, params).fetchone()[0])


# --- reading: reports -------------------------------------------------------------------------


def report(conn: psycopg.Connection, report_id: int) -> dict | None:
    """One row of ``reports`` (what the Reports page serves for download)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM reports WHERE id = %s", (report_id,))
        .fetchone()
    )

"""Reports the report stage wrote, with their sha256, and the data they are built from.

The evidence queries of the compliance packs live here too: each takes the connection and the
pack's period and returns plain rows, read "as of" the period's end (a finding's status at the
end comes from its history, not from today's row), so a pack for a past period can be rebuilt.
The report stage keeps the registry that names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row

from autosec.reporting.period import Period


def record_report(
    conn: psycopg.Connection,
    kind: str,
    media_type: str,
    period_start: date,
    period_end: date,
    path: str,
    sha256: str,
    size: int,
    policy_hash: str | None,
    now: datetime,
    framework: str | None = None,
    pack_id: int | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO reports (kind, media_type, period_start, period_end, path, sha256, "
        "size_bytes, policy_hash, created_at, framework, pack_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            kind,
            media_type,
            period_start,
            period_end,
            path,
            sha256,
            size,
            policy_hash,
            now,
            framework,
            pack_id,
        ),
    ).fetchone()
    return int(row[0])


def list_reports(conn: psycopg.Connection) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM reports ORDER BY created_at DESC, id DESC")
        .fetchall()
    )


def report_inputs(conn: psycopg.Connection) -> dict[str, list[dict]]:
    """Everything a posture report shows, as plain rows."""
    cur = conn.cursor(row_factory=dict_row)
    return {
        "assets": cur.execute(
            "SELECT a.*, (SELECT max(last_success_at) FROM asset_scan_state s "
            " WHERE s.asset_id = a.id) AS last_scanned FROM assets a "
            "WHERE a.status = 'active' ORDER BY a.id"
        ).fetchall(),
        "findings": cur.execute(
            "SELECT f.*, a.name AS asset_name FROM findings f JOIN assets a ON a.id = f.asset_id "
            "ORDER BY f.id"
        ).fetchall(),
        "blind_spots": cur.execute(
            "SELECT * FROM blind_spots WHERE status = 'open' ORDER BY address, port"
        ).fetchall(),
        "actions": cur.execute(
            "SELECT x.*, d.rule_id, f.asset_id FROM actions x "
            "JOIN policy_decisions d ON d.id = x.decision_id "
            "JOIN findings f ON f.id = x.finding_id "
            "ORDER BY x.id"
        ).fetchall(),
        "approvals": cur.execute("SELECT * FROM approvals ORDER BY id").fetchall(),
        "approval_decisions": cur.execute(
            "SELECT * FROM approval_decisions ORDER BY approval_id, id"
        ).fetchall(),
    }


def latest_drills(conn: psycopg.Connection, since: datetime) -> list[dict]:
    """The most recent result of each drill since ``since`` (from ``drill.completed``)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT DISTINCT ON (subject) subject, payload, at FROM events "
            "WHERE name = 'drill.completed' AND at >= %s ORDER BY subject, id DESC",
            (since,),
        )
        .fetchall()
    )


# --- compliance packs ---------------------------------------------------------------------------


def find_pack(
    conn: psycopg.Connection,
    framework: str,
    period_start: date,
    period_end: date,
    manifest_sha256: str,
) -> dict | None:
    """The pack already built from the same framework, period and content, with its pieces."""
    cur = conn.cursor(row_factory=dict_row)
    pack = cur.execute(
        "SELECT * FROM report_packs WHERE framework = %s AND period_start = %s "
        "AND period_end = %s AND manifest_sha256 = %s",
        (framework, period_start, period_end, manifest_sha256),
    ).fetchone()
    if pack is None:
        return None
    pack["reports"] = cur.execute(
        "SELECT * FROM reports WHERE pack_id = %s ORDER BY id", (pack["id"],)
    ).fetchall()
    return pack


def record_pack(
    conn: psycopg.Connection,
    framework: str,
    framework_version: str,
    framework_sha256: str,
    period_start: date,
    period_end: date,
    policy_hash: str | None,
    manifest_sha256: str,
    pieces: Sequence[tuple[str, str, str, str, int]],
    now: datetime,
    run_ref: str | None = None,
) -> tuple[int, list[int]] | None:
    """Record a pack and one report row per piece (kind, media type, path, sha256, size).

    Returns (pack id, report ids), or None when the same pack was recorded meanwhile (its
    framework, period and manifest sha256 are unique). Does not commit.
    """
    row = conn.execute(
        "INSERT INTO report_packs (framework, framework_version, framework_sha256, period_start, "
        "period_end, policy_hash, manifest_sha256, pieces, created_at, run_ref) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (framework, period_start, period_end, manifest_sha256) DO NOTHING "
        "RETURNING id",
        (
            framework,
            framework_version,
            framework_sha256,
            period_start,
            period_end,
            policy_hash,
            manifest_sha256,
            len(pieces),
            now,
            run_ref,
        ),
    ).fetchone()
    if row is None:
        return None
    pack_id = int(row[0])
    report_ids = [
        record_report(
            conn,
            kind,
            media_type,
            period_start,
            period_end,
            path,
            sha256,
            size,
            policy_hash,
            now,
            framework=framework,
            pack_id=pack_id,
        )
        for kind, media_type, path, sha256, size in pieces
    ]
    return pack_id, report_ids


def list_packs(conn: psycopg.Connection, framework: str | None = None) -> list[dict]:
    """Recorded packs, newest period first, each with its pieces."""
    cur = conn.cursor(row_factory=dict_row)
    packs = cur.execute(
        "SELECT * FROM report_packs WHERE %(framework)s::text IS NULL OR framework = %(framework)s "
        "ORDER BY period_end DESC, framework, id DESC",
        {"framework": framework},
    ).fetchall()
    pieces: dict[int, list[dict]] = {}
    for report in cur.execute(
        "SELECT * FROM reports WHERE pack_id = ANY(%s) ORDER BY id", ([p["id"] for p in packs],)
    ).fetchall():
        pieces.setdefault(report["pack_id"], []).append(report)
    for pack in packs:
        pack["reports"] = pieces.get(pack["id"], [])
    return packs


# --- evidence queries: (conn, period) -> rows --------------------------------------------------


def _rows(conn: psycopg.Connection, query: str, period: Period) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(query, {"start": period.start_at, "end": period.end_before})
        .fetchall()
    )


def inventory_at_end(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Assets in the inventory at the period's end (known by then and not retired)."""
    return _rows(
        conn,
        "SELECT id AS asset_id, name, kind, owner, environment, criticality FROM assets "
        "WHERE first_seen < %(end)s AND (retired_at IS NULL OR retired_at >= %(end)s) "
        "ORDER BY id",
        period,
    )


def inventory_changes(conn: psycopg.Connection, period: Period) -> list[dict]:
    return _rows(
        conn,
        "SELECT change, count(*) AS count FROM asset_changes "
        "WHERE at >= %(start)s AND at < %(end)s GROUP BY change ORDER BY change",
        period,
    )


# A run counts as a scan when it succeeded and triage did not reject its results.
_COUNTS = "r.status = 'succeeded' AND r.triage_status IS DISTINCT FROM 'rejected'"


def scan_coverage(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Per asset and engine: runs that finished in the period, succeeded or not."""
    return _rows(
        conn,
        f"SELECT a.asset_id, r.engine, count(*) FILTER (WHERE {_COUNTS}) AS succeeded, "  # noqa: S608
        f"count(*) FILTER (WHERE NOT ({_COUNTS})) AS failed, "
        f"max(r.finished_at) FILTER (WHERE {_COUNTS}) AS last_success_at "
        "FROM scan_runs r CROSS JOIN LATERAL unnest(r.asset_ids) AS a (asset_id) "
        "WHERE r.finished_at >= %(start)s AND r.finished_at < %(end)s "
        "GROUP BY a.asset_id, r.engine ORDER BY a.asset_id, r.engine",
        period,
    )


def scan_evidence(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Raw scanner output of the runs that finished in the period, and of every finding the
    pack lists (a finding first seen months ago cites an older run's output)."""
    return _rows(
        conn,
        "SELECT e.sha256, e.path, e.size_bytes, e.media_type, e.scan_run_id, r.engine, "
        "r.finished_at FROM evidence e JOIN scan_runs r ON r.id = e.scan_run_id "
        "WHERE (r.finished_at >= %(start)s AND r.finished_at < %(end)s) "
        "OR e.sha256 IN (SELECT f.evidence_sha256 FROM findings f "
        " WHERE f.evidence_sha256 IS NOT NULL AND f.first_seen < %(end)s "
        " AND (f.fixed_at IS NULL OR f.fixed_at >= %(start)s)) "
        "ORDER BY e.id",
        period,
    )


def findings_at_end(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Findings first seen before the period's end and not fixed before its start, with their
    status at the end (from their history) and the earliest KEV due date of their CVEs."""
    return _rows(
        conn,
        "WITH last_change AS ("
        " SELECT DISTINCT ON (h.finding_id) h.finding_id, h.to_status, h.at"
        " FROM finding_history h WHERE h.at < %(end)s"
        " ORDER BY h.finding_id, h.at DESC, h.id DESC) "
        "SELECT f.fingerprint, f.asset_id, a.name AS asset_name, a.kind AS asset_kind, f.owner,"
        " f.engine, f.rule_id, f.title, f.description, f.severity,"
        " coalesce(c.to_status, f.status) AS status, f.first_seen, f.last_seen, f.due_date,"
        " f.cve_ids, f.cwe, f.cvss_score, f.cvss_vector, f.cvss_version, f.location,"
        " f.evidence_sha256, f.priority, kev.due_date AS kev_due_date "
        "FROM findings f JOIN assets a ON a.id = f.asset_id "
        "LEFT JOIN last_change c ON c.finding_id = f.id "
        "LEFT JOIN LATERAL (SELECT min(k.due_date) AS due_date FROM intel_kev k"
        " WHERE f.cve_ids <> '{}' AND k.cve_id IN (SELECT upper(x) FROM unnest(f.cve_ids) AS x)"
        ") kev ON true "
        "WHERE f.first_seen < %(end)s "
        "AND (coalesce(c.to_status, f.status) <> 'fixed' OR c.at >= %(start)s) "
        "ORDER BY f.id",
        period,
    )


def finding_fixes(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Every fix in the period and the scan run that closed it, with that run's outcome."""
    return _rows(
        conn,
        "SELECT f.fingerprint, f.severity, h.at AS fixed_at, h.scan_run_id, r.engine,"  # noqa: S608
        f" CASE WHEN {_COUNTS} THEN 'succeeded' ELSE r.status END AS scan_status "
        "FROM finding_history h JOIN findings f ON f.id = h.finding_id "
        "LEFT JOIN scan_runs r ON r.id = h.scan_run_id "
        "WHERE h.to_status = 'fixed' AND h.at >= %(start)s AND h.at < %(end)s "
        "ORDER BY h.id",
        period,
    )


def has_table(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def exceptions_in_period(conn: psycopg.Connection, period: Period) -> list[dict] | None:
    """Exceptions requested by the period's end that were in force, pending or decided during
    it; None when the store has no exceptions table."""
    if not has_table(conn, "finding_exceptions"):
        return None
    return _rows(
        conn,
        "SELECT e.id, e.kind, e.scope, coalesce(e.fingerprint::text, e.cve_id, e.asset_id)"
        " AS target, e.reason, e.requested_by, e.requested_at, e.approved_by, e.approved_at,"
        " e.expires_at, e.status, e.decided_by, e.decided_at, e.decision_reason,"
        " (SELECT count(DISTINCT h.finding_id) FROM finding_history h"
        "  WHERE h.exception_id = e.id AND h.at < %(end)s) AS findings "
        "FROM finding_exceptions e "
        "WHERE e.requested_at < %(end)s AND e.expires_at >= %(start)s "
        "AND NOT (e.status IN ('rejected', 'revoked') AND e.decided_at < %(start)s) "
        "ORDER BY e.id",
        period,
    )


def approval_log(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Requests made or decided in the period, each with its decisions up to the period's end
    (and its status then)."""
    requests = _rows(
        conn,
        "SELECT a.id, a.kind, a.summary, a.requester, a.approvers, a.quorum, a.rule_id,"
        " a.policy_hash, a.created_at, a.expires_at, a.decided_at,"
        " CASE WHEN a.decided_at < %(end)s THEN a.status ELSE 'pending' END AS status "
        "FROM approvals a "
        "WHERE (a.created_at >= %(start)s AND a.created_at < %(end)s) OR EXISTS ("
        " SELECT 1 FROM approval_decisions d WHERE d.approval_id = a.id"
        " AND d.decided_at >= %(start)s AND d.decided_at < %(end)s) "
        "ORDER BY a.id",
        period,
    )
    decisions: dict[int, list[dict]] = {}
    for d in (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT approval_id, approver, decision, reason, policy_hash, decided_at "
            "FROM approval_decisions WHERE approval_id = ANY(%s) AND decided_at < %s "
            "ORDER BY approval_id, decided_at, id",
            ([r["id"] for r in requests], period.end_before),
        )
        .fetchall()
    ):
        decisions.setdefault(d["approval_id"], []).append(d)
    for request in requests:
        request["decisions"] = decisions.get(request["id"], [])
    return requests


def action_log(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Actions planned in the period with the decision behind each: rule, policy version and
    hash, mode."""
    return _rows(
        conn,
        "SELECT x.id, x.action, x.mode, x.status, x.dry_run, x.external_ref, x.created_at,"
        " x.updated_at, f.asset_id, d.rule_id, d.policy_version, d.policy_hash "
        "FROM actions x JOIN policy_decisions d ON d.id = x.decision_id "
        "JOIN findings f ON f.id = x.finding_id "
        "WHERE x.created_at >= %(start)s AND x.created_at < %(end)s ORDER BY x.id",
        period,
    )


def policy_versions(conn: psycopg.Connection, period: Period) -> list[dict]:
    return _rows(
        conn,
        "SELECT policy_version, policy_hash, count(*) AS decisions, min(decided_at) AS first_at,"
        " max(decided_at) AS last_at FROM policy_decisions "
        "WHERE decided_at >= %(start)s AND decided_at < %(end)s AND NOT dry_run "
        "GROUP BY policy_version, policy_hash ORDER BY first_at, policy_hash",
        period,
    )


def blind_spots_in_period(conn: psycopg.Connection, period: Period) -> list[dict]:
    return _rows(
        conn,
        "SELECT address, port, source, first_seen, lifecycle, owner FROM blind_spots "
        "WHERE first_seen < %(end)s AND last_seen >= %(start)s "
        "AND (resolved_at IS NULL OR resolved_at >= %(start)s) "
        "ORDER BY address, port, source",
        period,
    )


def intel_feeds(conn: psycopg.Connection, period: Period) -> list[dict]:
    """Vulnerability intelligence feeds as last loaded before the period's end."""
    if not has_table(conn, "intel_feed_state"):
        return []
    return _rows(
        conn,
        "SELECT feed, source, version, feed_date, loaded_at, record_count, sha256 "
        "FROM intel_feed_state WHERE loaded_at < %(end)s ORDER BY feed",
        period,
    )


def open_findings_by_severity(conn: psycopg.Connection) -> dict[str, int]:
    """The plain count a pack's headline summarises (for comparison in the benchmark)."""
    rows = conn.execute(
        "SELECT severity, count(*) FROM findings WHERE status IN ('open', 'reopened') "
        "GROUP BY severity"
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}

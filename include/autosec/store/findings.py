"""Findings and their history, written in bulk: COPY into a staging table, one upsert.

The history table gets a row only when a status changes (new, reopened, fixed), so a
rescan that finds the same things writes ``last_seen`` and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from autosec.domain.models import Location
from autosec.triage.history import OpenFinding
from autosec.triage.normalise import TriagedFinding

_STAGE_COLUMNS = (
    "fingerprint",
    "fingerprint_version",
    "asset_id",
    "engine",
    "rule_id",
    "title",
    "description",
    "severity",
    "priority",
    "cvss_vector",
    "cvss_score",
    "cve_ids",
    "cwe",
    "location",
    "evidence_sha256",
    "owner",
    "due_date",
)


@dataclass(frozen=True)
class UpsertCounts:
    new: int
    reopened: int
    seen_again: int
    new_ids: tuple[int, ...]
    reopened_ids: tuple[int, ...]


def upsert_findings(
    conn: psycopg.Connection,
    findings: Sequence[TriagedFinding],
    scan_run_id: int | None,
    now: datetime,
    evidence_sha256: str | None = None,
) -> UpsertCounts:
    """Insert new findings, reopen fixed ones, touch the rest; history for status changes only."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS finding_stage (fingerprint char(64) PRIMARY KEY, "
        "fingerprint_version smallint, asset_id text, engine text, rule_id text, title text, "
        "description text, severity text, priority text, cvss_vector text, cvss_score numeric, "
        "cve_ids text[], cwe text, location jsonb, evidence_sha256 char(64), owner text, "
        "due_date date) ON COMMIT DELETE ROWS"
    )
    conn.execute("TRUNCATE finding_stage")
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY finding_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy,
    ):
        for f in findings:
            o = f.observation
            copy.write_row(
                (
                    f.fingerprint,
                    f.fingerprint_version,
                    o.asset_id,
                    o.engine,
                    o.rule_id,
                    o.title,
                    o.description,
                    o.severity.value,
                    f.priority,
                    o.cvss_vector,
                    o.cvss_score,
                    list(o.cve_ids),
                    o.cwe,
                    json.dumps(o.location.as_dict(), sort_keys=True),
                    evidence_sha256,
                    f.owner,
                    f.due_date,
                )
            )
    reopened = conn.execute(
        "INSERT INTO finding_history (finding_id, from_status, to_status, scan_run_id, reason, at) "
        "SELECT f.id, f.status, 'reopened', %s, 'seen again after it was fixed', %s "
        "FROM findings f JOIN finding_stage s USING (fingerprint) WHERE f.status = 'fixed' "
        "RETURNING finding_id",
        (scan_run_id, now),
    ).fetchall()
    columns = ", ".join(_STAGE_COLUMNS)
    # Column names are module constants, never input.
    upserted = conn.execute(
        f"INSERT INTO findings ({columns}, status, first_seen, last_seen, last_scan_run_id) "  # noqa: S608
        f"SELECT {columns}, 'open', %(now)s, %(now)s, %(run)s FROM finding_stage "
        "ON CONFLICT (fingerprint) DO UPDATE SET "
        " last_seen = EXCLUDED.last_seen, last_scan_run_id = EXCLUDED.last_scan_run_id,"
        " evidence_sha256 = COALESCE(EXCLUDED.evidence_sha256, findings.evidence_sha256),"
        " title = EXCLUDED.title, description = EXCLUDED.description,"
        " status = CASE WHEN findings.status = 'fixed' THEN 'reopened' ELSE findings.status END,"
        " fixed_at = CASE WHEN findings.status = 'fixed' THEN NULL ELSE findings.fixed_at END,"
        " due_date = CASE WHEN findings.status = 'fixed' THEN EXCLUDED.due_date"
        "                 ELSE findings.due_date END "
        "RETURNING id, (xmax = 0) AS inserted",
        {"now": now, "run": scan_run_id},
    ).fetchall()
    new_ids = tuple(row[0] for row in upserted if row[1])
    if new_ids:
        conn.execute(
            "INSERT INTO finding_history "
            "(finding_id, from_status, to_status, scan_run_id, reason, at)"
            " SELECT id, NULL, 'open', %s, 'first seen', %s FROM unnest(%s::bigint[]) AS id",
            (scan_run_id, now, list(new_ids)),
        )
    reopened_ids = tuple(row[0] for row in reopened)
    return UpsertCounts(
        new=len(new_ids),
        reopened=len(reopened_ids),
        seen_again=len(upserted) - len(new_ids) - len(reopened_ids),
        new_ids=new_ids,
        reopened_ids=reopened_ids,
    )


def open_findings_for(
    conn: psycopg.Connection, asset_ids: Sequence[str], engine: str
) -> list[OpenFinding]:
    rows = conn.execute(
        "SELECT id, fingerprint, asset_id, rule_id, location FROM findings "
        "WHERE asset_id = ANY(%s) AND engine = %s AND status IN ('open', 'reopened')",
        (list(asset_ids), engine),
    ).fetchall()
    return [OpenFinding(r[0], r[1], r[2], r[3], Location(**r[4])) for r in rows]


def close_findings(
    conn: psycopg.Connection, finding_ids: Sequence[int], scan_run_id: int, now: datetime
) -> int:
    if not finding_ids:
        return 0
    rows = conn.execute(
        "WITH old AS (SELECT id, status FROM findings WHERE id = ANY(%(ids)s) "
        " AND status IN ('open', 'reopened') FOR UPDATE), "
        "closed AS (UPDATE findings f SET status = 'fixed', fixed_at = %(now)s FROM old "
        " WHERE f.id = old.id RETURNING f.id, old.status AS from_status) "
        "INSERT INTO finding_history (finding_id, from_status, to_status, scan_run_id, reason, at) "
        "SELECT id, from_status, 'fixed', %(run)s, 'absent from a successful covering rescan', "
        "%(now)s FROM closed RETURNING finding_id",
        {"now": now, "ids": list(finding_ids), "run": scan_run_id},
    ).fetchall()
    return len(rows)


def actionable_findings(
    conn: psycopg.Connection, policy_hash: str, dry_run: bool = False
) -> list[dict]:
    """Open findings with no decision yet under this policy version (dry runs kept apart)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT f.* FROM findings f WHERE f.status IN ('open', 'reopened') AND NOT EXISTS "
            "(SELECT 1 FROM policy_decisions d WHERE d.finding_id = f.id AND d.policy_hash = %s "
            "AND d.dry_run = %s) ORDER BY f.id",
            (policy_hash, dry_run),
        )
        .fetchall()
    )


def finding_history(conn: psycopg.Connection, finding_id: int) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM finding_history WHERE finding_id = %s ORDER BY id", (finding_id,))
        .fetchall()
    )

"""Findings and their history, written in bulk: COPY into a staging table, one upsert.

The history table gets a row only when a status changes (new, reopened, fixed), so a
rescan that finds the same things writes ``last_seen``, the engine's current wording and rating
(severity, CVSS, CVE ids, CWE: none of them is identity), what enrichment knows today (KEV, EPSS,
priority and its decision points, owner) and nothing else. A due date only ever moves earlier
while a finding stays open (a KEV listing or a re-rating can bring it forward; a rescan never
pushes it back); a finding that comes back after it was fixed gets a fresh one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from autosec.domain.fingerprint import FINGERPRINT_VERSION, fingerprint_of
from autosec.domain.models import Location
from autosec.triage.history import OpenFinding
from autosec.triage.normalise import TriagedFinding
from autosec.triage.priority import points_json

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
# What triage adds beyond the engine's report (migration 0006); staged and upserted alongside.
_CONTEXT_COLUMNS = (
    "priority_decision_id",
    "known_exploited",
    "kev_due_date",
    "kev_ransomware",
    "epss_score",
    "epss_percentile",
    "cvss_version",
    "owner_source",
)
_ALL_COLUMNS = _STAGE_COLUMNS + _CONTEXT_COLUMNS
# The staged row, with the decision points looked up by key (see upsert_findings).
_SELECT_STAGED = ", ".join(
    "d.id" if c == "priority_decision_id" else f"s.{c}" for c in _ALL_COLUMNS
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
        "due_date date, priority_decision_id integer, known_exploited boolean, kev_due_date date, "
        "kev_ransomware boolean, epss_score numeric, epss_percentile numeric, "
        "cvss_version text, owner_source text) ON COMMIT DELETE ROWS"
    )
    # Decision points repeat across a batch: each distinct set is staged (and parsed) once and
    # stored once in priority_decisions; a finding keeps the id.
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS finding_points_stage (key integer PRIMARY KEY, "
        "points jsonb NOT NULL) ON COMMIT DELETE ROWS"
    )
    conn.execute("TRUNCATE finding_stage, finding_points_stage")
    points: dict[str, int] = {}
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY finding_stage ({', '.join(_ALL_COLUMNS)}) FROM STDIN") as copy,
    ):
        for f in findings:
            o = f.observation
            e = f.enrichment
            encoded = (
                points_json(f.decision)
                if f.decision is not None
                else json.dumps(f.priority_points, sort_keys=True)
            )
            points_key = points.setdefault(encoded, len(points))
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
                    f.cvss_score,
                    list(o.cve_ids),
                    o.cwe,
                    json.dumps(o.location.as_dict(), sort_keys=True),
                    evidence_sha256,
                    f.owner,
                    f.due_date,
                    points_key,
                    e.known_exploited,
                    e.kev_due_date,
                    e.kev_ransomware,
                    e.epss_score,
                    e.epss_percentile,
                    e.cvss.version if e.cvss is not None else None,
                    f.owner_source,
                )
            )
    with (
        conn.cursor() as cur,
        cur.copy("COPY finding_points_stage (key, points) FROM STDIN") as copy,
    ):
        for encoded, key in points.items():
            copy.write_row((key, encoded))
    conn.execute(
        "INSERT INTO priority_decisions (points) SELECT points FROM finding_points_stage "
        "ON CONFLICT (points) DO NOTHING"
    )
    reopened = conn.execute(
        "INSERT INTO finding_history (finding_id, from_status, to_status, scan_run_id, reason, at) "
        "SELECT f.id, f.status, 'reopened', %s, 'seen again after it was fixed', %s "
        "FROM findings f JOIN finding_stage s USING (fingerprint) WHERE f.status = 'fixed' "
        "RETURNING finding_id",
        (scan_run_id, now),
    ).fetchall()
    columns = ", ".join(_ALL_COLUMNS)
    # Column names are module constants, never input.
    upserted = conn.execute(
        f"INSERT INTO findings ({columns}, status, first_seen, last_seen, last_scan_run_id) "  # noqa: S608
        f"SELECT {_SELECT_STAGED}, 'open', %(now)s, %(now)s, %(run)s FROM finding_stage s "
        "JOIN finding_points_stage p ON p.key = s.priority_decision_id "
        "JOIN priority_decisions d ON d.points = p.points "
        "ON CONFLICT (fingerprint) DO UPDATE SET "
        " last_seen = EXCLUDED.last_seen, last_scan_run_id = EXCLUDED.last_scan_run_id,"
        " evidence_sha256 = COALESCE(EXCLUDED.evidence_sha256, findings.evidence_sha256),"
        " title = EXCLUDED.title, description = EXCLUDED.description,"
        " severity = EXCLUDED.severity, cvss_vector = EXCLUDED.cvss_vector,"
        " cvss_score = EXCLUDED.cvss_score, cvss_version = EXCLUDED.cvss_version,"
        " cve_ids = EXCLUDED.cve_ids, cwe = EXCLUDED.cwe,"
        " status = CASE WHEN findings.status = 'fixed' THEN 'reopened' ELSE findings.status END,"
        " fixed_at = CASE WHEN findings.status = 'fixed' THEN NULL ELSE findings.fixed_at END,"
        " due_date = CASE WHEN findings.status = 'fixed' THEN EXCLUDED.due_date"
        "                 ELSE LEAST(findings.due_date, EXCLUDED.due_date) END,"
        " priority = EXCLUDED.priority, priority_decision_id = EXCLUDED.priority_decision_id,"
        " known_exploited = EXCLUDED.known_exploited, kev_due_date = EXCLUDED.kev_due_date,"
        " kev_ransomware = EXCLUDED.kev_ransomware, epss_score = EXCLUDED.epss_score,"
        " epss_percentile = EXCLUDED.epss_percentile, owner = EXCLUDED.owner,"
        " owner_source = EXCLUDED.owner_source "
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


def finish_run_triage(
    conn: psycopg.Connection,
    scan_run_id: int,
    now: datetime,
    rejected_because: Sequence[str] = (),
) -> None:
    """Mark a run triaged, or rejected with the reasons (its batch broke the data contract).

    A rejected run is not picked up again by the next triage: its observations would break the
    contract the same way. Its results stay in ``observations`` for whoever fixes the cause.
    """
    status = "rejected" if rejected_because else "triaged"
    conn.execute(
        "UPDATE scan_runs SET triaged_at = %s, triage_status = %s, triage_error = %s WHERE id = %s",
        (now, status, "; ".join(rejected_because) or None, scan_run_id),
    )


def mark_black_swans(
    conn: psycopg.Connection, fingerprints: Sequence[str], now: datetime
) -> list[dict]:
    """Record the first time each open finding was a black swan; only those are returned.

    The stage raises ``finding.black_swan`` for what this returns, so a finding pages people
    once, not on every rescan that still sees it.
    """
    if not fingerprints:
        return []
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE findings SET black_swan_at = %s WHERE fingerprint = ANY(%s) "
            "AND black_swan_at IS NULL AND status IN ('open', 'reopened') "
            "RETURNING id, fingerprint, asset_id, owner, rule_id, title, cve_ids, due_date",
            (now, list(fingerprints)),
        )
        .fetchall()
    )


def unowned_open_findings(conn: psycopg.Connection) -> int:
    """Open findings nobody owns (neither the asset nor an assignment rule named an owner)."""
    row = conn.execute(
        "SELECT count(*) FROM findings WHERE owner IS NULL AND status IN ('open', 'reopened')"
    ).fetchone()
    return int(row[0])


def unowned_open_findings_by_asset(conn: psycopg.Connection) -> dict[str, int]:
    """Where the unowned findings are, so the missing owners can be named in the inventory."""
    rows = conn.execute(
        "SELECT asset_id, count(*) FROM findings WHERE owner IS NULL "
        "AND status IN ('open', 'reopened') GROUP BY asset_id ORDER BY asset_id"
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


class FingerprintCollision(RuntimeError):
    """Recomputing fingerprints would merge stored findings; nothing was written."""

    def __init__(self, version: int, groups: dict[str, list[int]]) -> None:
        self.version = version
        self.groups = groups
        listed = "; ".join(
            f"{fp[:12]}…: findings {', '.join(map(str, ids))}"
            for fp, ids in list(groups.items())[:10]
        )
        super().__init__(
            f"fingerprint version {version} would give {len(groups)} fingerprint(s) to more than "
            f"one stored finding ({listed}): decide which one stays (close the others, e.g. as "
            "false positives with an exception) and run the migration again"
        )


@dataclass(frozen=True)
class Refingerprinted:
    version: int
    updated: int
    unchanged: int


def refingerprint_findings(
    conn: psycopg.Connection, version: int = FINGERPRINT_VERSION
) -> Refingerprinted:
    """Recompute every stored fingerprint not at ``version`` from the stored identity fields.

    The migration path when the algorithm changes (see ``autosec.domain.fingerprint``): run in
    the store migration of the release that bumps ``FINGERPRINT_VERSION``, before triage writes
    new fingerprints. Exceptions scoped to one finding follow it to its new fingerprint. When
    two findings would share a fingerprint it raises ``FingerprintCollision`` before writing.
    """
    rows = conn.execute(
        "SELECT id, fingerprint, asset_id, rule_id, location FROM findings "
        "WHERE fingerprint_version <> %s ORDER BY id",
        (version,),
    ).fetchall()
    if not rows:
        return Refingerprinted(version, 0, 0)
    changes: list[tuple[int, str, str]] = []
    for finding_id, old, asset_id, rule_id, location in rows:
        try:
            new = fingerprint_of(asset_id, rule_id, Location(**location), version)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"finding {finding_id}: cannot compute its version {version} fingerprint: {exc}"
            ) from exc
        changes.append((finding_id, old.strip(), new))
    claimed: dict[str, list[int]] = {}
    for finding_id, _, new in changes:
        claimed.setdefault(new, []).append(finding_id)
    moving = {finding_id for finding_id, _, _ in changes}
    for fp, finding_id in conn.execute(
        "SELECT fingerprint, id FROM findings WHERE fingerprint = ANY(%s)", (list(claimed),)
    ).fetchall():
        if finding_id not in moving:
            claimed[fp.strip()].append(finding_id)
    collisions = {fp: sorted(ids) for fp, ids in claimed.items() if len(ids) > 1}
    if collisions:
        raise FingerprintCollision(version, collisions)
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS refingerprint_stage (id bigint PRIMARY KEY, "
        "old char(64) NOT NULL, new char(64) NOT NULL) ON COMMIT DROP"
    )
    with (
        conn.cursor() as cur,
        cur.copy("COPY refingerprint_stage (id, old, new) FROM STDIN") as copy,
    ):
        for change in changes:
            copy.write_row(change)
    updated = conn.execute(
        "UPDATE findings f SET fingerprint = s.new, fingerprint_version = %s "
        "FROM refingerprint_stage s WHERE f.id = s.id AND f.fingerprint IS DISTINCT FROM s.new",
        (version,),
    ).rowcount
    conn.execute(
        "UPDATE findings f SET fingerprint_version = %s FROM refingerprint_stage s "
        "WHERE f.id = s.id AND f.fingerprint_version <> %s",
        (version, version),
    )
    conn.execute(
        "UPDATE finding_exceptions e SET fingerprint = s.new FROM refingerprint_stage s "
        "WHERE e.scope = 'finding' AND e.fingerprint = s.old"
    )
    conn.execute("DROP TABLE refingerprint_stage")
    return Refingerprinted(version, updated, len(changes) - updated)


def rejected_runs(conn: psycopg.Connection, since: datetime) -> list[dict]:
    """Runs whose triage was rejected since ``since``, with the failing expectations."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, engine, triaged_at, triage_error FROM scan_runs "
            "WHERE triage_status = 'rejected' AND triaged_at >= %s ORDER BY id",
            (since,),
        )
        .fetchall()
    )


def priority_points(conn: psycopg.Connection, finding_ids: Sequence[int]) -> dict[int, dict]:
    """Why each finding has its priority: the decision points, the table row, the inferences."""
    rows = conn.execute(
        "SELECT f.id, d.points FROM findings f JOIN priority_decisions d "
        "ON d.id = f.priority_decision_id WHERE f.id = ANY(%s)",
        (list(finding_ids),),
    ).fetchall()
    return {r[0]: r[1] for r in rows}

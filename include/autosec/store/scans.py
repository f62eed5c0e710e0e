"""Scan runs, their evidence, the observations they produced, and when assets are due."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autosec.domain.models import Location, Observation, Severity


def start_scan_run(
    conn: psycopg.Connection,
    engine: str,
    asset_ids: Sequence[str],
    scope: dict,
    argv: Sequence[str] | None,
    now: datetime,
    run_ref: str | None = None,
    engine_version: str | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO scan_runs (engine, engine_version, asset_ids, scope, argv, status, "
        "started_at, run_ref) VALUES (%s, %s, %s, %s, %s, 'running', %s, %s) RETURNING id",
        (engine, engine_version, list(asset_ids), Jsonb(scope), list(argv or []), now, run_ref),
    ).fetchone()
    conn.commit()
    return int(row[0])


def finish_scan_run(
    conn: psycopg.Connection,
    scan_run_id: int,
    status: str,
    now: datetime,
    exit_code: int | None = None,
    error: str | None = None,
) -> None:
    row = conn.execute(
        "UPDATE scan_runs SET status = %s, exit_code = %s, error = %s, finished_at = %s "
        "WHERE id = %s RETURNING engine, asset_ids",
        (status, exit_code, error, now, scan_run_id),
    ).fetchone()
    engine, asset_ids = row
    conn.execute(
        "INSERT INTO asset_scan_state (asset_id, engine, last_scan_run_id, last_success_at) "
        "SELECT a, %s, %s, CASE WHEN %s THEN %s::timestamptz END FROM unnest(%s::text[]) AS a "
        "ON CONFLICT (asset_id, engine) DO UPDATE SET last_scan_run_id = EXCLUDED.last_scan_run_id,"
        " last_success_at = COALESCE(EXCLUDED.last_success_at, asset_scan_state.last_success_at)",
        (engine, scan_run_id, status == "succeeded", now, asset_ids),
    )
    conn.commit()


def add_evidence(
    conn: psycopg.Connection, scan_run_id: int, sha256: str, path: str, size: int, media_type: str
) -> int:
    row = conn.execute(
        "INSERT INTO evidence (scan_run_id, sha256, path, size_bytes, media_type) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (scan_run_id, sha256, path, size, media_type),
    ).fetchone()
    return int(row[0])


def add_observations(
    conn: psycopg.Connection, scan_run_id: int, observations: Iterable[Observation]
) -> int:
    """COPY the run's observations in; triage picks them up by run id."""
    count = 0
    with (
        conn.cursor() as cur,
        cur.copy("COPY observations (scan_run_id, asset_id, payload) FROM STDIN") as copy,
    ):
        for observation in observations:
            copy.write_row((scan_run_id, observation.asset_id, observation_to_json(observation)))
            count += 1
    return count


def observation_to_json(observation: Observation) -> str:
    data = dataclasses.asdict(observation)
    data["severity"] = observation.severity.value
    data["location"] = observation.location.as_dict()
    data["cve_ids"] = list(observation.cve_ids)
    return json.dumps(data, sort_keys=True, default=str)


def observation_from_json(data: dict) -> Observation:
    return Observation(
        asset_id=data["asset_id"],
        engine=data["engine"],
        rule_id=data["rule_id"],
        title=data["title"],
        severity=Severity(data["severity"]),
        location=Location(**data.get("location", {})),
        description=data.get("description", ""),
        cvss_vector=data.get("cvss_vector"),
        cvss_score=data.get("cvss_score"),
        cve_ids=tuple(data.get("cve_ids", ())),
        cwe=data.get("cwe"),
        evidence=data.get("evidence", {}),
    )


def untriaged_runs(conn: psycopg.Connection, ids: Sequence[int] | None = None) -> list[dict]:
    """Finished runs whose results triage has not taken in yet, oldest first."""
    query = (
        "SELECT id, engine, asset_ids, scope, status FROM scan_runs "
        "WHERE triaged_at IS NULL AND status <> 'running'"
    )
    params: list = []
    if ids is not None:
        query += " AND id = ANY(%s)"
        params.append(list(ids))
    return conn.cursor(row_factory=dict_row).execute(query + " ORDER BY id", params).fetchall()


def load_observations(conn: psycopg.Connection, scan_run_id: int) -> list[Observation]:
    rows = conn.execute(
        "SELECT payload FROM observations WHERE scan_run_id = %s ORDER BY id", (scan_run_id,)
    ).fetchall()
    return [observation_from_json(r[0]) for r in rows]


def mark_triaged(conn: psycopg.Connection, scan_run_id: int, now: datetime) -> None:
    conn.execute("UPDATE scan_runs SET triaged_at = %s WHERE id = %s", (now, scan_run_id))


def scan_runs_for(conn: psycopg.Connection, run_ref: str) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, engine, status, error, asset_ids FROM scan_runs WHERE run_ref = %s "
            "ORDER BY id",
            (run_ref,),
        )
        .fetchall()
    )


def schedule_state(
    conn: psycopg.Connection, engine: str
) -> dict[str, tuple[datetime | None, datetime | None, bool]]:
    """asset id -> (last success of ``engine``, last inventory change, has open findings),
    for every active asset: what the planner's adaptive cadence needs, in one query."""
    rows = conn.execute(
        "SELECT a.id, s.last_success_at, c.last_changed_at, "
        "EXISTS (SELECT 1 FROM findings f WHERE f.asset_id = a.id "
        "AND f.status IN ('open', 'reopened')) "
        "FROM assets a "
        "LEFT JOIN asset_scan_state s ON s.asset_id = a.id AND s.engine = %s "
        "LEFT JOIN (SELECT asset_id, max(at) AS last_changed_at FROM asset_changes "
        "GROUP BY asset_id) c ON c.asset_id = a.id "
        "WHERE a.status = 'active'",
        (engine,),
    ).fetchall()
    return {r[0]: (r[1], r[2], bool(r[3])) for r in rows}


def coverage_by_asset(conn: psycopg.Connection) -> list[dict]:
    """Per active asset and engine: the last run, its status and the last success."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT a.id AS asset_id, a.kind, a.owner, s.engine, s.last_success_at, "
            "r.status AS last_status, r.finished_at AS last_run_at "
            "FROM assets a LEFT JOIN asset_scan_state s ON s.asset_id = a.id "
            "LEFT JOIN scan_runs r ON r.id = s.last_scan_run_id "
            "WHERE a.status = 'active' ORDER BY a.id, s.engine"
        )
        .fetchall()
    )

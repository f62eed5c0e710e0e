"""Blind spots: what discovery saw that no inventory source knows."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autosec.domain.models import BlindSpot


def record_blind_spots(
    conn: psycopg.Connection, spots: Sequence[BlindSpot]
) -> list[tuple[int, bool]]:
    """Upsert blind spots; returns (id, seen for the first time) for each, in order."""
    stored: list[tuple[int, bool]] = []
    for spot in spots:
        row = conn.execute(
            "INSERT INTO blind_spots (address, port, source, evidence, first_seen, last_seen) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (address, port, source) DO UPDATE "
            "SET last_seen = EXCLUDED.last_seen, evidence = EXCLUDED.evidence, status = 'open', "
            "resolved_at = NULL RETURNING id, (xmax = 0)",
            (
                spot.address,
                spot.port or 0,
                spot.source,
                Jsonb(spot.evidence),
                spot.seen_at,
                spot.seen_at,
            ),
        ).fetchone()
        stored.append((int(row[0]), bool(row[1])))
    return stored


def resolve_known(
    conn: psycopg.Connection, source: str, still_blind: Sequence[tuple[str, int]], now
) -> int:
    """Resolve this source's open blind spots that are no longer blind (now inventoried or gone)."""
    keep = [f"{address}:{port}" for address, port in still_blind]
    rows = conn.execute(
        "UPDATE blind_spots SET status = 'resolved', resolved_at = %s WHERE source = %s AND "
        "status = 'open' AND NOT (address || ':' || port = ANY(%s)) RETURNING id",
        (now, source, keep),
    ).fetchall()
    return len(rows)


def open_blind_spots(conn: psycopg.Connection) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM blind_spots WHERE status = 'open' ORDER BY address, port")
        .fetchall()
    )

"""Blind spots: what discovery saw that no inventory source knows, and their lifecycle.

A blind spot is ``new`` until an assignment rule names its owner (``assigned``), then someone
either adopts it into the inventory (naming the asset) or dismisses it (with a reason). Every step
is written to the append-only ``blind_spot_log`` and emitted as an event.

A decided blind spot (adopted or dismissed) is no longer open (``status = 'resolved'``). When
discovery sees it again it is neither reopened nor dropped: it stays decided, ``last_seen`` and the
evidence are updated, and the first sighting after the decision is logged (an adopted spot seen
again means the adopted asset does not explain the address yet). A source that no longer sees an
open blind spot resolves it as before, logged, and its lifecycle and decision are left as they are.

The functions here do not commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autosec.discovery.assignment import AssignmentRule, assign
from autosec.domain.models import BlindSpot
from autosec.store import events

LIFECYCLES = ("new", "assigned", "adopted", "dismissed")
DECIDED = ("adopted", "dismissed")


class BlindSpotRefused(ValueError):
    """A lifecycle step that is not allowed; the message says which blind spot and why."""


def record_blind_spots(
    conn: psycopg.Connection, spots: Sequence[BlindSpot]
) -> list[tuple[int, bool]]:
    """Upsert blind spots; returns (id, seen for the first time) for each, in order.

    An undecided blind spot seen again is open again; a decided one stays decided (see above).
    """
    stored: list[tuple[int, bool]] = []
    for spot in spots:
        port = spot.port or 0
        row = conn.execute(
            "WITH prior AS (SELECT last_seen FROM blind_spots "
            "WHERE address = %s AND port = %s AND source = %s) "
            "INSERT INTO blind_spots (address, port, source, evidence, first_seen, last_seen) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (address, port, source) DO UPDATE "
            "SET last_seen = EXCLUDED.last_seen, evidence = EXCLUDED.evidence, "
            "status = CASE WHEN blind_spots.lifecycle IN ('adopted', 'dismissed') "
            "THEN blind_spots.status ELSE 'open' END, "
            "resolved_at = CASE WHEN blind_spots.lifecycle IN ('adopted', 'dismissed') "
            "THEN blind_spots.resolved_at END "
            "RETURNING id, (xmax = 0), lifecycle, decided_at, (SELECT last_seen FROM prior)",
            (
                spot.address,
                port,
                spot.source,
                spot.address,
                port,
                spot.source,
                Jsonb(spot.evidence),
                spot.seen_at,
                spot.seen_at,
            ),
        ).fetchone()
        spot_id, is_new, lifecycle, decided_at, prior_seen = row
        if is_new:
            _log(conn, spot_id, spot.seen_at, None, "new", spot.source, f"found by {spot.source}")
        elif lifecycle in DECIDED and (prior_seen is None or prior_seen <= decided_at):
            _log(
                conn,
                spot_id,
                spot.seen_at,
                lifecycle,
                lifecycle,
                spot.source,
                f"seen again by {spot.source} after it was {lifecycle}; it stays {lifecycle}",
            )
        stored.append((int(spot_id), bool(is_new)))
    return stored


def resolve_known(
    conn: psycopg.Connection, source: str, still_blind: Sequence[tuple[str, int]], now
) -> int:
    """Resolve this source's open blind spots that are no longer blind (now inventoried or gone).

    Decided blind spots are not open, so their decision is never touched here.
    """
    keep = [f"{address}:{port}" for address, port in still_blind]
    row = conn.execute(
        "WITH resolved AS (UPDATE blind_spots SET status = 'resolved', resolved_at = %s "
        "WHERE source = %s AND status = 'open' AND NOT (address || ':' || port = ANY(%s)) "
        "RETURNING id, lifecycle), "
        "logged AS (INSERT INTO blind_spot_log "
        "(blind_spot_id, at, from_lifecycle, to_lifecycle, actor, reason) "
        "SELECT id, %s, lifecycle, lifecycle, %s, %s FROM resolved) "
        "SELECT count(*) FROM resolved",
        (now, source, keep, now, source, f"no longer seen by {source}: resolved"),
    ).fetchone()
    return int(row[0])


def open_blind_spots(conn: psycopg.Connection) -> list[dict]:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM blind_spots WHERE status = 'open' ORDER BY address, port")
        .fetchall()
    )


def assign_blind_spots(
    conn: psycopg.Connection,
    rules: Sequence[AssignmentRule],
    now: datetime,
    spot_ids: Sequence[int] | None = None,
) -> list[dict]:
    """Assign open ``new`` blind spots (all, or these ids) by the rules; first match wins.

    Returns {id, owner, rule} for each assigned one; those no rule matches stay ``new``.
    """
    if not rules:
        return []
    query = (
        "SELECT id, address, port, source, evidence FROM blind_spots "
        "WHERE lifecycle = 'new' AND status = 'open'"
    )
    params: list = []
    if spot_ids is not None:
        query += " AND id = ANY(%s)"
        params.append(list(spot_ids))
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(query + " ORDER BY id FOR UPDATE", params)
        .fetchall()
    )
    assigned: list[dict] = []
    for row in rows:
        match = assign(row["address"], row["evidence"] or {}, rules)
        if match is None:
            continue
        conn.execute(
            "UPDATE blind_spots SET owner = %s, assigned_by_rule = %s, lifecycle = 'assigned' "
            "WHERE id = %s",
            (match.owner, match.rule_id, row["id"]),
        )
        _log(
            conn,
            row["id"],
            now,
            "new",
            "assigned",
            "assignment",
            f"assigned to {match.owner} by rule {match.rule_id}",
        )
        assigned.append(
            {"id": row["id"], "owner": match.owner, "rule": match.rule_id, **_subject(row)}
        )
    events.emit_many(
        conn,
        "blind_spot.assigned",
        [(a["subject"], {"id": a["id"], "owner": a["owner"], "rule": a["rule"]}) for a in assigned],
    )
    return assigned


def dismiss_blind_spot(
    conn: psycopg.Connection, spot_id: int, actor: str, reason: str, now: datetime
) -> dict:
    """Dismiss a blind spot, on the record: needs the person and a non-empty reason."""
    if not (reason or "").strip():
        raise BlindSpotRefused(f"blind spot {spot_id}: dismissing needs a reason")
    spot = _undecided(conn, spot_id, actor, "dismiss")
    return _decide(conn, spot, "dismissed", actor, reason.strip(), now, None)


def adopt_blind_spot(
    conn: psycopg.Connection,
    spot_id: int,
    actor: str,
    asset_id: str,
    now: datetime,
    reason: str | None = None,
) -> dict:
    """Adopt a blind spot into the inventory as an existing, active asset."""
    spot = _undecided(conn, spot_id, actor, "adopt")
    asset = conn.execute("SELECT status FROM assets WHERE id = %s", (asset_id,)).fetchone()
    if asset is None:
        raise BlindSpotRefused(
            f"blind spot {spot_id}: no inventory asset {asset_id!r} to adopt it as"
        )
    if asset[0] != "active":
        raise BlindSpotRefused(
            f"blind spot {spot_id}: asset {asset_id!r} is {asset[0]}, not active"
        )
    why = (reason or "").strip() or f"adopted as asset {asset_id}"
    return _decide(conn, spot, "adopted", actor, why, now, asset_id)


def get_blind_spot(conn: psycopg.Connection, spot_id: int) -> dict | None:
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM blind_spots WHERE id = %s", (spot_id,))
        .fetchone()
    )


def list_blind_spots(
    conn: psycopg.Connection, lifecycle: str | None = None, open_only: bool = False
) -> list[dict]:
    """Blind spots, open or not, optionally of one lifecycle state; newest sighting first."""
    if lifecycle is not None and lifecycle not in LIFECYCLES:
        raise ValueError(f"unknown lifecycle {lifecycle!r}: known are {list(LIFECYCLES)}")
    conditions, params = ["true"], []
    if lifecycle is not None:
        conditions.append("lifecycle = %s")
        params.append(lifecycle)
    if open_only:
        conditions.append("status = 'open'")
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            f"SELECT * FROM blind_spots WHERE {' AND '.join(conditions)} "  # noqa: S608
            "ORDER BY last_seen DESC, id",
            params,
        )
        .fetchall()
    )


def blind_spot_log(conn: psycopg.Connection, spot_id: int) -> list[dict]:
    """Every step of one blind spot, oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT at, from_lifecycle, to_lifecycle, actor, reason FROM blind_spot_log "
            "WHERE blind_spot_id = %s ORDER BY id",
            (spot_id,),
        )
        .fetchall()
    )


def snapshot_completeness(conn: psycopg.Connection, day: date) -> dict:
    """Upsert the day's inventory completeness from the store as it is now.

    ratio = inventoried / (inventoried + open blind spots); None when both are zero.
    """
    inventoried, open_spots = conn.execute(
        "SELECT (SELECT count(*) FROM assets WHERE status = 'active'), "
        "(SELECT count(*) FROM blind_spots WHERE status = 'open')"
    ).fetchone()
    total = inventoried + open_spots
    ratio = (Decimal(inventoried) / Decimal(total)).quantize(Decimal("0.0001")) if total else None
    conn.execute(
        "INSERT INTO inventory_completeness (day, inventoried, open_blind_spots, ratio) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (day) DO UPDATE SET "
        "inventoried = EXCLUDED.inventoried, open_blind_spots = EXCLUDED.open_blind_spots, "
        "ratio = EXCLUDED.ratio",
        (day, inventoried, open_spots, ratio),
    )
    return {"day": day, "inventoried": inventoried, "open_blind_spots": open_spots, "ratio": ratio}


def completeness_history(conn: psycopg.Connection, since: date) -> list[dict]:
    """Daily completeness from ``since`` (inclusive), oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT day, inventoried, open_blind_spots, ratio FROM inventory_completeness "
            "WHERE day >= %s ORDER BY day",
            (since,),
        )
        .fetchall()
    )


def _undecided(conn: psycopg.Connection, spot_id: int, actor: str, verb: str) -> dict:
    if not (actor or "").strip():
        raise BlindSpotRefused(f"blind spot {spot_id}: to {verb} it, say who you are (--as)")
    spot = (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM blind_spots WHERE id = %s FOR UPDATE", (spot_id,))
        .fetchone()
    )
    if spot is None:
        raise BlindSpotRefused(f"no blind spot {spot_id}")
    if spot["lifecycle"] in DECIDED:
        raise BlindSpotRefused(
            f"blind spot {spot_id} was already {spot['lifecycle']} by {spot['decided_by']} at "
            f"{spot['decided_at']:%Y-%m-%d %H:%M %Z}: {spot['decision_reason']}"
        )
    return spot


def _decide(
    conn: psycopg.Connection,
    spot: dict,
    lifecycle: str,
    actor: str,
    reason: str,
    now: datetime,
    asset_id: str | None,
) -> dict:
    actor = actor.strip()
    decided = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "UPDATE blind_spots SET lifecycle = %s, decided_by = %s, decision_reason = %s, "
            "decided_at = %s, adopted_asset_id = %s, status = 'resolved', "
            "resolved_at = coalesce(resolved_at, %s) WHERE id = %s RETURNING *",
            (lifecycle, actor, reason, now, asset_id, now, spot["id"]),
        )
        .fetchone()
    )
    _log(conn, spot["id"], now, spot["lifecycle"], lifecycle, actor, reason)
    payload = {"id": spot["id"], "by": actor, "reason": reason, "owner": spot["owner"]}
    if asset_id is not None:
        payload["asset_id"] = asset_id
    events.emit(conn, f"blind_spot.{lifecycle}", _subject(spot)["subject"], payload)
    return decided


def _subject(row: dict) -> dict:
    """The event subject, as ``blind_spot.found`` names it (address:port)."""
    return {"subject": f"{row['address']}:{row['port']}"}


def _log(
    conn: psycopg.Connection,
    spot_id: int,
    at: datetime,
    from_lifecycle: str | None,
    to_lifecycle: str,
    actor: str,
    reason: str | None,
) -> None:
    conn.execute(
        "INSERT INTO blind_spot_log (blind_spot_id, at, from_lifecycle, to_lifecycle, actor, "
        "reason) VALUES (%s, %s, %s, %s, %s, %s)",
        (spot_id, at, from_lifecycle, to_lifecycle, actor, reason),
    )


_NAMES_SEEN = """
WITH seen AS (
    SELECT n.name, o.asset_id, o.payload->>'rule_id' AS rule_id, r.engine,
           r.id AS scan_run_id, r.finished_at, o.payload->'location' AS location
    FROM scan_runs r
    JOIN observations o ON o.scan_run_id = r.id
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(o.payload->'evidence'->'names_seen') = 'array'
             THEN o.payload->'evidence'->'names_seen' ELSE '[]'::jsonb END
    ) AS n(name)
    WHERE r.status = 'succeeded' AND r.finished_at >= %(since)s
      AND o.payload->>'rule_id' = ANY(%(rules)s)
)
SELECT DISTINCT ON (name, asset_id, rule_id) name, asset_id, rule_id, engine, scan_run_id,
       finished_at, location, count(*) OVER (PARTITION BY name, asset_id, rule_id) AS times
FROM seen
ORDER BY name, asset_id, rule_id, finished_at DESC, scan_run_id DESC
"""


def names_seen_by_scans(
    conn: psycopg.Connection, since: datetime, rules: Sequence[str]
) -> list[dict]:
    """Every name the observations of these rules listed in ``evidence["names_seen"]``, in
    succeeded scan runs finished since ``since``: one row per (name, asset, rule) with the
    latest run that saw it and how many observations did."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(_NAMES_SEEN, {"since": since, "rules": list(rules)})
        .fetchall()
    )


def succeeded_scan_runs(conn: psycopg.Connection, since: datetime, engines: Sequence[str]) -> int:
    """How many runs of these engines succeeded since ``since``."""
    row = conn.execute(
        "SELECT count(*) FROM scan_runs WHERE status = 'succeeded' AND finished_at >= %s "
        "AND engine = ANY(%s)",
        (since, list(engines)),
    ).fetchone()
    return int(row[0])

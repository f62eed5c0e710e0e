"""Notification deliveries in the store: routing events into per-team digests, sealing them,
recording what was sent. Bulk statements only: 100,000 events are a few statements, not a loop.

The decisions (which route wants which events, when a digest may go, what the rate limit
allows) are ``autosec.notifications.planning``; ``autosec.stages.notifications`` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from autosec.notifications.digest import NameCount, Sample
from autosec.notifications.planning import EventGroup

_LOCK_KEY = "autosec.notifications"

# The numeric id in a payload field or a subject ("finding:12"), or NULL: never a cast error.
_FINDING_ID = """
CASE
    WHEN e.payload->>'finding_id' ~ '^[0-9]{1,18}$' THEN (e.payload->>'finding_id')::bigint
    WHEN e.subject ~ '^finding:[0-9]{1,18}$' THEN substr(e.subject, 9)::bigint
    WHEN e.subject ~ '^action:[0-9]{1,18}$' THEN
        (SELECT ac.finding_id FROM actions ac WHERE ac.id = substr(e.subject, 8)::bigint)
    WHEN e.subject ~ '^approval:[0-9]{1,18}$' THEN
        (SELECT min(ac.finding_id) FROM actions ac
         WHERE ac.approval_id = substr(e.subject, 10)::bigint)
END
"""

_BLIND_SPOT_ID = """
CASE WHEN e.name LIKE 'blind\\_spot.%%' AND e.payload->>'id' ~ '^[0-9]{1,18}$'
     THEN (e.payload->>'id')::bigint END
"""

# The team an event is about: named in the event, else the owner of what it is about (the
# blind spot, the finding, the asset), else '' (nobody owns it).
_STAGE_UNROUTED = f"""
INSERT INTO routing_batch (id, name, team)
SELECT e.id, e.name,
       coalesce(nullif(e.payload->>'team', ''), nullif(e.payload->>'owner', ''),
                nullif(s.owner, ''), nullif(f.owner, ''), nullif(a.owner, ''), '')
FROM (
    SELECT id, name, subject, payload FROM events
    WHERE routed_at IS NULL AND name = ANY(%(names)s)
    ORDER BY id LIMIT %(limit)s
) e
LEFT JOIN findings f ON f.id = ({_FINDING_ID})
LEFT JOIN blind_spots s ON s.id = ({_BLIND_SPOT_ID})
LEFT JOIN assets a ON a.id = coalesce(e.payload->>'asset_id', f.asset_id)
"""  # noqa: S608 - fixed SQL fragments only


# --- the lock -------------------------------------------------------------------------------


def try_lock(conn: psycopg.Connection) -> bool:
    """One delivery run at a time (session lock): a second one finds it taken and stops."""
    taken = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_LOCK_KEY,)).fetchone()[0]
    conn.commit()
    return bool(taken)


def unlock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK_KEY,))
    conn.commit()


# --- routing --------------------------------------------------------------------------------


def skip_unwanted(conn: psycopg.Connection, wanted: Iterable[str], now: datetime) -> int:
    """Events no route subscribes to are routed nowhere, once (they leave the pending index)."""
    return conn.execute(
        "UPDATE events SET routed_at = %s WHERE routed_at IS NULL AND NOT (name = ANY(%s))",
        (now, sorted(set(wanted))),
    ).rowcount


def stage_unrouted(conn: psycopg.Connection, wanted: Iterable[str], limit: int) -> int:
    """Take the oldest unrouted events of the wanted names, each with its team, into this
    transaction's ``routing_batch``: every later step works on exactly this set."""
    conn.execute(
        "CREATE TEMP TABLE routing_batch (id bigint PRIMARY KEY, name text NOT NULL, "
        "team text NOT NULL) ON COMMIT DROP"
    )
    staged = conn.execute(_STAGE_UNROUTED, {"names": sorted(set(wanted)), "limit": limit}).rowcount
    conn.execute("ANALYZE routing_batch")
    return staged


def staged_groups(conn: psycopg.Connection) -> list[EventGroup]:
    rows = conn.execute(
        "SELECT name, team, count(*) FROM routing_batch GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return [EventGroup(name, team, count) for name, team, count in rows]


def last_digest_times(
    conn: psycopg.Connection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], datetime]:
    """When each (route, team) last had a digest leave the open state."""
    if not pairs:
        return {}
    rows = conn.execute(
        "SELECT p.route, p.team, "
        "  (SELECT max(d.sealed_at) FROM notification_deliveries d "
        "   WHERE d.kind = 'digest' AND d.route = p.route AND d.team = p.team "
        "     AND d.sealed_at IS NOT NULL) "
        "FROM unnest(%s::text[], %s::text[]) AS p(route, team)",
        ([r for r, _ in pairs], [t for _, t in pairs]),
    ).fetchall()
    return {(route, team): at for route, team, at in rows if at is not None}


def open_digests(
    conn: psycopg.Connection,
    wanted: Sequence[tuple[str, str, str, datetime]],
    now: datetime,
) -> dict[tuple[str, str], int]:
    """The open digest of each (route, team, channel, not_before), opened where there is none."""
    if not wanted:
        return {}
    columns = list(zip(*wanted, strict=True))
    conn.execute(
        "INSERT INTO notification_deliveries "
        "  (kind, channel, route, team, status, opened_at, not_before) "
        "SELECT 'digest', w.channel, w.route, w.team, 'open', %s, w.not_before "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) "
        "  AS w(route, team, channel, not_before) "
        "ON CONFLICT (route, team) WHERE status = 'open' DO NOTHING",
        (now, list(columns[0]), list(columns[1]), list(columns[2]), list(columns[3])),
    )
    rows = conn.execute(
        "SELECT d.route, d.team, d.id FROM notification_deliveries d "
        "JOIN unnest(%s::text[], %s::text[]) AS w(route, team) "
        "  ON d.route = w.route AND d.team = w.team "
        "WHERE d.status = 'open'",
        (list(columns[0]), list(columns[1])),
    ).fetchall()
    return {(route, team): delivery_id for route, team, delivery_id in rows}


def add_items(conn: psycopg.Connection, assignments: Sequence[tuple[str, str, str, int]]) -> int:
    """Every staged event of (name, team) into its route's digest: (route, name, team, id)."""
    if not assignments:
        return 0
    columns = list(zip(*assignments, strict=True))
    rows = conn.execute(
        """
        WITH added AS (
            INSERT INTO notification_items (route, event_id, delivery_id)
            SELECT m.route, b.id, m.delivery_id
            FROM routing_batch b
            JOIN unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
                AS m(route, name, team, delivery_id)
              ON m.name = b.name AND m.team = b.team
            ON CONFLICT (route, event_id) DO NOTHING
            RETURNING delivery_id
        ), counted AS (
            SELECT delivery_id, count(*) AS n FROM added GROUP BY delivery_id
        )
        UPDATE notification_deliveries d SET events = d.events + c.n
        FROM counted c WHERE d.id = c.delivery_id
        RETURNING c.n
        """,
        tuple(list(c) for c in columns),
    ).fetchall()
    return sum(n for (n,) in rows)


def mark_routed(conn: psycopg.Connection, now: datetime) -> int:
    return conn.execute(
        "UPDATE events e SET routed_at = %s FROM routing_batch b WHERE e.id = b.id", (now,)
    ).rowcount


# --- sealing --------------------------------------------------------------------------------


def drop_orphans(conn: psycopg.Connection, routes: Iterable[str], now: datetime) -> int:
    """Open digests of routes no longer configured: dropped, with the reason."""
    return conn.execute(
        "UPDATE notification_deliveries SET status = 'dropped', sealed_at = %s, "
        "last_error = 'its route ' || route || ' is no longer configured' "
        "WHERE status = 'open' AND NOT (route = ANY(%s))",
        (now, sorted(set(routes))),
    ).rowcount


def due_digests(conn: psycopg.Connection, routes: Iterable[str], now: datetime) -> list[dict]:
    """Open digests of these routes whose time has come, oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, route, team, events, opened_at FROM notification_deliveries "
            "WHERE status = 'open' AND route = ANY(%s) AND not_before <= %s AND events > 0 "
            "ORDER BY id",
            (sorted(set(routes)), now),
        )
        .fetchall()
    )


def waiting_digests(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM notification_deliveries WHERE status = 'open' AND events > 0"
    ).fetchone()[0]


def messages_since(conn: psycopg.Connection, channel: str, since: datetime) -> int:
    """Messages this channel was given since ``since`` (sealed, sent or given up on)."""
    return conn.execute(
        "SELECT count(*) FROM notification_deliveries "
        "WHERE channel = %s AND status IN ('sealed', 'sent', 'failed') AND sealed_at >= %s",
        (channel, since),
    ).fetchone()[0]


def digest_contents(
    conn: psycopg.Connection, delivery_ids: Sequence[int], samples: int
) -> dict[int, list[NameCount]]:
    """Per digest: each event name's count and its first ``samples`` events (subject, payload).

    Counted in the database: a digest of 100,000 events reads back a few rows per name.
    """
    if not delivery_ids:
        return {}
    rows = conn.execute(
        """
        WITH ranked AS (
            SELECT i.delivery_id, e.name, e.id,
                   row_number() OVER (PARTITION BY i.delivery_id, e.name ORDER BY e.id) AS rn,
                   count(*) OVER (PARTITION BY i.delivery_id, e.name) AS n
            FROM notification_items i JOIN events e ON e.id = i.event_id
            WHERE i.delivery_id = ANY(%s)
        )
        SELECT r.delivery_id, r.name, r.n, e.subject, e.payload
        FROM ranked r JOIN events e ON e.id = r.id
        WHERE r.rn <= %s
        ORDER BY r.delivery_id, r.name, r.rn
        """,
        (list(delivery_ids), samples),
    ).fetchall()
    grouped: dict[int, dict[str, tuple[int, list[Sample]]]] = {}
    for delivery_id, name, count, subject, payload in rows:
        entry = grouped.setdefault(delivery_id, {}).setdefault(name, (count, []))
        entry[1].append(Sample(subject, payload or {}))
    return {
        delivery_id: [NameCount(name, count, tuple(s)) for name, (count, s) in names.items()]
        for delivery_id, names in grouped.items()
    }


def held_back(
    conn: psycopg.Connection, delivery_ids: Sequence[int]
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """What digests hold, by event name and by team (for a rate-limit summary)."""
    by_name = conn.execute(
        "SELECT e.name, count(*) FROM notification_items i JOIN events e ON e.id = i.event_id "
        "WHERE i.delivery_id = ANY(%s) GROUP BY 1 ORDER BY 1",
        (list(delivery_ids),),
    ).fetchall()
    by_team = conn.execute(
        "SELECT team, sum(events)::bigint FROM notification_deliveries WHERE id = ANY(%s) "
        "GROUP BY 1 ORDER BY 1",
        (list(delivery_ids),),
    ).fetchall()
    return [(n, int(c)) for n, c in by_name], [(t, int(c)) for t, c in by_team]


def seal(
    conn: psycopg.Connection,
    delivery_id: int,
    channel: str,
    key: str,
    message: dict[str, Any],
    now: datetime,
) -> None:
    """Freeze a digest's message and key before the first attempt to send it."""
    updated = conn.execute(
        "UPDATE notification_deliveries SET status = 'sealed', channel = %s, "
        "idempotency_key = %s, message = %s, sealed_at = %s "
        "WHERE id = %s AND status = 'open'",
        (channel, key, Jsonb(message), now, delivery_id),
    ).rowcount
    if updated != 1:
        raise RuntimeError(f"notification delivery {delivery_id} was not open: not sealed")


def open_overflow(conn: psycopg.Connection, channel: str, now: datetime) -> int:
    return conn.execute(
        "INSERT INTO notification_deliveries (kind, channel, status, opened_at, not_before) "
        "VALUES ('overflow', %s, 'open', %s, %s) RETURNING id",
        (channel, now, now),
    ).fetchone()[0]


def summarise(
    conn: psycopg.Connection, overflow_id: int, delivery_ids: Sequence[int], now: datetime
) -> int:
    """The digests the rate limit had no room for are carried by the overflow message."""
    conn.execute(
        "UPDATE notification_deliveries o SET events = ("
        "  SELECT coalesce(sum(events), 0) FROM notification_deliveries WHERE id = ANY(%s)) "
        "WHERE o.id = %s",
        (list(delivery_ids), overflow_id),
    )
    return conn.execute(
        "UPDATE notification_deliveries SET status = 'summarised', summary_id = %s, "
        "sealed_at = %s WHERE id = ANY(%s) AND status = 'open'",
        (overflow_id, now, list(delivery_ids)),
    ).rowcount


# --- sending --------------------------------------------------------------------------------


def sealed(conn: psycopg.Connection) -> list[dict]:
    """Messages sealed and not yet sent (a crash may have sent them already): oldest first."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT id, kind, channel, route, team, idempotency_key, message, events, attempts "
            "FROM notification_deliveries WHERE status = 'sealed' ORDER BY id"
        )
        .fetchall()
    )


def mark_sent(conn: psycopg.Connection, delivery_id: int, now: datetime) -> int:
    """The channel took the message: it and the events it carries are delivered."""
    updated = conn.execute(
        "UPDATE notification_deliveries SET status = 'sent', sent_at = %s, "
        "attempts = attempts + 1, last_error = NULL WHERE id = %s AND status = 'sealed'",
        (now, delivery_id),
    ).rowcount
    if updated != 1:
        raise RuntimeError(f"notification delivery {delivery_id} was not sealed: not marked sent")
    return conn.execute(
        "UPDATE events e SET delivered_at = %s FROM notification_items i "
        "WHERE i.event_id = e.id AND e.delivered_at IS NULL AND i.delivery_id IN ("
        "  SELECT %s UNION ALL "
        "  SELECT id FROM notification_deliveries WHERE summary_id = %s)",
        (now, delivery_id, delivery_id),
    ).rowcount


def record_failure(
    conn: psycopg.Connection, delivery_id: int, error: str, max_attempts: int
) -> str:
    """A failed attempt: the message stays sealed for the next run, or is given up on."""
    return conn.execute(
        "UPDATE notification_deliveries SET attempts = attempts + 1, last_error = %s, "
        "status = CASE WHEN attempts + 1 >= %s THEN 'failed' ELSE status END "
        "WHERE id = %s AND status = 'sealed' RETURNING status",
        (error[:2000], max_attempts, delivery_id),
    ).fetchone()[0]


def deliveries(conn: psycopg.Connection) -> list[dict]:
    """Every delivery, oldest first (for the pages and the tests)."""
    return (
        conn.cursor(row_factory=dict_row)
        .execute("SELECT * FROM notification_deliveries ORDER BY id")
        .fetchall()
    )

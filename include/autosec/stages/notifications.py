"""Notifications: raise SLA breaches once, route events into per-team digests, send them.

A delivery run has three steps, each committed before the next:

1. *route*: the events not yet routed (oldest first, up to ``max_events``) each get their team
   and go into the open digest of every route that wants them, one per (route, team);
2. *seal*: per channel, the digests whose window has come are fitted into the channel's rate
   limit (``planning.allocate``); each one sent is sealed with its text and idempotency key,
   the rest fold into one summary message;
3. *send*: every sealed message is sent and marked sent, one commit each.

A crash between a send and its mark leaves the message sealed: the next run sends the same text
with the same key again (at least once; the receiver can tell a repeat), and no event ever
moves into a second digest of the same route. The sender is injected (the Airflow notifiers in
production, anything callable in tests); it raises when the channel did not take the message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Connection

from autosec.notifications import digest, planning
from autosec.notifications.routes import ChatChannel, EmailChannel, NotificationRoute
from autosec.store import notifications as store
from autosec.store import sla

Sender = Callable[[Mapping[str, Any]], None]
ChannelCheck = Callable[[ChatChannel | EmailChannel], bool]

MAX_EVENTS_PER_RUN = 500_000
MAX_ATTEMPTS = 24  # a day of hourly runs, then the message is given up on (and recorded)


def sweep_sla_breaches(conn: Connection, now: datetime) -> sla.SweepCounts:
    """``sla.breached`` once for every open finding newly past its due date; committed."""
    counts = sla.sweep(conn, now)
    conn.commit()
    return counts


@dataclass
class DeliveryOutcome:
    busy: bool = False
    skipped: int = 0
    routed: int = 0
    items: int = 0
    dropped: int = 0
    sealed: int = 0
    summarised: int = 0
    summaries: int = 0
    sent: int = 0
    given_up: int = 0
    waiting: int = 0
    unconfigured: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "busy": self.busy,
            "events_routed": self.routed,
            "events_no_route_wants": self.skipped,
            "digest_items": self.items,
            "digests_sealed": self.sealed,
            "digests_summarised": self.summarised,
            "summaries": self.summaries,
            "messages_sent": self.sent,
            "messages_failed": len(self.failures),
            "messages_given_up": self.given_up,
            "digests_waiting": self.waiting,
            "digests_dropped": self.dropped,
            "channels_not_configured": list(self.unconfigured),
        }


def deliver_notifications(
    conn: Connection,
    routes: Sequence[NotificationRoute],
    send: Sender,
    now: datetime,
    *,
    configured: ChannelCheck = lambda channel: True,
    max_events: int = MAX_EVENTS_PER_RUN,
    max_attempts: int = MAX_ATTEMPTS,
) -> DeliveryOutcome:
    """Route, seal and send (see the module docstring). A channel ``configured`` says is not
    set up keeps its digests open: they wait, collecting events, until it is."""
    outcome = DeliveryOutcome()
    if not store.try_lock(conn):
        outcome.busy = True
        return outcome
    try:
        _route(conn, routes, now, max_events, outcome)
        conn.commit()
        _seal(conn, routes, now, configured, outcome)
        conn.commit()
        _send(conn, send, now, max_attempts, outcome)
        outcome.waiting = store.waiting_digests(conn)
        conn.commit()
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
            store.unlock(conn)
    return outcome


def _route(
    conn: Connection,
    routes: Sequence[NotificationRoute],
    now: datetime,
    max_events: int,
    outcome: DeliveryOutcome,
) -> None:
    wanted = frozenset().union(*(route.event_names for route in routes))
    outcome.skipped = store.skip_unwanted(conn, wanted, now)
    if not wanted or not store.stage_unrouted(conn, wanted, max_events):
        return
    assignments = planning.assign(routes, store.staged_groups(conn))
    by_name = {route.name: route for route in routes}
    pairs = sorted({(a.route, a.team) for a in assignments})
    last = store.last_digest_times(conn, pairs)
    digests = store.open_digests(
        conn,
        [
            (
                route,
                team,
                by_name[route].channel.key,
                planning.digest_not_before(
                    now, by_name[route].digest_minutes, last.get((route, team))
                ),
            )
            for route, team in pairs
        ],
        now,
    )
    outcome.items = store.add_items(
        conn, [(a.route, a.name, a.team, digests[(a.route, a.team)]) for a in assignments]
    )
    outcome.routed = store.mark_routed(conn, now)


def _seal(
    conn: Connection,
    routes: Sequence[NotificationRoute],
    now: datetime,
    configured: ChannelCheck,
    outcome: DeliveryOutcome,
) -> None:
    by_name = {route.name: route for route in routes}
    outcome.dropped = store.drop_orphans(conn, by_name, now)
    by_channel: dict[str, list[NotificationRoute]] = {}
    for route in routes:
        by_channel.setdefault(route.channel.key, []).append(route)
    for key, channel_routes in by_channel.items():
        channel = channel_routes[0].channel
        if not configured(channel):
            outcome.unconfigured.append(key)
            continue
        due = [
            planning.DueDigest(row["id"], row["route"], row["team"], row["events"])
            for row in store.due_digests(conn, [r.name for r in channel_routes], now)
        ]
        if not due:
            continue
        limit = channel.rate_limit
        used = store.messages_since(conn, key, planning.window_start(now, limit.per_minutes))
        allocation = planning.allocate(due, limit, used)
        samples = max(route.max_lines_per_event for route in channel_routes)
        contents = store.digest_contents(conn, [d.delivery_id for d in allocation.send], samples)
        for due_digest in allocation.send:
            route = by_name[due_digest.route]
            groups = contents.get(due_digest.delivery_id, [])
            text = digest.digest_text(due_digest.team, groups, route.max_lines_per_event)
            message = _message(
                "digest",
                route.channel,
                route.channel.recipients_for(due_digest.team),
                digest.digest_subject(due_digest.team, groups),
                text,
                planning.delivery_key(
                    key, route.name, due_digest.team, due_digest.delivery_id, now
                ),
                {"route": route.name, "team": due_digest.team, "events": due_digest.events},
            )
            store.seal(conn, due_digest.delivery_id, key, message["key"], message, now)
            outcome.sealed += 1
        if allocation.summarise:
            _seal_summary(conn, key, channel_routes, allocation.summarise, now)
            outcome.summarised += len(allocation.summarise)
            outcome.summaries += 1


def _seal_summary(
    conn: Connection,
    key: str,
    channel_routes: Sequence[NotificationRoute],
    summarised: Sequence[planning.DueDigest],
    now: datetime,
) -> None:
    """One message for the digests the rate limit had no room for ("N more events")."""
    ids = [d.delivery_id for d in summarised]
    by_name, by_team = store.held_back(conn, ids)
    held = digest.HeldBack(len(ids), by_name, by_team)
    overflow_id = store.open_overflow(conn, key, now)
    store.summarise(conn, overflow_id, ids, now)
    involved = {d.route for d in summarised}
    channel = channel_routes[0].channel
    recipients = tuple(
        dict.fromkeys(
            address
            for route in channel_routes
            if route.name in involved
            for address in route.channel.recipients_for(None)
        )
    )
    limit = channel.rate_limit
    message = _message(
        "overflow",
        channel,
        recipients,
        digest.overflow_subject(held),
        digest.overflow_text(key, limit.messages, limit.per_minutes, held),
        planning.delivery_key(key, None, None, overflow_id, now),
        {"digests": held.digests, "events": held.events, "routes": sorted(involved)},
    )
    store.seal(conn, overflow_id, key, message["key"], message, now)


def _message(
    kind: str,
    channel: ChatChannel | EmailChannel,
    recipients: Sequence[str],
    subject: str,
    text: str,
    key: str,
    about: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything a sender needs, frozen with the delivery: a retry sends exactly this."""
    where: dict[str, Any] = {"kind": channel.kind, "conn_id": channel.conn_id}
    if isinstance(channel, EmailChannel):
        where["from_email"] = channel.from_email
    return {
        "kind": kind,
        "channel": where,
        "recipients": list(recipients),
        "subject": subject,
        "text": text,
        "key": key,
        "about": dict(about),
    }


def _send(
    conn: Connection, send: Sender, now: datetime, max_attempts: int, outcome: DeliveryOutcome
) -> None:
    broken: set[str] = set()
    for row in store.sealed(conn):
        if row["channel"] in broken:
            continue  # one failure per channel and run: the rest wait, untried
        try:
            send(row["message"])
        except Exception as exc:  # noqa: BLE001 - any failure of a channel is recorded, not fatal
            error = f"{type(exc).__name__}: {exc}"
            status = store.record_failure(conn, row["id"], error, max_attempts)
            conn.commit()
            broken.add(row["channel"])
            outcome.failures.append(f"delivery {row['id']} to {row['channel']}: {error}")
            outcome.given_up += status == "failed"
            continue
        store.mark_sent(conn, row["id"], now)
        conn.commit()
        outcome.sent += 1

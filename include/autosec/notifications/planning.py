"""Routing, digest windows and rate limits as plain arithmetic over plain data.

The store hands over counts (events per name and team, messages already sent in a window); these
functions decide, and the store applies the decision in bulk. Windows are aligned to the clock
(an hourly window runs from :00 to :00 UTC), so a delivery run that drifts by a few seconds
never lands in the window it already used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from autosec.notifications.routes import NotificationRoute, RateLimit

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventGroup:
    """How many pending events share a name and a team ('' when nobody owns them)."""

    name: str
    team: str
    count: int


@dataclass(frozen=True)
class Assignment:
    """Every pending event of ``name`` about ``team`` goes into ``route``'s digest for the team."""

    route: str
    name: str
    team: str


def assign(routes: Sequence[NotificationRoute], groups: Iterable[EventGroup]) -> list[Assignment]:
    """Which route takes which (name, team) group: every route that wants it (a group can go to a
    chat channel and to e-mail); a group no route wants goes nowhere."""
    return [
        Assignment(route.name, group.name, group.team)
        for group in groups
        for route in routes
        if group.count > 0 and route.wants(group.name, group.team)
    ]


def window_start(now: datetime, minutes: int) -> datetime:
    """The start of the clock-aligned window of ``minutes`` that contains ``now``."""
    if minutes <= 0:
        raise ValueError(f"a window needs a positive length, got {minutes} minutes")
    step = timedelta(minutes=minutes)
    return _EPOCH + ((now - _EPOCH) // step) * step


def digest_not_before(
    now: datetime, digest_minutes: int, last_digest_at: datetime | None
) -> datetime:
    """When a new digest for a (route, team) may go out: now, unless one already went out in the
    current digest window; then at the start of the next window."""
    if digest_minutes == 0 or last_digest_at is None:
        return now
    start = window_start(now, digest_minutes)
    if last_digest_at >= start:
        return start + timedelta(minutes=digest_minutes)
    return now


@dataclass(frozen=True)
class DueDigest:
    """A digest whose time has come, waiting for room on its channel."""

    delivery_id: int
    route: str
    team: str
    events: int


@dataclass(frozen=True)
class Allocation:
    """What a channel sends now: whole digests, the digests folded into one summary, the rest
    held for the next rate window (only when the window has no room left at all)."""

    send: tuple[DueDigest, ...] = ()
    summarise: tuple[DueDigest, ...] = ()
    held: tuple[DueDigest, ...] = ()

    @property
    def messages(self) -> int:
        return len(self.send) + (1 if self.summarise else 0)


def allocate(due: Sequence[DueDigest], limit: RateLimit, sent_in_window: int) -> Allocation:
    """Fit the due digests into what the channel's rate window has left.

    Everything fits: each digest is sent. Otherwise the oldest digests are sent in all but the
    last free slot, and that slot carries one summary of the rest ("N more events"). No slot
    left: everything waits for the next window (it keeps collecting events meanwhile).
    """
    ordered = tuple(sorted(due, key=lambda d: d.delivery_id))
    room = max(limit.messages - sent_in_window, 0)
    if len(ordered) <= room:
        return Allocation(send=ordered)
    if room == 0:
        return Allocation(held=ordered)
    return Allocation(send=ordered[: room - 1], summarise=ordered[room - 1 :])


def delivery_key(
    channel: str, route: str | None, team: str | None, delivery_id: int, at: datetime
) -> str:
    """The idempotency key a message carries on every attempt: a receiver that saw it already
    is looking at a repeat (the chat ``Idempotency-Key``, the mail's ``Message-ID``)."""
    text = "|".join([channel, route or "", team or "", str(delivery_id), at.isoformat()])
    return hashlib.sha256(text.encode()).hexdigest()

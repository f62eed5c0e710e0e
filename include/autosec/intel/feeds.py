"""Feed freshness: how old a feed's own data is, and the warning text when it is too old.

A feed is dated by what it says about itself (the KEV catalog's release time, the EPSS score
date, the newest ``modified`` among OSV records), not by when it was downloaded: a mirror that
keeps serving last month's catalog must still be reported stale.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def feed_age_days(feed_date: datetime | date, now: datetime) -> int:
    """Whole days between the feed's own date and ``now`` (never negative)."""
    if not isinstance(feed_date, datetime):
        feed_date = datetime.combine(feed_date, time(), tzinfo=UTC)
    elif feed_date.tzinfo is None:
        feed_date = feed_date.replace(tzinfo=UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return max(0, (now - feed_date).days)


def staleness_warning(
    feed: str, feed_date: datetime | date | None, now: datetime, max_age_days: int
) -> str | None:
    """``"kev feed is 9 days old (...)"`` when older than ``max_age_days``, else None.

    A feed that was never loaded is always worth a warning: matching against nothing looks
    exactly like matching and finding nothing.
    """
    if max_age_days < 0:
        raise ValueError(f"max_age_days must be 0 or more, got {max_age_days}")
    if feed_date is None:
        return f"{feed} feed has never been loaded: no data to match or enrich with"
    age = feed_age_days(feed_date, now)
    if age <= max_age_days:
        return None
    day = feed_date.date() if isinstance(feed_date, datetime) else feed_date
    return (
        f"{feed} feed is {age} days old (its data is from {day.isoformat()}; "
        f"the limit is {max_age_days} days)"
    )

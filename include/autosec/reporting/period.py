"""The period a compliance pack covers, and which packs fall due on a given day.

A period is a span of whole days, both ends included, measured in UTC: ``[start 00:00,
end + 1 day 00:00)``. A pack is about its period and nothing else, so everything it shows is
read "as of" the period's end, which makes a pack for a past month rebuildable byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

Cadence = Literal["monthly", "quarterly"]
CADENCES: tuple[str, ...] = ("monthly", "quarterly")


def _as_day(value: object, what: str) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"{what}: expected a date, got a datetime ({value.isoformat()})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None
    raise TypeError(f"{what}: expected a date, got {type(value).__name__}")


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    """Whole days from ``start`` to ``end``, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        start = _as_day(self.start, "period start")
        end = _as_day(self.end, "period end")
        if start > end:
            raise ValueError(f"period: start {start.isoformat()} is after end {end.isoformat()}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        return cls(date(year, month, 1), _month_end(year, month))

    @classmethod
    def quarter(cls, year: int, quarter: int) -> Period:
        if quarter not in (1, 2, 3, 4):
            raise ValueError(f"quarter {quarter!r}: expected 1 to 4")
        first = 3 * (quarter - 1) + 1
        return cls(date(year, first, 1), _month_end(year, first + 2))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_at(self) -> datetime:
        """The first instant of the period (UTC)."""
        return datetime.combine(self.start, time(), UTC)

    @property
    def end_before(self) -> datetime:
        """The first instant after the period (UTC): the period is ``[start_at, end_before)``."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    @property
    def label(self) -> str:
        """``2026-03`` for a calendar month, ``2026-Q1`` for a quarter, else both dates."""
        if self == Period.month(self.start.year, self.start.month):
            return f"{self.start.year:04d}-{self.start.month:02d}"
        if self.start.month % 3 == 1 and self == Period.quarter(
            self.start.year, (self.start.month + 2) // 3
        ):
            return f"{self.start.year:04d}-Q{(self.start.month + 2) // 3}"
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    def contains(self, moment: date | datetime) -> bool:
        if isinstance(moment, datetime):
            aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            return self.start_at <= aware < self.end_before
        return self.start <= moment <= self.end

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}


def period_containing(cadence: str, day: date) -> Period:
    if cadence == "monthly":
        return Period.month(day.year, day.month)
    if cadence == "quarterly":
        return Period.quarter(day.year, (day.month - 1) // 3 + 1)
    raise ValueError(f"cadence {cadence!r}: expected one of {list(CADENCES)}")


def previous_period(cadence: str, on: date) -> Period:
    """The last complete month or quarter that ended before ``on``."""
    return period_containing(cadence, period_containing(cadence, on).start - timedelta(days=1))


def starts_period(cadence: str, on: date) -> bool:
    """True on the first day of a month (monthly) or of a quarter (quarterly)."""
    return period_containing(cadence, on).start == on


@dataclass(frozen=True)
class PackRequest:
    """One pack to build: a framework and a period (what a pack task receives)."""

    framework: str
    period: Period
    dry_run: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "framework": self.framework,
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "dry_run": self.dry_run,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PackRequest:
        try:
            framework = data["framework"]
            start, end = data["period_start"], data["period_end"]
        except KeyError as exc:
            raise ValueError(f"pack request: missing {exc.args[0]!r} in {dict(data)!r}") from None
        return cls(str(framework), Period(start, end), bool(data.get("dry_run", False)))


SCHEDULED = "scheduled"
ALL = "all"


def plan_packs(
    cadences: Mapping[str, str],
    on: date,
    framework: str = SCHEDULED,
    period_start: date | str | None = None,
    period_end: date | str | None = None,
    dry_run: bool = False,
) -> list[PackRequest]:
    """Which packs to build on ``on``.

    ``cadences`` maps each framework id to its cadence. ``framework``:

    - ``scheduled``: the packs due on ``on``: on the first of a month, every monthly framework
      for the month before; on the first of a quarter, every quarterly one for the quarter
      before. Any other day: nothing. Dates may not be given.
    - ``all`` or one framework id: that pack (or every pack) for ``period_start`` to
      ``period_end`` when given, else for each framework's last complete period.

    A period may end today (a pack to date) but not later: a pack covers days that have passed.
    """
    if (period_start is None) != (period_end is None):
        missing = "period_end" if period_end is None else "period_start"
        raise ValueError(f"{missing} is missing: give both period_start and period_end, or neither")
    if framework == SCHEDULED:
        if period_start is not None:
            raise ValueError(
                "a scheduled run builds the packs due today for their last period: "
                "name a framework (or 'all') to build a pack for the dates given"
            )
        return [
            PackRequest(fid, previous_period(cadence, on), dry_run)
            for fid, cadence in sorted(cadences.items())
            if starts_period(cadence, on)
        ]
    if framework == ALL:
        chosen = sorted(cadences)
    elif framework in cadences:
        chosen = [framework]
    else:
        raise ValueError(
            f"framework {framework!r} is unknown: expected {SCHEDULED!r}, {ALL!r} or one of "
            f"{sorted(cadences)}"
        )
    if period_start is not None:
        period = Period(period_start, period_end)
        if period.end > on:
            raise ValueError(
                f"period_end {period.end.isoformat()} is after today ({on.isoformat()}): "
                "a pack covers days that have passed"
            )
        return [PackRequest(fid, period, dry_run) for fid in chosen]
    return [PackRequest(fid, previous_period(cadences[fid], on), dry_run) for fid in chosen]


__all__ = [
    "ALL",
    "CADENCES",
    "SCHEDULED",
    "Cadence",
    "PackRequest",
    "Period",
    "period_containing",
    "plan_packs",
    "previous_period",
    "starts_period",
]

"""What every inventory source says about its own sync: when it runs, who answers for its data,
and when its assets count as stale.

- ``schedule``: a five-field cron expression or one of :data:`PRESETS`, in UTC, checked when the
  estate file is loaded; ``null`` means the source syncs only when someone triggers it. Each
  source gets its own Airflow DAG on this schedule (``autosec.airflow.inventory_dags``).
- ``owner``: the team or person who fixes the source's data. Rows the quality suite quarantines
  are reported to them (the ``inventory.quarantined`` event carries the owner).
- ``stale_after_days``: a source that has not synced successfully for this long no longer
  confirms its assets, and the inventory quality figures count them as stale. Unset, it is
  twice the longest gap between two runs of the schedule, at least one day (seven days for a
  source without a schedule). A window shorter than the schedule's longest gap is refused: the
  source's assets would turn stale between two runs that both succeed.

Pure: croniter (which Airflow's own cron timetables use) checks and measures the expressions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The presets Airflow's cron timetables accept, spelled out as cron expressions.
PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
DEFAULT_SCHEDULE = "@hourly"
UNSCHEDULED_STALE_DAYS = 7
_GAPS_MEASURED = 60
# A fixed start for measuring gaps, so a schedule's default window never depends on today.
_REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)


def cron_expression(schedule: str) -> str:
    """The five-field cron expression ``schedule`` stands for; ValueError naming the problem."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ValueError("schedule must be a cron expression or a preset, got an empty value")
    text = " ".join(schedule.split())
    if text.startswith("@"):
        if text not in PRESETS:
            raise ValueError(f"schedule {schedule!r}: unknown preset (known: {', '.join(PRESETS)})")
        return PRESETS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"schedule {schedule!r}: a cron expression has five fields "
            f"(minute hour day-of-month month day-of-week), found {len(fields)}"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"schedule {schedule!r} is not a valid cron expression")
    return text


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two consecutive runs of ``schedule`` (over its next runs)."""
    runs = croniter(cron_expression(schedule), _REFERENCE)
    try:
        previous = runs.get_next(datetime)
        longest = timedelta(0)
        for _ in range(_GAPS_MEASURED):
            current = runs.get_next(datetime)
            longest = max(longest, current - previous)
            previous = current
    except CroniterBadDateError:
        raise ValueError(f"schedule {schedule!r} never runs (no such date)") from None
    return longest


def default_stale_days(schedule: str | None) -> int:
    """Twice the schedule's longest gap in whole days, at least one; 7 with no schedule."""
    if schedule is None:
        return UNSCHEDULED_STALE_DAYS
    return max(1, math.ceil(2 * longest_gap(schedule) / timedelta(days=1)))


class SourceSyncSettings(BaseModel):
    """The schedule, owner and staleness window every inventory source config carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str | None = Field(
        DEFAULT_SCHEDULE,
        description="cron expression or preset (UTC) of the source's own DAG; null: on demand",
    )
    owner: str | None = Field(
        None, description="team or person told about the source's quarantined rows"
    )
    stale_after_days: int | None = Field(
        None, ge=1, le=366, description="assets are stale after this long without a good sync"
    )

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        longest_gap(value)  # checks the expression and that it ever runs
        return " ".join(value.split())

    @field_validator("owner")
    @classmethod
    def _plain_owner(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text:
            raise ValueError("owner is empty: name a team or person, or leave it out")
        if len(text) > 200 or not text.isprintable():
            raise ValueError(f"owner {value[:40]!r}: at most 200 printable characters")
        return text

    @model_validator(mode="after")
    def _window_covers_the_schedule(self) -> SourceSyncSettings:
        if self.stale_after_days is not None and self.schedule is not None:
            gap = longest_gap(self.schedule)
            if timedelta(days=self.stale_after_days) < gap:
                raise ValueError(
                    f"stale_after_days {self.stale_after_days} is shorter than the longest gap "
                    f"between two runs of schedule {self.schedule!r} ({_days(gap)}): the "
                    "source's assets would be stale between two good syncs"
                )
        return self

    @property
    def stale_after(self) -> int:
        """The staleness window in days: the configured one, or the schedule's default."""
        if self.stale_after_days is not None:
            return self.stale_after_days
        return default_stale_days(self.schedule)


def _days(gap: timedelta) -> str:
    days = gap / timedelta(days=1)
    return f"{days:g} days" if days >= 1 else f"{gap.total_seconds() / 3600:g} hours"

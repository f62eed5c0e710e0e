"""Pack periods and which packs are due: months, quarters, the schedule and on-demand runs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from autosec.reporting.framework import cadences
from autosec.reporting.period import (
    PackRequest,
    Period,
    plan_packs,
    previous_period,
    starts_period,
)

CADENCES = {"fedramp": "monthly", "iso27001": "monthly", "pci_dss": "quarterly", "soc2": "monthly"}


def test_months_and_quarters_have_their_days_and_labels() -> None:
    february = Period.month(2028, 2)
    assert (february.start, february.end, february.days) == (
        date(2028, 2, 1),
        date(2028, 2, 29),
        29,
    )
    assert february.label == "2028-02"
    december = Period.month(2026, 12)
    assert december.end == date(2026, 12, 31) and december.label == "2026-12"
    q4 = Period.quarter(2026, 4)
    assert (q4.start, q4.end, q4.label) == (date(2026, 10, 1), date(2026, 12, 31), "2026-Q4")
    assert Period(date(2026, 3, 3), date(2026, 3, 9)).label == "2026-03-03_2026-03-09"
    assert Period("2026-03-01", "2026-03-01").days == 1


def test_a_period_is_half_open_in_utc() -> None:
    march = Period.month(2026, 3)
    assert march.start_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert march.end_before == datetime(2026, 4, 1, tzinfo=UTC)
    assert march.contains(datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    assert not march.contains(datetime(2026, 4, 1, tzinfo=UTC))
    assert not march.contains(datetime(2026, 2, 28, 23, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2026-03-31", "2026-03-01"), "start 2026-03-31 is after end 2026-03-01"),
        (("2026-02-30", "2026-03-01"), "period start: '2026-02-30' is not a date"),
        ((date(2026, 3, 1), "soon"), "period end: 'soon' is not a date"),
    ],
)
def test_bad_periods_are_refused_with_the_reason(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        Period(*args)
    with pytest.raises(ValueError, match="quarter 5"):
        Period.quarter(2026, 5)


def test_the_previous_period_is_the_last_complete_one() -> None:
    assert previous_period("monthly", date(2026, 1, 1)) == Period.month(2025, 12)
    assert previous_period("monthly", date(2026, 3, 15)) == Period.month(2026, 2)
    assert previous_period("quarterly", date(2026, 4, 1)) == Period.quarter(2026, 1)
    assert previous_period("quarterly", date(2026, 2, 20)) == Period.quarter(2025, 4)
    assert starts_period("quarterly", date(2026, 7, 1))
    assert not starts_period("quarterly", date(2026, 8, 1))
    with pytest.raises(ValueError, match="cadence 'weekly'"):
        previous_period("weekly", date(2026, 1, 1))


def test_the_schedule_builds_monthly_packs_on_the_first_and_quarterly_ones_each_quarter():
    april = plan_packs(CADENCES, date(2026, 4, 1))
    assert [(r.framework, r.period.label) for r in april] == [
        ("fedramp", "2026-03"),
        ("iso27001", "2026-03"),
        ("pci_dss", "2026-Q1"),
        ("soc2", "2026-03"),
    ]
    may = plan_packs(CADENCES, date(2026, 5, 1))
    assert [r.framework for r in may] == ["fedramp", "iso27001", "soc2"]
    assert plan_packs(CADENCES, date(2026, 5, 2)) == []


def test_on_demand_any_framework_for_any_past_period() -> None:
    [request] = plan_packs(
        CADENCES, date(2026, 5, 20), "pci_dss", "2026-01-15", "2026-02-14", dry_run=True
    )
    assert request == PackRequest("pci_dss", Period(date(2026, 1, 15), date(2026, 2, 14)), True)
    assert PackRequest.from_dict(request.as_dict()) == request
    to_date = plan_packs(CADENCES, date(2026, 5, 20), "all", "2026-05-01", "2026-05-20")
    assert {r.framework for r in to_date} == set(CADENCES)
    [last] = plan_packs(CADENCES, date(2026, 5, 20), "pci_dss")
    assert last.period == Period.quarter(2026, 1)


@pytest.mark.parametrize(
    ("framework", "start", "end", "message"),
    [
        ("fedramp", "2026-03-01", None, "period_end is missing"),
        ("fedramp", None, "2026-03-31", "period_start is missing"),
        ("fedramp", "2026-05-01", "2026-05-31", "period_end 2026-05-31 is after today"),
        ("hipaa", None, None, "framework 'hipaa' is unknown"),
        ("scheduled", "2026-03-01", "2026-03-31", "name a framework"),
        ("fedramp", "2026-04-01", "2026-03-01", "is after end"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(framework, start, end, message) -> None:
    with pytest.raises(ValueError, match=message):
        plan_packs(CADENCES, date(2026, 5, 20), framework, start, end)
    with pytest.raises(ValueError, match="missing 'framework'"):
        PackRequest.from_dict({"period_start": "2026-03-01", "period_end": "2026-03-31"})


def test_the_registered_frameworks_have_cadences() -> None:
    assert cadences() == CADENCES

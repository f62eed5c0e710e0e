"""The pure pieces behind the pages: chart geometry, form tokens, page keys, the wording of
why a finding is due when it is, and the Prometheus exposition. No database, no server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import HTTPException

from autosec.airflow import charts
from autosec.airflow.pages_app import CsrfTokens, build_request, previous_month
from autosec.airflow.pages_data import (
    BadPageKey,
    format_after,
    parse_after,
    why_due,
    why_priority,
)
from autosec.airflow.prometheus import Exposition, escape_label
from autosec.store.rollups import PageKey

DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(10)]


def _points(shape: charts.Shape) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in shape.points.split()]


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.4, 1), (3, 5), (7, 10), (11, 20), (21, 25), (26, 50), (501, 1000)]
)
def test_axes_end_on_a_round_number_at_or_above_the_data(value, top) -> None:
    assert charts.nice_ceiling(value) == top
    assert charts.count_axis_top(value) == max(top, 4)


def test_a_stacked_area_puts_each_band_on_the_one_below() -> None:
    series = {
        "critical": [1] * 10,
        "high": [2] * 10,
        "medium": [0] * 10,
        "low": list(range(10)),
        "info": [0] * 10,
    }
    order = ("info", "low", "medium", "high", "critical")
    chart = charts.stacked_area(DAYS, series, order)
    frame = chart.frame
    assert [s.name for s in chart.shapes] == list(order)
    top = charts.count_axis_top(12)  # the largest total: 9 + 2 + 1
    # The last band's upper edge is the total, its lower edge the total without it.
    upper = _points(chart.shapes[-1])[:10]
    for i, (_, y) in enumerate(upper):
        total = 3 + i
        assert y == pytest.approx(frame.baseline - frame.plot_height * total / top, abs=0.06)
    assert upper[0][0] == frame.left and upper[-1][0] == frame.left + frame.plot_width
    assert chart.y_ticks[-1].label == "20" and chart.y_ticks[0].label == "0"
    assert [t.anchor for t in (chart.x_ticks[0], chart.x_ticks[-1])] == ["start", "end"]
    assert chart.shapes[-1].last_value == 1 and not chart.empty
    with pytest.raises(ValueError, match="series 'low' has 3 values, not 10"):
        charts.stacked_area(DAYS, {**series, "low": [1, 2, 3]}, order)


def test_lines_break_where_a_day_has_no_figure_and_percentages_read_to_100() -> None:
    values = [0.5, 0.6, None, None, 0.7, 0.8, 0.9, None, 1.0, 1.0]
    chart = charts.lines(DAYS, {"completeness": values}, {"completeness": "#000"}, percent=True)
    assert [len(_points(s)) for s in chart.shapes] == [2, 3, 2]
    assert chart.y_ticks[-1].label == "100%"
    assert chart.shapes[-1].last_value == 1.0
    empty = charts.lines([], {"x": []}, {})
    assert empty.empty and empty.shapes == ()


def test_one_day_still_draws_something() -> None:
    chart = charts.stacked_area(DAYS[:1], {"low": [3]}, ("low",))
    xs = {x for x, _ in _points(chart.shapes[0])}
    assert len(xs) == 2  # a thin bar, not a zero-width band


def test_bars_scale_to_the_largest() -> None:
    bars = charts.horizontal_bars([("a", 2.0, "2 d"), ("b", 8.0, "8 d")], width=400)
    assert [(b.label, b.width, b.y) for b in bars] == [("a", 100.0, 0), ("b", 400.0, 22)]


def test_form_tokens_are_bound_to_the_user_and_expire() -> None:
    now = [datetime(2026, 11, 20, 12, tzinfo=UTC)]
    tokens = CsrfTokens(b"k" * 32, lambda: now[0], ttl=timedelta(hours=1))
    token = tokens.issue("secops")
    tokens.check("secops", token)
    with pytest.raises(HTTPException, match="not valid for this user"):
        tokens.check("ciso", token)
    with pytest.raises(HTTPException, match="missing or malformed"):
        tokens.check("secops", "abc")
    now[0] += timedelta(hours=2)
    with pytest.raises(HTTPException, match="has expired"):
        tokens.check("secops", token)
    other = CsrfTokens(b"j" * 32, lambda: now[0])
    with pytest.raises(HTTPException, match="not valid for this user"):
        other.check("secops", tokens.issue("secops"))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CsrfTokens(b"short", lambda: now[0])


def test_page_keys_round_trip_and_refuse_garbage() -> None:
    for key in (PageKey(date(2026, 12, 1), 42), PageKey(None, 7)):
        assert parse_after(format_after(key)) == key
    assert parse_after(None) is None and format_after(None) is None
    for bad in ("2026-12-01", "2026-13-01~4", "none~-1", "none~", f"none~{2**63}"):
        with pytest.raises(BadPageKey, match="is not a page key"):
            parse_after(bad)


def _row(**values):
    row = {
        "due_date": date(2026, 11, 27),
        "kev_due_date": None,
        "kev_catalog_due_date": None,
        "first_seen": datetime(2026, 11, 20, 9, tzinfo=UTC),
        "severity": "critical",
        "status": "open",
    }
    return {**row, **values}


def test_why_a_finding_is_due_when_it_is() -> None:
    today = date(2026, 11, 25)
    assert why_due(_row(), today) == (
        "critical severity deadline of the patching policy (7 days after first seen); 2 days left"
    )
    assert why_due(_row(), date(2026, 11, 28)).endswith("; overdue by 1 day")
    kev = _row(due_date=date(2026, 11, 22), kev_due_date=date(2026, 11, 22))
    assert why_due(kev, today) == (
        "the CISA KEV due date, earlier than the severity deadline; overdue by 3 days"
    )
    assert "set again when it reopened" in why_due(_row(status="reopened"), today)
    assert why_due(_row(status="fixed"), today).endswith("(7 days after first seen)")
    assert why_due(_row(due_date=None, severity="info"), today).startswith("no due date")
    assert why_priority({}) == []
    assert why_priority({"exploitation": "none", "inferred": {"exploitation": "from EPSS"}}) == [
        "exploitation: none (inferred from EPSS)"
    ]


def test_what_build_now_runs() -> None:
    today = date(2026, 11, 20)
    assert previous_month(today) == (date(2026, 10, 1), date(2026, 10, 31))
    assert previous_month(date(2026, 1, 5)) == (date(2025, 12, 1), date(2025, 12, 31))
    posture = build_request("posture", date(2026, 10, 1), date(2026, 10, 31), today)
    assert (posture.dag_id, posture.conf) == ("report", {})
    pack = build_request("iso27001", None, None, today)
    assert pack.dag_id == "compliance_packs"
    assert pack.conf == {
        "framework": "iso27001",
        "period_start": None,
        "period_end": None,
        "dry_run": False,
    }
    with pytest.raises(HTTPException, match="cannot build 'scheduled'"):
        build_request("scheduled", None, None, today)


def test_the_exposition_escapes_and_keeps_families_whole() -> None:
    assert escape_label('a\\b\n"c"') == 'a\\\\b\\n\\"c\\"'
    out = Exposition()
    out.family("x_total", "Things.\nMore")
    out.sample("x_total", 3, {"team": 'q"'})
    out.sample("x_total", None, {"team": "skipped"})
    out.sample("x_total", 0.25)
    assert out.text() == (
        '# HELP x_total Things.\\nMore\n# TYPE x_total gauge\nx_total{team="q\\""} 3\n'
        "x_total 0.25\n"
    )
    with pytest.raises(ValueError, match="added twice"):
        out.family("x_total", "again")

"""The posture report's inventory quality section: shares per source, the whole inventory, and
the completeness trend as a table and an inline sparkline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

from autosec.reporting.posture import (
    ReportData,
    inventory_quality_rows,
    inventory_trend,
    posture_context,
    render_posture_html,
)

SYNCED = datetime(2026, 3, 31, 5, 0, tzinfo=UTC)
HOSTILE_SOURCE = "<b>cmdb</b>"
QUALITY = [
    {
        "day": date(2026, 3, 31),
        "source": "cmdb",
        "active": 200,
        "with_owner": 150,
        "with_environment": 200,
        "stale": 0,
        "quarantined": 4,
        "last_success_at": SYNCED,
        "stale_after_days": 1,
    },
    {
        "day": date(2026, 3, 31),
        "source": "backstage",
        "active": 50,
        "with_owner": 50,
        "with_environment": 25,
        "stale": 50,
        "quarantined": 0,
        "last_success_at": None,
        "stale_after_days": 2,
    },
]
TREND = [
    {"day": date(2026, 3, 31), "completeness": Decimal("0.9500"), "inventoried": 250,
     "open_blind_spots": 13, "active": 250, "with_owner": 200, "with_environment": 225,
     "stale": 50, "quarantined": 4},
    {"day": date(2026, 3, 1), "completeness": Decimal("0.5"), "inventoried": 10,
     "open_blind_spots": 10, "active": None, "with_owner": None, "with_environment": None,
     "stale": None, "quarantined": None},
    {"day": date(2026, 3, 16), "completeness": None, "inventoried": None,
     "open_blind_spots": None, "active": 240, "with_owner": 120, "with_environment": 240,
     "stale": 0, "quarantined": 0},
]  # fmt: skip


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[str]] = {}
        self.circles: list[dict[str, str]] = []
        self.polylines: list[str] = []
        self.text: list[str] = []
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and ("data-source" in a or "data-day" in a):
            self._row = a.get("data-source") or a["data-day"]
            self.rows[self._row] = []
        elif tag == "circle":
            self.circles.append(a)
        elif tag == "polyline":
            self.polylines.append(a["points"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None and data.strip():
            self.rows[self._row].append(data.strip())


def _page(data: ReportData) -> _Page:
    page = _Page()
    page.feed(render_posture_html(data).decode("utf-8"))
    return page


def test_shares_per_source_and_for_the_whole_inventory() -> None:
    table = inventory_quality_rows(QUALITY)
    assert table["day"] == "2026-03-31"
    assert [s["source"] for s in table["sources"]] == ["backstage", "cmdb"]
    cmdb = table["sources"][1]
    assert (cmdb["with_owner"], cmdb["with_environment"], cmdb["stale"]) == ("75.0%", "100.0%", 0)
    assert cmdb["last_success_at"] == "2026-03-31 05:00 UTC"
    backstage = table["sources"][0]
    assert (backstage["stale_share"], backstage["last_success_at"]) == ("100.0%", "never")
    assert table["overall"] == {
        "active": 250,
        "with_owner": "80.0%",
        "with_environment": "90.0%",
        "stale": 50,
        "stale_share": "20.0%",
        "quarantined": 4,
    }


def test_a_source_without_assets_has_no_share() -> None:
    table = inventory_quality_rows([{**QUALITY[0], "active": 0, "with_owner": 0}])
    assert table["sources"][0]["with_owner"] == "n/a" and table["overall"]["with_owner"] == "n/a"
    assert inventory_quality_rows([]) == {
        "day": "",
        "sources": [],
        "overall": {
            "active": 0,
            "with_owner": "n/a",
            "with_environment": "n/a",
            "stale": 0,
            "stale_share": "n/a",
            "quarantined": 0,
        },
    }


def test_the_sparkline_places_each_day_by_its_date_and_skips_days_without_a_ratio() -> None:
    trend = inventory_trend(TREND, date(2026, 3, 1), date(2026, 3, 31), width=300, height=40)
    assert [r["day"] for r in trend["rows"]] == ["2026-03-01", "2026-03-16", "2026-03-31"]
    assert [r["completeness"] for r in trend["rows"]] == ["50.0%", "n/a", "95.0%"]
    assert trend["rows"][1]["with_owner"] == "50.0%" and trend["rows"][0]["with_owner"] == "n/a"
    spark = trend["sparkline"]
    assert [(p["day"], p["x"], p["y"]) for p in spark["dots"]] == [
        ("2026-03-01", 0.0, 20.0),  # half complete: the middle of the 36-pixel band
        ("2026-03-31", 300.0, 3.8),
    ]
    assert spark["points"] == "0.0,20.0 300.0,3.8" and spark["latest"] == "95.0%"


def test_the_section_renders_escaped_and_in_order(make_report: Callable[..., ReportData]) -> None:
    quality = [*QUALITY, {**QUALITY[0], "source": HOSTILE_SOURCE}]
    data = make_report(inventory_quality=quality, inventory_trend=TREND)
    html = render_posture_html(data)
    assert b"<b>cmdb</b>" not in html and b"&lt;b&gt;cmdb&lt;/b&gt;" in html
    page = _page(data)
    assert page.rows["cmdb"] == ["cmdb", "200", "75.0%", "100.0%", "0 (0.0%)", "4",
                                 "2026-03-31 05:00 UTC", "1"]  # fmt: skip
    assert page.rows["(all)"][:6] == ["All sources", "450", "77.8%", "94.4%", "50 (11.1%)", "8"]
    assert page.rows["2026-03-16"][:2] == ["2026-03-16", "n/a"]
    assert [c["data-day"] for c in page.circles] == ["2026-03-01", "2026-03-31"]
    assert page.polylines == ["0.0,20.0 300.0,3.8"]
    assert posture_context(data)["inventory_quality"]["day"] == "2026-03-31"


def test_an_estate_without_figures_says_so(make_report: Callable[..., ReportData]) -> None:
    page = _page(make_report())
    text = " ".join(" ".join(page.text).split())
    assert "No inventory quality figures recorded yet." in text
    assert "No completeness recorded in this period." in text
    assert page.circles == [] and page.polylines == []

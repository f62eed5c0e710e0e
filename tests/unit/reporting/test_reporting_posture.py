"""The posture HTML: figures, order, escaping, self-containment and determinism."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from typing import Any

import pytest

from autosec.reporting.posture import (
    ReportData,
    posture_summary,
    render_posture_html,
)

HOSTILE_NAME = "<script>alert('x')</script>"
HOSTILE_ASSET_ID = 'x" onmouseover="alert(1)'


class ReportParser(HTMLParser):
    """Collects what the tests look at: figures, rows, chart bars, tags, attributes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self.rows: list[dict[str, str]] = []
        self.bars: list[dict[str, str]] = []
        self.rects: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.cell_titles: list[str] = []
        self.text: list[str] = []
        self._capture: tuple[dict[str, str], str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        a = {k: v or "" for k, v in attrs}
        if "data-figure" in a:
            self._capture = (self.figures, a["data-figure"])
        elif "data-field" in a:
            self._capture = (self.fields, a["data-field"])
        if tag == "tr" and "data-fingerprint" in a:
            self.rows.append(a)
        if tag == "g" and "data-severity" in a:
            self.bars.append(a)
        if tag == "rect":
            self.rects.append(a)
        if tag == "td" and "title" in a:
            self.cell_titles.append(a["title"])

    def handle_endtag(self, tag: str) -> None:
        self._capture = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._capture is not None:
            target, key = self._capture
            target[key] = target.get(key, "") + data


def parse(html: bytes) -> ReportParser:
    parser = ReportParser()
    parser.feed(html.decode("utf-8"))
    parser.close()
    return parser


def test_headline_figures(data: ReportData) -> None:
    page = parse(render_posture_html(data))
    assert page.figures == {
        "assets_total": "3",
        "assets_scanned": "2",
        "coverage": "66.7%",
        "open_total": "5",
        "open_critical": "2",
        "open_high": "1",
        "open_medium": "0",
        "open_low": "1",
        "open_info": "1",
        "overdue": "2",  # the critical due 2026-03-20 and the reopened low due 2026-01-10
        "blind_spots": "2",
        "unowned_open": "0",
    }
    summary = posture_summary(data)
    assert summary.overdue == 2 and summary.coverage_percent == 66.7


def test_open_findings_nobody_owns_are_counted_not_hidden(data: ReportData) -> None:
    findings = list(data.findings)
    open_ones = [i for i, f in enumerate(findings) if f.is_open]
    closed = [i for i, f in enumerate(findings) if not f.is_open]
    findings[open_ones[0]] = replace(findings[open_ones[0]], owner=None)
    findings[open_ones[1]] = replace(findings[open_ones[1]], owner="  ")
    if closed:
        findings[closed[0]] = replace(findings[closed[0]], owner=None)  # fixed: not a gap
    unowned = replace(data, findings=findings)
    assert posture_summary(unowned).unowned_open == 2
    assert parse(render_posture_html(unowned)).figures["unowned_open"] == "2"


def test_overdue_is_measured_against_the_report_date_not_today(
    data: ReportData, make_report: Callable[..., ReportData]
) -> None:
    earlier = make_report(generated_at=data.generated_at.replace(year=2025))
    assert posture_summary(earlier).overdue == 0


def test_policy_period_and_generation_date(data: ReportData) -> None:
    page = parse(render_posture_html(data))
    assert page.fields["policy_version"] == "2026.03"
    assert page.fields["policy_hash"] == data.policy_hash
    assert page.fields["period_start"] == "2026-03-01"
    assert page.fields["period_end"] == "2026-03-31"
    assert page.fields["generated_at"] == "2026-03-31 06:00 UTC"


def test_chart_bars_are_proportional_to_open_counts(data: ReportData) -> None:
    page = parse(render_posture_html(data))
    assert [(b["data-severity"], b["data-count"]) for b in page.bars] == [
        ("critical", "2"),
        ("high", "1"),
        ("medium", "0"),
        ("low", "1"),
        ("info", "1"),
    ]
    widths = [int(r["width"]) for r in page.rects]
    assert widths == [300, 150, 0, 150, 150]
    assert "svg" in page.tags


def test_findings_sorted_by_severity_then_due_date(data: ReportData) -> None:
    page = parse(render_posture_html(data))
    order = [(r["data-severity"], r["data-due"], r["data-fingerprint"]) for r in page.rows]
    assert order == [
        ("critical", "2026-03-20", "fp-web-apache"),
        ("critical", "2026-04-05", "fp-web2-apache"),
        ("high", "2026-01-01", "fp-accepted"),
        ("high", "2026-04-15", "fp-db-eol"),
        ("medium", "2026-03-20", "fp-fixed"),
        ("low", "2026-01-10", "fp-hostile"),
        ("info", "", "fp-info"),
    ]


def test_hostile_values_are_escaped(data: ReportData) -> None:
    html = render_posture_html(data)
    assert b"<script" not in html
    assert b"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    page = parse(html)
    assert "script" not in page.tags
    assert HOSTILE_NAME in "".join(page.text)  # shown as text, intact
    assert HOSTILE_ASSET_ID in page.cell_titles  # stays inside its attribute
    assert not any(name.startswith("on") for name, _ in page.attrs)


def test_page_is_self_contained(data: ReportData) -> None:
    html = render_posture_html(data)
    page = parse(html)
    assert not {"script", "link", "img", "iframe", "object"} & set(page.tags)
    assert not any(name in ("src", "href") for name, _ in page.attrs)
    assert b"default-src 'none'" in html


def test_actions_approvals_and_blind_spots_are_listed(data: ReportData) -> None:
    text = " ".join(" ".join(parse(render_posture_html(data)).text).split())
    assert "SEC-1" in text and "prod-needs-approval" in text
    # Decisions in time order, with who decided and why.
    assert text.index("alice approve") < text.index("bob reject: maintenance window on Friday")
    assert "no decision yet" in text
    assert text.index("127.0.0.9") < text.index("127.0.0.13")  # numeric, not string, order
    assert "server=nginx/1.18.0; status=200" in text


def test_same_data_same_bytes_whatever_the_input_order(
    data: ReportData, make_report: Callable[..., ReportData]
) -> None:
    first = render_posture_html(data)
    assert render_posture_html(data) == first
    for rotate in (1, 2):
        reordered: dict[str, Any] = {}
        for name in ("findings", "actions", "approvals", "blind_spots"):
            items = list(getattr(data, name))[::-1]
            reordered[name] = items[rotate:] + items[:rotate]
        assert render_posture_html(make_report(**reordered)) == first


def test_the_report_changes_when_the_data_does(data: ReportData) -> None:
    changed = replace(data, policy_hash="f" * 64)
    assert render_posture_html(changed) != render_posture_html(data)


def test_empty_estate(make_report: Callable[..., ReportData]) -> None:
    empty = make_report(
        assets_total=0, assets_scanned=0, findings=[], blind_spots=[], actions=[], approvals=[]
    )
    page = parse(render_posture_html(empty))
    assert page.figures["coverage"] == "n/a"
    assert page.figures["open_total"] == "0"
    assert [int(r["width"]) for r in page.rects] == [0, 0, 0, 0, 0]
    assert "No findings in this period." in page.text


def test_invalid_input_is_named(
    make_report: Callable[..., ReportData], make_finding: Callable[..., Any]
) -> None:
    with pytest.raises(ValueError, match=r"finding 'fp-x'.*unknown severity 'severe'"):
        make_finding(fingerprint="fp-x", severity="severe")
    with pytest.raises(ValueError, match=r"finding 'fp-y'.*unknown status 'closed'"):
        make_finding(fingerprint="fp-y", status="closed")
    with pytest.raises(ValueError, match=r"assets_scanned \(4\) is more than assets_total \(3\)"):
        make_report(assets_scanned=4)
    with pytest.raises(ValueError, match="due_date: not an ISO date"):
        make_finding(due_date="soon")


def test_findings_accept_plain_strings_and_iso_dates(make_finding: Callable[..., Any]) -> None:
    f = make_finding(severity=" HIGH ", status="Reopened", due_date="2026-05-01", cve_ids=["CVE-1"])
    assert (f.severity.value, f.status.value, f.due_date, f.cve_ids) == (
        "high",
        "reopened",
        date(2026, 5, 1),
        ("CVE-1",),
    )

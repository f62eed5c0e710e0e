"""A compliance pack as a PDF, with charts, written with ReportLab (platypus and graphics).

No browser and no HTML conversion: the document is laid out from the same view as the HTML
(:func:`autosec.reporting.packs.pack_view`), so both show the same figures. Tables are bounded
(the top items by priority, with a count of the rest) so a pack over a hundred thousand findings
stays a document someone reads; the complete lists are in the files beside it, whose sha256
this document lists.

Reproducible: ReportLab's invariant mode fixes the creation date and document id, and nothing
else in the file depends on the time of writing, so the same pack gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from autosec.domain.models import Severity
from autosec.reporting.packs import Pack, PieceRef, pack_view
from autosec.reporting.posture import SEVERITY_COLOURS, SEVERITY_ORDER

PAGE = landscape(A4)
MARGIN = 14 * mm
WIDTH = PAGE[0] - 2 * MARGIN
SECTION_ROOM = 70 * mm  # a section starts on a new page when less room than this is left
CELL_CHARACTERS = 300  # a longer cell is cut: one hostile title must not outgrow a page
SLA_COLOURS = {
    "fixed on time": colors.HexColor("#2e7d32"),
    "fixed late": colors.HexColor("#ef6c00"),
    "open past due": colors.HexColor("#c62828"),
    "open, not yet due": colors.HexColor("#90a4ae"),
}

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle("PackTitle", parent=_styles["Title"], fontSize=18, leading=22)
H2 = ParagraphStyle("PackH2", parent=_styles["Heading2"], fontSize=13, spaceBefore=8)
H3 = ParagraphStyle("PackH3", parent=_styles["Heading3"], fontSize=10.5, spaceBefore=6)
BODY = ParagraphStyle("PackBody", parent=_styles["BodyText"], fontSize=8.5, leading=10.5)
META = ParagraphStyle("PackMeta", parent=BODY, textColor=colors.HexColor("#555555"))
CELL = ParagraphStyle("PackCell", parent=BODY, fontSize=7, leading=8.4)
HEAD = ParagraphStyle("PackHead", parent=CELL, fontName="Helvetica-Bold")
CODE = ParagraphStyle("PackCode", parent=CELL, fontName="Courier", fontSize=6.2, leading=7.4)
NO_EXCEPTIONS_TABLE = (
    "This store has no exceptions table yet: no risk acceptance or false positive can be shown."
)
NOTE = ParagraphStyle("PackNote", parent=BODY, textColor=colors.HexColor("#777777"))


def _p(text: Any, style: ParagraphStyle = CELL) -> Paragraph:
    value = "" if text is None else str(text)
    if len(value) > CELL_CHARACTERS:
        value = value[: CELL_CHARACTERS - 1] + "…"
    return Paragraph(escape(value).replace("\n", "<br/>"), style)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    code_columns: Sequence[int] = (),
    numeric_columns: Sequence[int] = (),
) -> Table:
    scale = WIDTH / sum(widths)
    data = [[_p(h, HEAD) for h in header]]
    for row in rows:
        data.append(
            [_p(value, CODE if index in code_columns else CELL) for index, value in enumerate(row)]
        )
    table = Table(data, colWidths=[w * scale for w in widths], repeatRows=1)
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    style += [("ALIGN", (c, 0), (c, -1), "RIGHT") for c in numeric_columns]
    table.setStyle(TableStyle(style))
    return table


def _note(text: str) -> Paragraph:
    return Paragraph(f"<i>{escape(text)}</i>", NOTE)


def nice_step(top: float, ticks: int = 5) -> int:
    """A step of 1, 2 or 5 times a power of ten giving about ``ticks`` ticks up to ``top``."""
    rough = max(1.0, top / ticks)
    power = 10 ** (len(str(int(rough))) - 1)
    for factor in (1, 2, 5, 10):
        if factor * power >= rough:
            return factor * power
    return 10 * power


def _value_axis(chart: Any, top: float) -> None:
    step = nice_step(top)
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueStep = step
    chart.valueAxis.valueMax = max(step, -(-int(top) // step) * step)
    chart.valueAxis.labels.fontSize = 7


def age_chart(view: dict[str, Any]) -> Drawing:
    """Open findings per age bucket, stacked by severity."""
    drawing = Drawing(WIDTH, 150)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 25, WIDTH * 0.6, 110
    rows = view["age"]["rows"]
    chart.data = [tuple(r["counts"]) for r in rows]
    chart.categoryAxis.categoryNames = list(view["age"]["buckets"])
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontSize = 7
    _value_axis(chart, max(view["age"]["totals"], default=0))
    for index, row in enumerate(rows):
        chart.bars[index].fillColor = colors.HexColor(SEVERITY_COLOURS[Severity(row["severity"])])
        chart.bars[index].strokeWidth = 0
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = WIDTH * 0.6 + 70, 120
    legend.fontSize = 7
    legend.colorNamePairs = [
        (colors.HexColor(SEVERITY_COLOURS[s]), s.value) for s in SEVERITY_ORDER
    ]
    drawing.add(legend)
    return drawing


def coverage_chart(view: dict[str, Any]) -> Drawing:
    """Share of each asset kind scanned in the period, in percent."""
    # A horizontal chart draws its first category at the bottom: reversed, the table's order.
    kinds = list(reversed(view["coverage"]["by_kind"])) or [
        {"kind": "no assets", "share_value": 0.0}
    ]
    height = 36 + 16 * len(kinds)
    drawing = Drawing(WIDTH, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 90, 15, WIDTH * 0.45, height - 32
    chart.data = [tuple(round(100 * k["share_value"], 1) for k in kinds)]
    chart.categoryAxis.categoryNames = [k["kind"] for k in kinds]
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontSize = 7
    chart.bars[0].fillColor = colors.HexColor("#1565c0")
    chart.bars[0].strokeWidth = 0
    chart.barLabelFormat = "%.1f%%"
    chart.barLabels.fontSize = 6.5
    chart.barLabels.boxAnchor = "w"
    chart.barLabels.dx = 3
    drawing.add(chart)
    drawing.add(String(90, height - 8, "Scanned in the period (% of assets)", fontSize=7.5))
    return drawing


def sla_chart(view: dict[str, Any]) -> Drawing:
    """Per due-date tier: fixed on time, fixed late, open past due, open not yet due."""
    tiers = list(reversed(view["sla"])) or [
        {"tier": "none", "fixed_on_time": 0, "fixed_late": 0, "open_overdue": 0, "open_within": 0}
    ]
    height = 40 + 18 * len(tiers)
    drawing = Drawing(WIDTH, height)
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 150, 15, WIDTH * 0.45, height - 25
    keys = ("fixed_on_time", "fixed_late", "open_overdue", "open_within")
    chart.data = [tuple(t[k] for t in tiers) for k in keys]
    chart.categoryAxis.categoryNames = [t["tier"] for t in tiers]
    chart.categoryAxis.style = "stacked"
    chart.categoryAxis.labels.fontSize = 7
    _value_axis(chart, max(sum(t[k] for k in keys) for t in tiers))
    for index, colour in enumerate(SLA_COLOURS.values()):
        chart.bars[index].fillColor = colour
        chart.bars[index].strokeWidth = 0
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 150 + WIDTH * 0.45 + 20, height - 10
    legend.fontSize = 7
    legend.colorNamePairs = [(c, n) for n, c in SLA_COLOURS.items()]
    drawing.add(legend)
    return drawing


def _more(count: int, where: str) -> list[Any]:
    return [_note(f"and {count} more {where}.")] if count else []


def _story(view: dict[str, Any]) -> list[Any]:
    story: list[Any] = []
    add = story.append
    framework, period, policy = view["framework"], view["period"], view["policy"]
    add(Paragraph(escape(f"{framework['name']} compliance pack: {period['label']}"), TITLE))
    add(
        _p(
            f"Period {period['start']} to {period['end']}, as of {view['as_of']}. Framework "
            f"{framework['name']} {framework['version']} ({framework['cadence']}); definition "
            f"{framework['file']} sha256 {framework['sha256']}.",
            META,
        )
    )
    add(_p(f"Policy version {policy['version']}, policy sha256 {policy['hash']}.", META))
    add(Spacer(1, 4 * mm))
    headline = view["headline"]
    half = (len(headline) + 1) // 2
    pairs = [
        [
            headline[i]["label"],
            headline[i]["value"],
            headline[i + half]["label"] if i + half < len(headline) else "",
            headline[i + half]["value"] if i + half < len(headline) else "",
        ]
        for i in range(half)
    ]
    add(_table(("Figure", "Value", "Figure", "Value"), pairs, (3, 2, 3, 2), numeric_columns=(1, 3)))

    add(Paragraph("Controls and their evidence", H2))
    add(
        _table(
            ("Control", "Requirement", "Evidence (rows in this period)"),
            [
                (
                    f"{c['id']}\n{c['title']}",
                    c["requirement"],
                    "\n".join(f"{e['id']}: {e['rows']}" for e in c["evidence"]),
                )
                for c in view["controls"]
            ],
            (2.2, 6, 2.6),
        )
    )

    coverage = view["coverage"]
    add(CondPageBreak(SECTION_ROOM))
    add(Paragraph("Scan coverage", H2))
    target = (
        ""
        if coverage["target"] is None
        else f" (target {coverage['target']}: {'met' if coverage['target_met'] else 'NOT met'})"
    )
    add(
        _p(
            f"{coverage['scanned']} of {coverage['assets']} assets scanned successfully in the "
            f"period: {coverage['share']}{target}.",
            BODY,
        )
    )
    add(coverage_chart(view))
    add(
        _table(
            ("Asset kind", "Assets", "Scanned", "Share"),
            [(r["kind"], r["assets"], r["scanned"], r["share"]) for r in coverage["by_kind"]],
            (4, 2, 2, 2),
            numeric_columns=(1, 2, 3),
        )
    )
    add(Paragraph("By engine (assets scanned per asset kind)", H3))
    if coverage["by_engine"]:
        add(
            _table(
                ("Engine", "Assets", "Share", "Runs ok", "Runs failed", *coverage["kinds"]),
                [
                    (
                        e["engine"],
                        e["assets"],
                        e["share"],
                        e["runs_ok"],
                        e["runs_failed"],
                        *e["per_kind"],
                    )
                    for e in coverage["by_engine"]
                ],
                (3, 1.5, 1.5, 1.5, 1.5, *[1.6] * len(coverage["kinds"])),
                numeric_columns=tuple(range(1, 5 + len(coverage["kinds"]))),
            )
        )
    else:
        add(_note("No scan finished in this period."))
    unscanned = coverage["unscanned"]
    add(Paragraph(f"Assets not scanned ({len(unscanned) + coverage['more_unscanned']})", H3))
    if unscanned:
        add(
            _table(
                ("Asset", "Name", "Kind", "Owner", "Environment"),
                [
                    (a["asset_id"], a["name"], a["kind"], a["owner"], a["environment"])
                    for a in unscanned
                ],
                (3, 3, 1.5, 2, 1.5),
            )
        )
        story += _more(coverage["more_unscanned"], "(every asset is in the inventory evidence)")
    else:
        add(_note("Every asset in the inventory was scanned in the period."))
    cmap = view["coverage_map"]
    add(Paragraph("Coverage map: detections per asset kind", H3))
    if cmap["rows"]:
        kinds = [r["kind"] for r in cmap["rows"]]
        rows = [
            (d, *[r["cells"][i]["coverage"] for r in cmap["rows"]])
            for i, d in enumerate(cmap["detections"])
        ]
        table = _table(("Detection", *kinds), rows, (5, *[1.4] * len(kinds)))
        styles = []
        shades = {"CHECK": "#e8f5e9", "LIMITED": "#fff8e1", "MISSING": "#ffebee"}
        for y, row in enumerate(rows, start=1):
            for x, value in enumerate(row[1:], start=1):
                styles.append(
                    ("BACKGROUND", (x, y), (x, y), colors.HexColor(shades.get(value, "#ffffff")))
                )
        table.setStyle(TableStyle(styles))
        add(table)
    else:
        add(_note("No engine capabilities were available for the map."))

    age = view["age"]
    add(CondPageBreak(SECTION_ROOM))
    add(Paragraph(f"Open findings by age and severity ({age['total']})", H2))
    add(age_chart(view))
    add(
        _table(
            ("Severity", *age["buckets"], "Total"),
            [
                *[(r["severity"], *r["counts"], r["total"]) for r in age["rows"]],
                ("total", *age["totals"], age["total"]),
            ],
            (2, *[1.5] * len(age["buckets"]), 1.5),
            numeric_columns=tuple(range(1, len(age["buckets"]) + 2)),
        )
    )

    add(CondPageBreak(SECTION_ROOM))
    add(Paragraph("Remediation deadlines", H2))
    add(sla_chart(view))
    add(
        _table(
            (
                "Due-date tier",
                "Fixed on time",
                "Fixed late",
                "Open past due",
                "Open, not yet due",
                "Adherence",
            ),
            [
                (
                    r["tier"],
                    r["fixed_on_time"],
                    r["fixed_late"],
                    r["open_overdue"],
                    r["open_within"],
                    r["adherence"],
                )
                for r in view["sla"]
            ],
            (4, 2, 2, 2, 2, 2),
            numeric_columns=(1, 2, 3, 4, 5),
        )
    )
    fixes = view["fixes"]
    add(Paragraph(f"Fixes confirmed by a rescan ({fixes['severities']})", H3))
    add(
        _p(
            f"{fixes['confirmed']} confirmed by a successful rescan, {fixes['unconfirmed']} not "
            "confirmed.",
            BODY,
        )
    )
    if fixes["unconfirmed_rows"]:
        add(
            _table(
                ("Severity", "Title", "Asset", "Fixed", "Closing scan run"),
                [
                    (f["severity"], f["title"], f["asset"], f["fixed_at"], f["scan_run"] or "none")
                    for f in fixes["unconfirmed_rows"]
                ],
                (1.5, 5, 3, 2.5, 1.5),
            )
        )
        story += _more(fixes["more_unconfirmed"], "in the findings files")

    poam = view["poam"]
    add(CondPageBreak(SECTION_ROOM))
    add(
        Paragraph(
            escape(
                f"POA&M: {poam['open']} open items ({poam['findings']} findings), "
                f"{poam['closed']} closed in the period"
            ),
            H2,
        )
    )
    add(
        _p(
            f"One item per unique vulnerability; controls {poam['controls']}. The top "
            f"{len(poam['top'])} by risk and due date; every item is in the POA&M CSV and XLSX.",
            META,
        )
    )
    if poam["top"]:
        add(
            _table(
                ("POAM ID", "Risk", "Weakness (assets)", "CVE", "Assets", "Detected", "Due", "KEV"),
                [
                    (
                        w["poam_id"],
                        w["severity"],
                        f"{w['name']}\n{w['asset_sample']}",
                        w["cves"],
                        w["assets"],
                        w["first_seen"],
                        w["due"] + (" (past due)" if w["overdue"] else ""),
                        w["kev"],
                    )
                    for w in poam["top"]
                ],
                (2.2, 1.2, 6, 2.4, 1, 1.6, 2, 0.8),
                code_columns=(0,),
                numeric_columns=(4,),
            )
        )
        story += _more(poam["more"], "items in the POA&M CSV and XLSX")
    else:
        add(_note("No open weakness at the end of the period."))

    add(Paragraph("Exceptions", H2))
    exceptions = view["exceptions"]
    if not exceptions["available"]:
        add(_note(NO_EXCEPTIONS_TABLE))
    elif exceptions["rows"]:
        add(
            _table(
                (
                    "#",
                    "Kind",
                    "Scope",
                    "Reason",
                    "Requested by",
                    "Approved by",
                    "Approved",
                    "Expires",
                    "At end",
                    "Findings",
                ),
                [
                    (
                        e["id"],
                        e["kind"],
                        f"{e['scope']}: {e['target']}",
                        e["reason"],
                        e["requested_by"],
                        e["approved_by"],
                        e["approved_at"],
                        e["expires_at"],
                        e["state"],
                        e["findings"],
                    )
                    for e in exceptions["rows"]
                ],
                (0.6, 1.6, 3, 4, 1.6, 1.6, 2, 2, 1.2, 1),
                numeric_columns=(9,),
            )
        )
        story += _more(exceptions["more"], "exceptions")
    else:
        add(_note("No exception in force or decided in this period."))

    add(Paragraph("Policy versions that decided in the period", H2))
    if view["policy_versions"]:
        add(
            _table(
                ("Version", "sha256", "Decisions", "First", "Last"),
                [
                    (p["version"], p["hash"], p["decisions"], p["first_at"], p["last_at"])
                    for p in view["policy_versions"]
                ],
                (2, 6, 1.2, 2.2, 2.2),
                code_columns=(1,),
                numeric_columns=(2,),
            )
        )
    else:
        add(_note("No policy decision in this period."))

    add(Paragraph(f"Approval log ({len(view['approvals']) + view['more_approvals']})", H2))
    if view["approvals"]:
        add(
            _table(
                ("Request", "Kind", "Summary", "Requested by", "Rule", "Status", "Decisions"),
                [
                    (
                        a["id"],
                        a["kind"],
                        a["summary"],
                        a["requester"],
                        a["rule_id"],
                        a["status"],
                        "\n".join(
                            f"{d['approver']} {d['decision']}"
                            + (f": {d['reason']}" if d["reason"] else "")
                            + f" ({d['at']}, policy {d['policy_hash'][:12]})"
                            for d in a["decisions"]
                        )
                        or "no decision",
                    )
                    for a in view["approvals"]
                ],
                (0.8, 1, 4, 1.6, 2, 1.2, 5),
            )
        )
        story += _more(view["more_approvals"], "requests")
    else:
        add(_note("No approval request in this period."))

    add(Paragraph(f"Action log ({len(view['actions']) + view['more_actions']})", H2))
    if view["actions"]:
        add(
            _table(
                ("When", "Action", "Asset", "Mode", "Status", "Rule", "Policy", "Reference"),
                [
                    (
                        a["at"],
                        a["action"],
                        a["asset"],
                        a["mode"],
                        a["status"],
                        a["rule_id"],
                        a["policy"],
                        a["external_ref"],
                    )
                    for a in view["actions"]
                ],
                (2.2, 1.4, 2, 1.5, 1.6, 2.4, 2.4, 1.6),
            )
        )
        story += _more(view["more_actions"], "actions")
    else:
        add(_note("No action in this period."))

    add(Paragraph("Inventory changes and blind spots", H2))
    changes = view["inventory_changes"]
    add(
        _p(" · ".join(f"{c['change']}: {c['count']}" for c in changes), BODY)
        if changes
        else _note("No inventory change recorded in this period.")
    )
    blind = view["blind_spots"]
    add(Paragraph(f"Blind spots ({len(blind) + view['more_blind_spots']})", H3))
    if blind:
        add(
            _table(
                ("Address", "Port", "Found by", "First seen", "Lifecycle", "Owner"),
                [
                    (
                        b["address"],
                        b["port"],
                        b["source"],
                        b["first_seen"],
                        b["lifecycle"],
                        b["owner"],
                    )
                    for b in blind
                ],
                (3, 1, 2, 2.4, 1.6, 2),
            )
        )
        story += _more(view["more_blind_spots"], "blind spots")
    else:
        add(_note("Nothing seen on the network that the inventory does not know."))

    add(Paragraph("Vulnerability intelligence feeds", H2))
    if view["intel_feeds"]:
        add(
            _table(
                ("Feed", "Version", "Feed date", "Loaded", "Records", "sha256"),
                [
                    (
                        f["feed"],
                        f["version"],
                        f["feed_date"],
                        f["loaded_at"],
                        f["records"],
                        f["sha256"],
                    )
                    for f in view["intel_feeds"]
                ],
                (1.4, 1.6, 2.2, 2.2, 1.2, 5.5),
                code_columns=(5,),
                numeric_columns=(4,),
            )
        )
    else:
        add(_note("No intelligence feed was loaded by the end of the period."))

    add(CondPageBreak(SECTION_ROOM))
    add(Paragraph("Files beside this report", H2))
    if view["files"]:
        add(
            _table(
                ("File", "Type", "Bytes", "sha256"),
                [(f["filename"], f["media_type"], f["size"], f["sha256"]) for f in view["files"]],
                (4, 4, 1.4, 5.6),
                code_columns=(3,),
                numeric_columns=(2,),
            )
        )
    else:
        add(_note("No other file."))
    add(Paragraph(f"Evidence cited ({view['evidence_total']} raw scanner outputs)", H2))
    if view["evidence"]:
        add(
            _table(
                ("sha256", "Engine", "Scan run", "Finished", "Bytes", "Cited by", "Stored at"),
                [
                    (
                        e["sha256"],
                        e["engine"],
                        e["scan_run"],
                        e["finished_at"],
                        e["size"],
                        e["cited_by"],
                        e["path"],
                    )
                    for e in view["evidence"]
                ],
                (5.2, 1.2, 0.9, 2, 1, 0.9, 4.5),
                code_columns=(0, 6),
                numeric_columns=(2, 4, 5),
            )
        )
        story += _more(view["more_evidence"], "in the manifest")
    else:
        add(_note("No raw scanner output in this period."))
    return [KeepTogether(story[:3]), *story[3:]]


def _footer(label: str) -> Callable[[Any, Any], None]:
    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#777777"))
        canvas.drawString(MARGIN, 8 * mm, label)
        canvas.drawRightString(PAGE[0] - MARGIN, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def render_pack_pdf(pack: Pack, files: Sequence[PieceRef] = ()) -> bytes:
    """The pack as a PDF; the same pack and files give the same bytes."""
    view = pack_view(pack, files)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=14 * mm,
        title=view["title"],
        author="autosec",
        creator="autosec",
        subject=f"{pack.framework.name} {pack.period.start} to {pack.period.end}",
        keywords=[pack.framework.id, pack.period.label, "compliance pack"],
        invariant=1,
    )
    footer = _footer(
        f"autosec · {pack.framework.name} · {pack.period.label} · as of {pack.as_of.isoformat()}"
        f" · policy {pack.policy_version}"
    )
    document.build(_story(view), onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


__all__ = ["age_chart", "coverage_chart", "nice_step", "render_pack_pdf", "sla_chart"]

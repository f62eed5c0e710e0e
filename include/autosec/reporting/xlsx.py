"""The POA&M workbook (XLSX): open items, closed items, the evidence cited, and what the pack is.

The open and closed sheets carry the FedRAMP POA&M template's columns, one row per unique
vulnerability. A cell holds at most 32,767 characters: an item whose asset list is longer is
cut, says so, and its findings are listed one per row on the Affected Assets sheet (every
finding of the pack is in the findings CSV beside the workbook too). Cells that a spreadsheet
would evaluate as a formula are defused, and control characters that XLSX cannot hold are dropped.

Reproducible: the workbook's created and modified properties are the pack's as-of date, and the
ZIP entries carry that date too (openpyxl would stamp the time of writing), so the same pack
gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.writer.excel import ExcelWriter

from autosec.reporting.findings_csv import FINDING_COLUMNS, finding_cells, poam_ids
from autosec.reporting.packs import Pack
from autosec.reporting.poam import POAM_COLUMNS, defuse_cell
from autosec.reporting.posture import format_when

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CELL_LIMIT = 32_767
OPEN_SHEET = "Open POA&M Items"
CLOSED_SHEET = "Closed POA&M Items"
AFFECTED_SHEET = "Affected Assets"
EVIDENCE_SHEET = "Evidence"
ABOUT_SHEET = "About"
SHEETS = (OPEN_SHEET, CLOSED_SHEET, AFFECTED_SHEET, EVIDENCE_SHEET, ABOUT_SHEET)
EVIDENCE_COLUMNS: tuple[str, ...] = (
    "sha256",
    "Path",
    "Engine",
    "Scan Run",
    "Finished At",
    "Size (bytes)",
    "Cited by Findings",
)


def _cell(value: Any, more_hint: str = "") -> tuple[str, bool]:
    text = "" if value is None else str(value)
    text = defuse_cell(ILLEGAL_CHARACTERS_RE.sub("", text))
    if len(text) <= CELL_LIMIT:
        return text, False
    note = f"\n... cut at {CELL_LIMIT} characters{more_hint}"
    return text[: CELL_LIMIT - len(note)] + note, True


def clean_cell(value: Any, more_hint: str = "") -> str:
    """Text an XLSX cell can hold as text: no control characters, no formula, at most
    32,767 characters (a cut cell says so and where the rest is)."""
    return _cell(value, more_hint)[0]


def _poam_cells(row: dict[str, str]) -> tuple[list[str], bool]:
    """The row's cells, and whether its asset list had to be cut."""
    cells, cut = [], False
    for column in POAM_COLUMNS:
        if column == "Asset Identifier":
            text, cut = _cell(row[column], "; every asset is on the Affected Assets sheet")
        else:
            text = clean_cell(row[column])
        cells.append(text)
    return cells, cut


def _sheet(workbook: Workbook, title: str, header: Sequence[str], widths: Sequence[int]):
    sheet = workbook.create_sheet(title)
    for index, width in enumerate(widths):
        letter = _column_letter(index)
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    sheet.append(list(header))
    return sheet


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def deterministic_zip(raw: bytes, when: datetime) -> bytes:
    """The same ZIP with every entry dated ``when`` and fixed attributes, in the same order."""
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as target,
    ):
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            target.writestr(entry, source.read(info.filename), compresslevel=6)
    return out.getvalue()


def render_poam_xlsx(pack: Pack) -> bytes:
    """The POA&M workbook of the pack, byte-identical for the same pack."""
    as_of = datetime.combine(pack.as_of, time(), UTC).replace(tzinfo=None)
    workbook = Workbook(write_only=True)
    props = workbook.properties
    props.creator = "autosec"
    props.lastModifiedBy = "autosec"
    props.title = f"POA&M {pack.framework.name} {pack.period.label}"
    props.subject = f"{pack.framework.name} {pack.framework.version}"
    props.created = as_of
    props.modified = as_of

    widths = [18, 14, 48, 60, 18, 28, 40, 24] + [18] * (len(POAM_COLUMNS) - 8)
    cut: set[str] = set()
    for title, rows in (
        (OPEN_SHEET, pack.open_poam_rows()),
        (CLOSED_SHEET, pack.closed_poam_rows()),
    ):
        sheet = _sheet(workbook, title, POAM_COLUMNS, widths)
        for row in rows:
            cells, assets_cut = _poam_cells(row)
            if assets_cut:
                cut.add(row["POAM ID"])
            sheet.append(cells)

    affected = _sheet(
        workbook, AFFECTED_SHEET, FINDING_COLUMNS, [18, 20, 18, 24, 12, 18] + [16] * 15
    )
    ids = poam_ids((*pack.open_items, *pack.closed_items))
    for weakness in (*pack.open_items, *pack.closed_items):
        if weakness.poam_id in cut:
            for finding in weakness.findings:
                affected.append([clean_cell(c) for c in finding_cells(finding, ids)])

    evidence = _sheet(workbook, EVIDENCE_SHEET, EVIDENCE_COLUMNS, [66, 60, 12, 10, 22, 14, 10])
    for e in pack.evidence:
        evidence.append(
            [
                clean_cell(e.sha256),
                clean_cell(e.path),
                clean_cell(e.engine),
                e.scan_run_id,
                clean_cell(format_when(e.finished_at)),
                e.size_bytes,
                e.cited_by_findings,
            ]
        )

    about = _sheet(workbook, ABOUT_SHEET, ("Field", "Value"), [28, 90])
    for field, value in (
        ("Framework", f"{pack.framework.name} ({pack.framework.id})"),
        ("Framework version", pack.framework.version),
        ("Framework file", f"{pack.framework_file} sha256 {pack.framework_sha256}"),
        ("Period", f"{pack.period.start.isoformat()} to {pack.period.end.isoformat()}"),
        ("As of", pack.as_of.isoformat()),
        ("Policy version", pack.policy_version),
        ("Policy sha256", pack.policy_hash),
        ("Open items", str(len(pack.open_items))),
        ("Closed items", str(len(pack.closed_items))),
        ("Findings", f"{len(pack.findings)} (every one in {pack.slug}-findings.csv)"),
    ):
        about.append([clean_cell(field), clean_cell(value)])

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(workbook, archive).write_data()
    return deterministic_zip(raw.getvalue(), as_of)


__all__ = [
    "AFFECTED_SHEET",
    "CELL_LIMIT",
    "CLOSED_SHEET",
    "OPEN_SHEET",
    "SHEETS",
    "XLSX_MEDIA_TYPE",
    "clean_cell",
    "deterministic_zip",
    "render_poam_xlsx",
]

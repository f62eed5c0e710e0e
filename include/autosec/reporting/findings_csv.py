"""Every finding of a pack as one CSV row, with the POAM ID of the item it belongs to.

The POA&M lists each vulnerability once with the assets it affects; this file is the flat list
behind it (a hundred thousand rows are a CSV's job, not a workbook sheet's), so an item whose
asset list was too long for a spreadsheet cell is still complete. Cells that a spreadsheet would
evaluate as a formula are defused.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from autosec.reporting.packs import Pack, PackFinding
from autosec.reporting.poam import Weakness, defuse_cell, weakness_key
from autosec.reporting.posture import format_when

FINDING_COLUMNS: tuple[str, ...] = (
    "POAM ID",
    "Fingerprint",
    "Asset ID",
    "Asset",
    "Asset Kind",
    "Owner",
    "Engine",
    "Rule",
    "Title",
    "Severity",
    "Status at Period End",
    "CVE",
    "Location",
    "First Seen",
    "Due Date",
    "Due Date Tier",
    "KEV Due Date",
    "Fixed At",
    "Fix Scan Run",
    "Fix Confirmed by Rescan",
    "Evidence sha256",
)

PoamIds = Mapping[tuple[str, tuple[str, ...]], str]


def poam_ids(items: Iterable[Weakness]) -> dict[tuple[str, tuple[str, ...]], str]:
    """Weakness key -> POAM ID, for the items of a pack."""
    return {w.key: w.poam_id for w in items}


def finding_cells(f: PackFinding, ids: PoamIds) -> list[str]:
    """One finding in FINDING_COLUMNS order, as text (POAM ID empty when it is no item)."""
    return [
        ids.get(weakness_key(f), ""),
        f.fingerprint,
        f.asset_id,
        f.asset_name,
        f.asset_kind,
        f.owner or "",
        f.engine,
        f.rule_id,
        f.title,
        f.severity.value,
        f.status.value,
        ", ".join(f.cve_ids),
        f.location,
        format_when(f.first_seen),
        format_when(f.due_date),
        f.tier or "",
        format_when(f.kev_due_date),
        format_when(f.fixed_at),
        "" if f.fix_scan_run_id is None else str(f.fix_scan_run_id),
        ("yes" if f.fix_confirmed else "no") if f.fixed_at else "",
        f.evidence_sha256 or "",
    ]


def render_findings_csv(pack: Pack) -> bytes:
    """Every finding of the pack, most urgent first, as UTF-8 CSV (CRLF line ends)."""
    ids = poam_ids((*pack.open_items, *pack.closed_items))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FINDING_COLUMNS)
    writer.writerows([defuse_cell(c) for c in finding_cells(f, ids)] for f in pack.findings)
    return buffer.getvalue().encode("utf-8")


__all__ = ["FINDING_COLUMNS", "finding_cells", "poam_ids", "render_findings_csv"]

"""Every file of a compliance pack, in the order they cite each other, and the manifest.

The data files come first (POA&M CSV and XLSX, findings as CSV, OCSF and SARIF); the HTML and PDF
list their sha256; the manifest lists every file's sha256, the evidence the pack cites and the
row count of every evidence query, so one hash (the manifest's) names the whole pack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from autosec.reporting.findings_csv import render_findings_csv
from autosec.reporting.ocsf import OCSF_VERSION, render_ocsf
from autosec.reporting.pack_html import render_pack_html
from autosec.reporting.packs import Pack, PieceRef
from autosec.reporting.pdf import render_pack_pdf
from autosec.reporting.poam import write_poam_csv
from autosec.reporting.posture import format_when
from autosec.reporting.sarif import SARIF_VERSION, render_sarif
from autosec.reporting.xlsx import XLSX_MEDIA_TYPE, render_poam_xlsx

MANIFEST = "manifest"
# name -> (file name suffix, media type): the order pieces are built and listed in.
PIECES: dict[str, tuple[str, str]] = {
    "poam_csv": ("-poam.csv", "text/csv"),
    "poam_xlsx": ("-poam.xlsx", XLSX_MEDIA_TYPE),
    "findings_csv": ("-findings.csv", "text/csv"),
    "findings_ocsf": ("-findings.ocsf.json", "application/json"),
    "findings_sarif": ("-findings.sarif", "application/sarif+json"),
    "pack_html": (".html", "text/html"),
    "pack_pdf": (".pdf", "application/pdf"),
    MANIFEST: ("-manifest.json", "application/json"),
}


@dataclass(frozen=True)
class Piece:
    name: str
    filename: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)

    def ref(self) -> PieceRef:
        return PieceRef(self.name, self.filename, self.media_type, self.sha256, self.size)


def _piece(pack: Pack, name: str, content: bytes) -> Piece:
    suffix, media_type = PIECES[name]
    return Piece(name, pack.slug + suffix, media_type, content)


def render_manifest(pack: Pack, pieces: list[Piece], product_version: str) -> bytes:
    coverage = pack.coverage
    manifest = {
        "autosec_version": product_version,
        "framework": {
            "id": pack.framework.id,
            "name": pack.framework.name,
            "version": pack.framework.version,
            "file": pack.framework_file,
            "sha256": pack.framework_sha256,
        },
        "period": pack.period.as_dict(),
        "as_of": pack.as_of.isoformat(),
        "policy": {"version": pack.policy_version, "sha256": pack.policy_hash},
        "formats": {"ocsf": OCSF_VERSION, "sarif": SARIF_VERSION},
        "summary": {
            "assets": coverage.assets,
            "assets_scanned": coverage.scanned,
            "coverage": coverage.share,
            "coverage_target": coverage.target,
            "findings": len(pack.findings),
            "open_findings": sum(1 for f in pack.findings if f.is_open),
            "poam_open_items": len(pack.open_items),
            "poam_closed_items": len(pack.closed_items),
        },
        "pieces": [
            {
                "name": p.name,
                "filename": p.filename,
                "media_type": p.media_type,
                "sha256": p.sha256,
                "size": p.size,
            }
            for p in pieces
        ],
        "evidence_queries": dict(pack.evidence_rows),
        "evidence": [
            {
                "sha256": e.sha256,
                "path": e.path or None,
                "engine": e.engine or None,
                "scan_run_id": e.scan_run_id,
                "finished_at": format_when(e.finished_at) or None,
                "size_bytes": e.size_bytes,
                "cited_by_findings": e.cited_by_findings,
            }
            for e in pack.evidence
        ],
    }
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def render_pack(pack: Pack, product_version: str) -> list[Piece]:
    """Every file of the pack, the manifest last; the same pack gives the same bytes."""
    builders: list[tuple[str, Callable[[], bytes]]] = [
        ("poam_csv", lambda: write_poam_csv(pack.open_poam_rows())),
        ("poam_xlsx", lambda: render_poam_xlsx(pack)),
        ("findings_csv", lambda: render_findings_csv(pack)),
        ("findings_ocsf", lambda: render_ocsf(pack, product_version)),
        ("findings_sarif", lambda: render_sarif(pack, product_version)),
    ]
    pieces = [_piece(pack, name, build()) for name, build in builders]
    refs = [p.ref() for p in pieces]
    pieces.append(_piece(pack, "pack_html", render_pack_html(pack, refs)))
    pieces.append(_piece(pack, "pack_pdf", render_pack_pdf(pack, refs)))
    pieces.append(_piece(pack, MANIFEST, render_manifest(pack, pieces, product_version)))
    return pieces


__all__ = ["MANIFEST", "PIECES", "Piece", "render_manifest", "render_pack"]

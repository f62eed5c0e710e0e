"""The explicit importer registry: format name -> "module:Class", imported only when used.

The order is the sniffing order: the most specific formats come first, so a SARIF file from
Trivy is read as SARIF and a CycloneDX VEX document is not mistaken for an SBOM.
"""

from __future__ import annotations

import importlib
from functools import cache

from autosec.engines.importers.base import SNIFF_BYTES, Importer, head_of

IMPORTERS: dict[str, str] = {
    "sarif": "autosec.engines.importers.sarif:SarifImporter",
    "cyclonedx-vex": "autosec.engines.importers.cyclonedx_vex:CycloneDxVexImporter",
    "trivy": "autosec.engines.importers.trivy:TrivyImporter",
    "grype": "autosec.engines.importers.grype:GrypeImporter",
    "osv-scanner": "autosec.engines.importers.osv_scanner:OsvScannerImporter",
    "gitleaks": "autosec.engines.importers.gitleaks:GitleaksImporter",
    "zap": "autosec.engines.importers.zap:ZapImporter",
    "nuclei": "autosec.engines.importers.nuclei:NucleiImporter",
    "nmap-xml": "autosec.engines.importers.nmap_xml:NmapXmlImporter",
}


class UnknownFormat(KeyError):
    def __str__(self) -> str:
        known = ", ".join(IMPORTERS) or "none"
        return f"unknown report format {self.args[0]!r}: known formats are {known}"


@cache
def get_importer(name: str) -> Importer:
    try:
        module_name, class_name = IMPORTERS[name].split(":")
    except KeyError:
        raise UnknownFormat(name) from None
    importer = getattr(importlib.import_module(module_name), class_name)()
    if importer.name != name:
        raise RuntimeError(f"importer registered as {name!r} calls itself {importer.name!r}")
    return importer


def sniff_format(head: bytes) -> str | None:
    """The first registered format whose sniffer claims this file start, or None."""
    head = head_of(head[:SNIFF_BYTES])
    for name in IMPORTERS:
        if get_importer(name).sniff(head):
            return name
    return None

"""nmap XML reports (``-oX``) a team ran itself, read with the nmap engine's own parsing.

What a host and its ports mean is decided by ``autosec.engines.nmap.parser``: each ``<host>``
is read by its ``_host_record`` and each open port becomes observations through its
``_port_observations``, so an imported report yields exactly the findings (rule ids, titles,
severities, evidence) the nmap engine yields for the same output. Its ``parse_nmap_xml`` is
not used as a whole because it wants the report as bytes, returns every observation at once
and needs assets up front: here the report is streamed host by host (defusedxml, each host
dropped once read), so a 50 MB report is never held in memory, and no asset is known yet.
``tests/unit/engines/importers/test_nmap_xml.py`` checks that both give the same findings.

Like the engine, the reader accepts nmap's bare ``<!DOCTYPE nmaprun>``; a DOCTYPE with an
internal subset (where entities are declared) or an external identifier is refused, before
anything in it is read. Hosts that are not "up", and hosts without
an IP address, yield nothing. A report of a run that did not finish is still imported:
completeness is the business of whoever imports it. A host listed twice (two names for one
address) yields its findings twice; their fingerprints are the same, so triage merges them.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id``: the parser's rule ids: ``nmap.open-port``, ``nmap.service-version-disclosed``,
  ``nmap.database-exposed`` and those of the NSE scripts it reads (``nmap.tls-weak-cipher``...);
- ``location``: ``host`` (the address), ``port`` and ``protocol``. Service names, versions,
  banners, reasons and timings are evidence only.

``target`` is the name nmap was given for the host, else its address.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from autosec.domain.models import Location, Observation
from autosec.engines.importers.base import (
    ImportedFinding,
    Importer,
    ImportFormatError,
    XmlEvents,
    xml_root,
)
from autosec.engines.nmap.parser import (
    NmapParseError,
    _Host,
    _host_record,
    _port_observations,
)

ROOT = "nmaprun"
_ASSET = "imported"  # the parser wants an asset id; an import maps assets later


class NmapXmlImporter(Importer):
    name = "nmap-xml"
    description = "nmap XML report (-oX): open ports, disclosed versions, exposed databases"

    def sniff(self, head: bytes) -> bool:
        root = xml_root(head)
        return root is not None and root.tag == ROOT

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        events = XmlEvents(stream, filename, record_lines=frozenset({"host"}), bare_doctype=True)
        for event, element in events:
            if event == "start":
                if element is events.root and element.tag != ROOT:
                    raise ImportFormatError(
                        filename,
                        f"not an nmap XML report: the root element is <{element.tag}>, "
                        f"expected <{ROOT}>",
                        events.line_of(element),
                    )
                continue
            if element.tag == "host" and events.parent is events.root:
                try:
                    host = _host_record(element)
                except NmapParseError as exc:
                    raise events.error(str(exc), element) from None
                yield from _host_findings(host, self.engine_name)
                events.discard(element)
            elif events.parent is events.root:
                events.discard(element)  # scaninfo, taskbegin...: nothing to keep


def _host_findings(host: _Host, engine_name: str) -> Iterator[ImportedFinding]:
    """The findings of one host record, as ``parse_nmap_xml`` would make them."""
    if host.state != "up" or not host.addresses:
        return
    address = host.addresses[0]
    target = host.user_names[0] if host.user_names else address
    seen: set[tuple[str, Location]] = set()
    for port in host.ports:
        if port.state != "open":
            continue
        for observation in _port_observations(_ASSET, address, host, port, engine_name):
            key = (observation.rule_id, observation.location)
            if key not in seen:
                seen.add(key)
                yield _finding(observation, target)


def _finding(observation: Observation, target: str) -> ImportedFinding:
    return ImportedFinding(
        rule_id=observation.rule_id,
        title=observation.title,
        severity=observation.severity,
        location=observation.location,
        target=target,
        description=observation.description,
        cvss_vector=observation.cvss_vector,
        cvss_score=observation.cvss_score,
        cve_ids=observation.cve_ids,
        cwe=observation.cwe,
        evidence=observation.evidence,  # the parser builds a fresh dict for each observation
    )

"""OWASP ZAP XML reports (``OWASPZAPReport`` > ``site`` > ``alerts`` > ``alertitem``).

Covers the "Traditional XML" report and its "XML plus" variant (request and response bodies
per instance), ZAP 2.9 to 2.16. The XML is streamed with defusedxml (no DTD, no entities, no
external references): each ``alertitem`` is turned into findings, then dropped from the tree.
ZAP's JSON reports are another format and are not read here.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id``: the ZAP rule: ``alertRef`` when it refines the ``pluginid`` (``10020-1`` and
  ``10020-2`` are two different problems found by scan rule 10020), else the ``pluginid``;
- ``location``: the instance URL with the query *values* removed (names kept, sorted), without
  the fragment, scheme and host lower-cased and the default port dropped; plus its host and
  port. Values are volatile (session ids, cache busters, ZAP's own attack strings).

All instances of an alert at the same normalised URL are one finding: their methods and
parameter names go to the evidence (``methods``, ``params``, ``instance_count``). ZAP's own
evidence strings and attacks are not kept: some rules put the session ids or credentials they
found there. Severity is ZAP's risk code: 0 info, 1 low, 2 medium,
3 high (ZAP has no "critical"). A confidence of 0 is ZAP's "false positive" mark; it is kept
in the evidence (``confidence``) for triage to act on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    ImportedFinding,
    Importer,
    ImportFormatError,
    XmlEvents,
    local_name,
    stable_url,
    xml_root,
)

ROOT = "OWASPZAPReport"
RISK_SEVERITY = {0: Severity.INFO, 1: Severity.LOW, 2: Severity.MEDIUM, 3: Severity.HIGH}
_CONFIDENCE = {0: "false positive", 1: "low", 2: "medium", 3: "high", 4: "confirmed"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t]+")
_LIST_CAP = 20
_DESCRIPTION_CHARS = 4000


class ZapImporter(Importer):
    name = "zap"
    description = "OWASP ZAP XML report (traditional and XML plus): web alerts by URL"

    def sniff(self, head: bytes) -> bool:
        root = xml_root(head)
        return root is not None and root.tag == ROOT

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        events = XmlEvents(stream, filename, record_lines=frozenset({"alertitem"}))
        site: dict[str, str] = {}
        for event, element in events:
            tag = local_name(element.tag)
            if event == "start":
                if element is events.root and tag != ROOT:
                    raise ImportFormatError(
                        filename,
                        f"not a ZAP XML report: the root element is <{tag}>, expected <{ROOT}>",
                        events.line_of(element),
                    )
                if tag == "site":
                    site = dict(element.attrib)
                continue
            if tag == "alertitem":
                yield from _alert_findings(element, site, events)
                events.discard(element)
            elif tag == "site":
                events.discard(element)


def _alert_findings(
    item: Element, site: dict[str, str], events: XmlEvents
) -> Iterator[ImportedFinding]:
    plugin_id = _child_text(item, "pluginid")
    if not plugin_id:
        raise events.error("an alertitem without a <pluginid>", item)
    alert_ref = _child_text(item, "alertRef")
    rule_id = alert_ref if alert_ref.startswith(f"{plugin_id}-") else plugin_id
    risk = _int(_child_text(item, "riskcode"))
    if risk not in RISK_SEVERITY:
        raise events.error(
            f"alert {rule_id} has riskcode {_child_text(item, 'riskcode')!r}, expected 0 to 3",
            item,
        )
    confidence = _int(_child_text(item, "confidence"))
    title = _child_text(item, "name") or _child_text(item, "alert") or f"ZAP alert {rule_id}"
    description = _plain(_child_text(item, "desc"))
    solution = _plain(_child_text(item, "solution"))
    if solution:
        description = f"{description}\n\nSolution: {solution}" if description else solution
    cwe_number = _int(_child_text(item, "cweid"))
    common: dict[str, Any] = {
        "plugin_id": plugin_id,
        "alert_ref": alert_ref or None,
        "confidence": _CONFIDENCE.get(confidence) if confidence is not None else None,
        "wasc_id": _int(_child_text(item, "wascid")),
        "source_id": _int(_child_text(item, "sourceid")),
    }
    by_url: dict[str, list[Element]] = {}
    for instance in item.iterfind("instances/instance"):
        uri = _child_text(instance, "uri")
        by_url.setdefault(stable_url(uri) if uri else "", []).append(instance)
    if not by_url:  # very old reports list no instances: the alert is about the site itself
        by_url[stable_url(site.get("name", ""))] = []
    for url, instances in by_url.items():
        host, port = _host_port(url, site)
        evidence = dict(common)
        evidence.update(
            methods=_distinct(_child_text(i, "method").upper() for i in instances),
            params=_distinct(_child_text(i, "param") for i in instances),
            instance_count=len(instances),
        )
        yield ImportedFinding(
            rule_id=rule_id,
            title=title,
            severity=RISK_SEVERITY[risk],
            location=Location(host=host, port=port, url=url or None),
            target=site.get("name") or None,
            description=description[:_DESCRIPTION_CHARS],
            cwe=f"CWE-{cwe_number}" if cwe_number and cwe_number > 0 else None,
            evidence={k: v for k, v in evidence.items() if v not in (None, [], "")},
        )


def _host_port(url: str, site: dict[str, str]) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if host is None:
        host = site.get("host") or None
        port = _int(site.get("port"))
    elif port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
    return host, port


def _child_text(element: Element, name: str) -> str:
    for child in element:
        if local_name(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _plain(markup: str) -> str:
    """ZAP descriptions are HTML: keep the words."""
    text = html.unescape(_TAG.sub(" ", markup))
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _distinct(values: Iterator[str]) -> list[str]:
    return sorted({v for v in values if v})[:_LIST_CAP]


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None

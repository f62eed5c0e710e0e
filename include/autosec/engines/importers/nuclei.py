"""nuclei results: JSON Lines (``-jsonl`` / ``-json``, one result per line) or a JSON array.

nuclei writes nothing at all when nothing matched, so a 0-byte file is a valid report with no
findings. ``-json-export`` writes the same objects as one JSON array; that is read too, streamed
with ijson. Both the current key set (``template-id``, ``matched-at``, ``matcher-name``,
``extracted-results``) and the nuclei 2.x one (``templateID``, ``matched``, ``matcher_name``,
``extracted_results``) are understood.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id``: the ``template-id``, followed by ``:matcher-name`` when the template has named
  matchers: ``http-missing-security-headers:x-frame-options`` and ``...:strict-transport-security``
  are two findings, fixed one at a time;
- ``location``: from ``matched-at``: a URL becomes ``url`` (query values removed: ``stable_url``)
  plus ``host`` and ``port``; ``host:port`` becomes ``host``, ``port`` and protocol ``tcp``;
  a bare name (DNS templates) becomes ``host``. Timestamps, IPs, requests and responses are
  never part of it.

``target`` is the ``host`` nuclei was given. Severity is the template's (info .. critical;
``unknown`` is info); CVE ids, CWE ids and the CVSS vector come from ``info.classification``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import ijson

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    UTF8_BOM,
    ImportedFinding,
    Importer,
    ImportFormatError,
    json_events,
    json_head,
    stable_url,
    text_of,
)

_SEVERITY = {
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "unknown": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)
_CWE = re.compile(r"^CWE-?(\d+)$", re.IGNORECASE)
_HOST_PORT = re.compile(
    r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s/:\[\]]+)):(?P<port>\d{1,5})$"
)
_LIST_CAP = 20
_TEXT_CAP = 200
_PEEK_BYTES = 4096


class NucleiImporter(Importer):
    name = "nuclei"
    description = "nuclei JSON Lines or JSON array export: template matches by URL or host:port"

    def sniff(self, head: bytes) -> bool:
        shape = json_head(head)
        if shape is None or shape.kind not in ("object", "array"):
            return False
        keys = shape.members
        return ("template-id" in keys or "templateID" in keys) and (
            "matched-at" in keys or "matched" in keys
        )

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        start = buffered.peek(_PEEK_BYTES)
        if start.startswith(UTF8_BOM):
            start = start[len(UTF8_BOM) :]
        if start.lstrip()[:1] == b"[":
            yield from _parse_array(buffered, filename)
        else:  # JSON Lines; a 0-byte file is nuclei's "nothing matched"
            yield from _parse_lines(buffered, filename)


def _parse_lines(stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM) :]
        text = raw.strip()
        if not text:
            continue
        try:
            result = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            column = f", column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise ImportFormatError(
                filename, f"malformed JSON line ({problem})", f"line {number}{column}"
            ) from None
        yield _finding(result, filename, f"line {number}")


def _parse_array(stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
    for index, result in enumerate(ijson.items(json_events(stream, filename), "item"), start=1):
        yield _finding(result, filename, f"result {index} of the array")


def _finding(result: Any, filename: str, where: str) -> ImportedFinding:
    if not isinstance(result, Mapping):
        raise ImportFormatError(
            filename, f"a result is a JSON {type(result).__name__}, not an object", where
        )
    template_id = text_of(result.get("template-id") or result.get("templateID"))
    matched_at = text_of(result.get("matched-at") or result.get("matched"))
    if not template_id:
        raise ImportFormatError(filename, "a result without a template-id", where)
    host = text_of(result.get("host"))
    if not matched_at:
        matched_at = host
    if not matched_at:
        raise ImportFormatError(
            filename,
            f"result of {template_id} says neither where it matched nor on which host",
            where,
        )
    info = result.get("info") if isinstance(result.get("info"), Mapping) else {}
    classification = (
        info.get("classification") if isinstance(info.get("classification"), Mapping) else {}
    )
    matcher = text_of(result.get("matcher-name") or result.get("matcher_name"))
    severity_text = text_of(info.get("severity")).lower() or "unknown"
    if severity_text not in _SEVERITY:
        raise ImportFormatError(
            filename, f"result of {template_id} has an unknown severity {severity_text!r}", where
        )
    cvss_score = classification.get("cvss-score")
    evidence: dict[str, Any] = {
        "template_id": template_id,
        "matcher_name": matcher or None,
        "type": text_of(result.get("type")) or None,
        "matched_at": matched_at,
        "ip": text_of(result.get("ip")) or None,
        "extracted_results": _strings(
            result.get("extracted-results") or result.get("extracted_results")
        ),
        "template_path": text_of(result.get("template-path") or result.get("template")) or None,
        "tags": _strings(info.get("tags")),
        "references": _strings(info.get("reference")),
    }
    return ImportedFinding(
        rule_id=f"{template_id}:{matcher}" if matcher else template_id,
        title=text_of(info.get("name")) or template_id,
        severity=_SEVERITY[severity_text],
        location=_location(matched_at),
        target=host or None,
        description=text_of(info.get("description")),
        cvss_vector=text_of(classification.get("cvss-metrics")) or None,
        cvss_score=float(cvss_score) if isinstance(cvss_score, int | float) else None,
        cve_ids=tuple(
            sorted({c.upper() for c in _strings(classification.get("cve-id")) if _CVE.match(c)})
        ),
        cwe=_cwe(classification.get("cwe-id")),
        evidence={k: v for k, v in evidence.items() if v not in (None, [], "")},
    )


def _location(matched_at: str) -> Location:
    if "://" in matched_at:
        url = stable_url(matched_at)
        try:
            parts = urlsplit(url)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
            return Location(host=parts.hostname, port=port, url=url)
        except ValueError:
            return Location(url=url)
    match = _HOST_PORT.match(matched_at)
    if match and int(match.group("port")) <= 65535:
        host = match.group("ipv6") or match.group("host")
        return Location(host=host.lower(), port=int(match.group("port")), protocol="tcp")
    return Location(host=matched_at.lower())


def _cwe(value: Any) -> str | None:
    for item in _strings(value):
        match = _CWE.match(item)
        if match:
            return f"CWE-{int(match.group(1))}"
    return None


def _strings(value: Any) -> list[str]:
    """nuclei writes lists, comma-separated strings (2.x tags) or null for the same field."""
    if isinstance(value, str):
        items = value.split(",") if "\n" not in value else value.splitlines()
    elif isinstance(value, list):
        items = [v for v in value if isinstance(v, str)]
    else:
        return []
    cleaned = (item.strip().lstrip("- ").strip() for item in items)
    return [item[:_TEXT_CAP] for item in cleaned if item][:_LIST_CAP]

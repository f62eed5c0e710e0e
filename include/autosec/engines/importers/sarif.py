"""SARIF 2.1.0 logs (CodeQL, Semgrep, Trivy, Grype, flawfinder, njsscan, ... ``-f sarif``).

A log is an object with ``version`` "2.1.0" and ``runs[]``; each run has its ``tool`` (the
driver and its extensions, with their ``rules``) and its ``results[]``. Results are streamed
one at a time; the tool is read first (every writer puts it before the results; results that
come earlier wait for it), and so are the run's ``artifacts`` when a location only names an
artifact by index.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id`` = the result's ``ruleId`` (or its ``rule.id``, or the id of the rule its
  ``ruleIndex`` points at), never the message. A result without any rule is named after the
  tool.
- ``location`` = the first location's file (``artifactLocation.uri`` relative to its base as
  written, ``file://`` removed, percent-decoding undone) and ``region.startLine``; an
  ``http(s)`` artifact is a ``url``. A result with only a logical location (a function, a
  namespace) uses its fully qualified name as the file, so two methods are two findings.
  Columns, other locations and the tool's own fingerprints go to the evidence.

``target`` is the run's ``versionControlProvenance[0].repositoryUri``, else the image name
some container scanners put in the run's properties, else none (import with ``--asset``).

Severity: a ``security-severity`` property (GitHub's convention, a CVSS-like score on the rule
or the result) when there is one, else the level: error high, warning medium, note low, none
info; an absent level is the rule's default, else SARIF's default "warning". Results of kind
``pass`` or ``notApplicable`` are not findings, nor are results whose ``baselineState`` is
``absent`` (gone since the baseline). Suppressed results are still findings (autosec keeps its
own exceptions, with approver and expiry); the suppression goes to the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    JSON_END,
    JSON_START,
    ImportedFinding,
    Importer,
    JsonValues,
    advisory_ids,
    head_of,
    json_outline,
    list_of,
    mapping_of,
    severity_from_cvss,
    text_of,
)

SARIF_VERSION = "2.1.0"
EXPECTED = 'a SARIF 2.1.0 log (an object with "version": "2.1.0" and runs)'
LEVELS = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.INFO,
}
NOT_FINDINGS = frozenset({"pass", "notApplicable"})
_CWE = re.compile(r"\bCWE[-_ /]?0*(\d+)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{(\d+)\}")
_TITLE_CHARS = 300
_LIST_CAP = 10
_RUN_FIELDS = ("tool", "artifacts", "versionControlProvenance", "properties")


class SarifImporter(Importer):
    name = "sarif"
    description = "SARIF 2.1.0 log: results of any SAST, SCA or IaC tool that writes SARIF"

    def sniff(self, head: bytes) -> bool:
        outline = json_outline(head)
        if outline is None or outline.kind != "object" or "runs" not in outline.paths:
            return False
        version = outline.values.get("version")
        if version is not None:
            return version == SARIF_VERSION
        schema = outline.values.get("$schema")
        if isinstance(schema, str) and "sarif" in schema.lower():
            return True
        # ``runs`` first and the version after them, beyond the head: a run's tool driver.
        return "runs.item.tool.driver" in outline.paths

    def source_tool(self, head: bytes) -> str | None:
        """The first run's tool (``runs[0].tool.driver.name``): SARIF is written by many."""
        outline = json_outline(head_of(head))
        if outline is None:
            return None
        name = outline.values.get("runs.item.tool.driver.name")
        return name if isinstance(name, str) else None

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        collect = ["version", *(f"runs.item.{key}" for key in _RUN_FIELDS)]
        values = JsonValues(
            stream, filename, [*collect, "runs.item.results.item"], bounds=("runs", "runs.item")
        )
        has_runs = False
        run: _Run | None = None
        for prefix, value in values:
            if prefix == "version":
                if value != SARIF_VERSION:
                    raise values.error(f"SARIF version {value!r}: expected {EXPECTED}", prefix)
            elif prefix == "runs":
                has_runs = True
            elif prefix == "runs.item":
                if value is JSON_START:
                    run = _Run()
                elif value is JSON_END and run is not None:
                    yield from run.flush()
                    run = None
                else:
                    raise values.error(f"a run is a JSON {type(value).__name__}", prefix)
            elif run is None:
                continue
            elif prefix == "runs.item.results.item":
                if not isinstance(value, Mapping):
                    raise values.error(
                        f"a result is a JSON {type(value).__name__}, not an object", prefix
                    )
                if run.tool_seen:
                    finding = run.finding(value)
                    if finding is not None:
                        yield finding
                else:
                    run.pending.append(value)
            else:
                run.take(prefix.rpartition(".")[2], value)
                if prefix == "runs.item.tool":
                    yield from run.flush()
        if values.kind != "object" or not has_runs:
            raise values.error(f"no runs: expected {EXPECTED}")


@dataclass
class _Component:
    """A tool component (the driver or an extension) and its rules by index and by id."""

    name: str
    rules: list[Mapping[str, Any]] = field(default_factory=list)
    by_id: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: Any) -> _Component:
        raw = mapping_of(raw)
        rules = [mapping_of(rule) for rule in list_of(raw.get("rules"))]
        component = cls(text_of(raw.get("name")), rules)
        for rule in rules:
            component.by_id.setdefault(text_of(rule.get("id")), rule)
        return component


@dataclass
class _Run:
    driver: _Component = field(default_factory=lambda: _Component(""))
    extensions: list[_Component] = field(default_factory=list)
    tool_version: str = ""
    artifacts: list[Mapping[str, Any]] = field(default_factory=list)
    target: str | None = None
    tool_seen: bool = False
    pending: list[Mapping[str, Any]] = field(default_factory=list)

    def take(self, key: str, value: Any) -> None:
        if key == "tool":
            tool = mapping_of(value)
            driver = mapping_of(tool.get("driver"))
            self.driver = _Component.of(driver)
            self.extensions = [_Component.of(ext) for ext in list_of(tool.get("extensions"))]
            self.tool_version = text_of(driver.get("semanticVersion")) or text_of(
                driver.get("version")
            )
            self.tool_seen = True
        elif key == "artifacts":
            self.artifacts = [mapping_of(artifact) for artifact in list_of(value)]
        elif key == "versionControlProvenance":
            first = mapping_of(next(iter(list_of(value)), None))
            self.target = self.target or text_of(first.get("repositoryUri")) or None
        elif key == "properties":
            properties = mapping_of(value)
            self.target = self.target or text_of(properties.get("imageName")) or None

    def flush(self) -> Iterator[ImportedFinding]:
        pending, self.pending = self.pending, []
        for result in pending:
            finding = self.finding(result)
            if finding is not None:
                yield finding

    def rule_of(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        reference = mapping_of(result.get("rule"))
        component = self.driver
        tool_component = mapping_of(reference.get("toolComponent"))
        if tool_component:
            index = tool_component.get("index")
            name = text_of(tool_component.get("name"))
            if _is_index(index) and index < len(self.extensions):
                component = self.extensions[index]
            elif name:
                component = next((e for e in self.extensions if e.name == name), component)
        index = reference.get("index", result.get("ruleIndex"))
        if _is_index(index) and index < len(component.rules):
            return component.rules[index]
        rule_id = text_of(result.get("ruleId")) or text_of(reference.get("id"))
        for candidate in (rule_id, rule_id.partition("/")[0]):  # hierarchical ids: "C2001/1"
            for searched in (component, self.driver, *self.extensions):
                if candidate in searched.by_id:
                    return searched.by_id[candidate]
        return {}

    def finding(self, result: Mapping[str, Any]) -> ImportedFinding | None:
        kind = text_of(result.get("kind")) or "fail"
        if kind in NOT_FINDINGS or text_of(result.get("baselineState")) == "absent":
            return None
        rule = self.rule_of(result)
        rule_id = (
            text_of(result.get("ruleId"))
            or text_of(mapping_of(result.get("rule")).get("id"))
            or text_of(rule.get("id"))
            or self.driver.name
            or "sarif-result"
        )
        message = _message(mapping_of(result.get("message")), rule)
        rule_properties = mapping_of(rule.get("properties"))
        result_properties = mapping_of(result.get("properties"))
        score = _security_severity(result_properties, rule_properties)
        level = (
            text_of(result.get("level"))
            or text_of(mapping_of(rule.get("defaultConfiguration")).get("level"))
            or ("warning" if kind == "fail" else "none")
        )
        severity = severity_from_cvss(score) or LEVELS.get(level, Severity.MEDIUM)
        locations = [mapping_of(loc) for loc in list_of(result.get("locations"))]
        location, line_info = self._location(locations[0]) if locations else (Location(), {})
        evidence = {
            "tool": self.driver.name,
            "tool_version": self.tool_version,
            "level": level,
            "kind": kind if kind != "fail" else None,
            "security_severity": score,
            **line_info,
            "other_locations": [self._describe(loc) for loc in locations[1:_LIST_CAP]],
            **_suppression(result.get("suppressions")),
            "fingerprints": _fingerprints(result),
        }
        short = text_of(mapping_of(rule.get("shortDescription")).get("text"))
        name = text_of(rule.get("name"))
        title = short or (name if name and name != rule_id else "") or message or rule_id
        full = text_of(mapping_of(rule.get("fullDescription")).get("text"))
        tags = [t for t in list_of(rule_properties.get("tags")) if isinstance(t, str)]
        return ImportedFinding(
            rule_id=rule_id,
            title=title.splitlines()[0][:_TITLE_CHARS] if title else rule_id,
            severity=severity,
            location=location,
            target=self.target,
            description=message or full,
            cve_ids=advisory_ids(rule_id, name, *tags),
            cwe=_cwe(rule, rule_properties, result_properties, tags),
            evidence={k: v for k, v in evidence.items() if v not in (None, "", [], {})},
        )

    def _location(self, location: Mapping[str, Any]) -> tuple[Location, dict[str, Any]]:
        physical = mapping_of(location.get("physicalLocation"))
        uri = self._uri(mapping_of(physical.get("artifactLocation")))
        region = mapping_of(physical.get("region"))
        extra = {
            "column": _positive(region.get("startColumn")),
            "end_line": _positive(region.get("endLine")),
        }
        line = _positive(region.get("startLine"))
        if uri:
            if urlsplit(uri).scheme in ("http", "https"):
                return Location(url=uri), extra
            return Location(file=uri, line=line), extra
        logical = mapping_of(next(iter(list_of(location.get("logicalLocations"))), None))
        name = text_of(logical.get("fullyQualifiedName")) or text_of(logical.get("name"))
        return Location(file=name or None), {}

    def _uri(self, artifact_location: Mapping[str, Any]) -> str | None:
        uri = text_of(artifact_location.get("uri"))
        index = artifact_location.get("index")
        if not uri and _is_index(index) and index < len(self.artifacts):
            uri = text_of(mapping_of(self.artifacts[index].get("location")).get("uri"))
        return artifact_path(uri) if uri else None

    def _describe(self, location: Mapping[str, Any]) -> str:
        found, _ = self._location(location)
        where = found.file or found.url or ""
        return f"{where}:{found.line}" if found.line else where


def artifact_path(uri: str) -> str:
    """A SARIF artifact URI as a path: ``file:///C:/src/a%20b.c`` -> ``C:/src/a b.c``."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if re.match(r"^/[A-Za-z]:/", path):  # file:///C:/... -> C:/...
            path = path[1:]
        return path
    if parts.scheme in ("http", "https"):
        return uri
    return unquote(uri)


def _message(message: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """The result's message text, or the rule's message string filled with its arguments."""
    text = text_of(message.get("text")) or text_of(message.get("markdown"))
    if not text:
        strings = mapping_of(rule.get("messageStrings"))
        template = mapping_of(strings.get(text_of(message.get("id"))))
        text = text_of(template.get("text"))
    arguments = [str(a) for a in list_of(message.get("arguments"))]
    if arguments and text:
        text = _PLACEHOLDER.sub(
            lambda m: arguments[int(m.group(1))] if int(m.group(1)) < len(arguments) else m[0],
            text,
        )
    return text


def _security_severity(*properties: Mapping[str, Any]) -> float | None:
    for bag in properties:
        value = bag.get("security-severity")
        if isinstance(value, bool):
            continue
        try:
            score = float(value) if isinstance(value, int | float | str) else None
        except ValueError:
            score = None
        if score is not None and 0.0 <= score <= 10.0:
            return score
    return None


def _cwe(
    rule: Mapping[str, Any],
    rule_properties: Mapping[str, Any],
    result_properties: Mapping[str, Any],
    tags: list[str],
) -> str | None:
    candidates: list[Any] = []
    for relationship in list_of(rule.get("relationships")):
        target = mapping_of(mapping_of(relationship).get("target"))
        if text_of(mapping_of(target.get("toolComponent")).get("name")).upper() == "CWE":
            candidates.append(target.get("id"))
    for bag in (rule_properties, result_properties):
        value = bag.get("cwe")
        candidates += value if isinstance(value, list) else [value]
    candidates += tags
    for candidate in candidates:
        match = _CWE.search(candidate) if isinstance(candidate, str) else None
        if match:
            return f"CWE-{int(match.group(1))}"
    return None


def _suppression(raw: Any) -> dict[str, Any]:
    suppressions = [mapping_of(s) for s in list_of(raw)]
    if not suppressions:
        return {}
    first = suppressions[0]
    return {
        "suppressed": True,
        "suppression_kind": text_of(first.get("kind")),
        "suppression_status": text_of(first.get("status")),
        "suppression_justification": text_of(first.get("justification"))[:_TITLE_CHARS],
    }


def _fingerprints(result: Mapping[str, Any]) -> dict[str, str]:
    """The tool's own (partial) fingerprints, when they are plain strings: kept for triage."""
    found: dict[str, str] = {}
    for key in ("fingerprints", "partialFingerprints"):
        for name, value in mapping_of(result.get(key)).items():
            if isinstance(value, str) and len(found) < _LIST_CAP:
                found[str(name)] = value
    return found


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value: Any) -> int | None:
    return value if _is_index(value) and value > 0 else None

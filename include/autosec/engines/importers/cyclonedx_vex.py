"""CycloneDX VEX and BOM-with-vulnerabilities documents, JSON and XML.

A CycloneDX document with a ``vulnerabilities`` array is read here: a standalone VEX (only
vulnerabilities, ``affects`` pointing at a product or at components of another BOM) or a BOM
with its vulnerabilities inline (grype, cyclonedx-python, Snyk...). An SBOM without
vulnerabilities is not a report of findings: it is refused, so importing one by mistake closes
nothing. XML is read too: CycloneDX 1.4+ ``<vulnerabilities>`` and the older vulnerability
extension (``http://cyclonedx.org/schema/ext/vulnerability/1.0``), where ``<v:vulnerabilities>``
sits inside the affected ``<component>``.

Sniffing sees the first 64 KiB only: a CycloneDX document is claimed when a
``vulnerabilities`` array (JSON) or a vulnerability element (XML) shows there. A BOM whose
vulnerabilities follow a component list longer than that is not recognised by sniffing; name
the format (``cyclonedx-vex``) to import it.

JSON is streamed with ijson and XML with defusedxml (no DTD, no entities, no external
references). Components are indexed by ``bom-ref`` as they stream past (only their name,
group, version and package URL are kept); a vulnerability is turned into findings as soon as
the components it names are known, or at the end of the document when they come later.

One finding per vulnerability and affected ref. Identity (the fingerprint is built later from
asset + rule_id + location):
- ``rule_id``: the vulnerability ``id`` (``CVE-2021-44228``, ``GHSA-...``, ``SNYK-...``);
- ``location``: ``purl`` of the affected component *without its version* (type, namespace and
  name: the version changes when the package is upgraded, the finding does not). The ref is
  resolved through the component with that ``bom-ref``, else read as a package URL itself, or
  as a BOM-Link (``urn:cdx:serial/version#ref``) whose fragment is one. A component without a
  package URL (a product, a grype XML component) gets ``pkg:generic/<group>/<name>``. A ref
  that names nothing known gives an empty location: the vulnerability then applies to the
  asset as a whole.

VEX analysis is carried, never acted on, in the evidence: ``vex_state`` (exploitable,
in_triage, false_positive, not_affected, resolved, resolved_with_pedigree),
``vex_justification``, ``vex_response`` and ``vex_detail``. Vulnerabilities whose state is
``not_affected``, ``false_positive``, ``resolved`` or ``resolved_with_pedigree`` are still
emitted, with ``vex_exception: true`` beside their ``vex_state``, so that triage can record
them as exceptions (with the statement as evidence) instead of the importer silently dropping
them, and so that a later VEX saying "exploitable" for the same finding is seen as a change.

Severity is the highest of the vulnerability's ratings (its ``severity``, else the CVSS
qualitative band of its ``score``); ``none`` is info; a vulnerability with no usable rating is
medium, so that an unrated one is not buried among informational findings. CVE and GHSA ids
come from the ``id`` and the ``references``; the CWE is the first of ``cwes``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from packageurl import PackageURL

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    JSON_START,
    UTF8_BOM,
    ImportedFinding,
    Importer,
    ImportFormatError,
    JsonValues,
    XmlEvents,
    advisory_ids,
    json_head,
    list_of,
    local_name,
    mapping_of,
    package_purl,
    severity_from_cvss,
    text_of,
    versionless_purl,
    xml_root,
)

EXCEPTION_STATES = frozenset(
    {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
)
UNRATED_SEVERITY = Severity.MEDIUM
_SEVERITY = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "none": Severity.INFO,
}
_CVSS_PREFIX = {"cvssv4": "CVSS:4.0/", "cvssv31": "CVSS:3.1/", "cvssv3": "CVSS:3.0/"}
_BOM_NAMESPACE = "http://cyclonedx.org/schema/bom/"
_XML_VULNERABILITY = re.compile(rb"<(?:[\w.-]+:)?vulnerabilit(?:y|ies)[\s>/]")
_TEXT_CAP = 4000
_DETAIL_CAP = 1000
_LIST_CAP = 20


@dataclass(frozen=True)
class _Component:
    name: str | None
    group: str | None
    version: str | None
    purl: str | None

    @property
    def label(self) -> str:
        name = "/".join(part for part in (self.group, self.name) if part)
        return " ".join(part for part in (name or self.purl, self.version) if part) or "?"

    @property
    def stable_purl(self) -> str | None:
        """The package URL without version, qualifiers or subpath; a generic one by name."""
        stable = versionless_purl(self.purl)
        if stable is None and self.name:
            stable = package_purl("generic", self.name, self.group)
        return stable


class CycloneDxVexImporter(Importer):
    name = "cyclonedx-vex"
    description = "CycloneDX VEX / BOM with vulnerabilities (JSON or XML): one finding per ref"

    def sniff(self, head: bytes) -> bool:
        if head[:1] == b"<":
            root = xml_root(head)
            return (
                root is not None
                and local_name(root.tag.replace(":", "}")) == "bom"
                and _BOM_NAMESPACE in root.attributes
                and _XML_VULNERABILITY.search(head) is not None
            )
        shape = json_head(head)
        return (
            shape is not None
            and shape.kind == "object"
            and shape.members.get("bomFormat") == "CycloneDX"
            and shape.members.get("vulnerabilities") is list
        )

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        buffered = _buffered(stream)
        start = buffered.peek(64).removeprefix(UTF8_BOM).lstrip()
        if start[:1] == b"<":
            yield from _XmlDocument(buffered, filename).findings()
        else:
            yield from _JsonDocument(buffered, filename).findings()


def _buffered(stream: BinaryIO) -> io.BufferedReader:
    return stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- shared


class _Document:
    """What both syntaxes share: the component index and turning vulnerabilities into findings."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.components: dict[str, _Component] = {}
        self.product: _Component | None = None
        self.pending: list[tuple[Mapping[str, Any], str, _Component | None]] = []
        self.vulnerability_count = 0

    def index(self, bom_ref: str | None, component: _Component) -> None:
        if bom_ref and bom_ref not in self.components:
            self.components[bom_ref] = component

    def offer(
        self, vulnerability: Mapping[str, Any], where: str, owner: _Component | None = None
    ) -> Iterator[ImportedFinding]:
        """Findings now if every ref is known (or the owner is), else once the document ends."""
        self.vulnerability_count += 1
        refs = [ref for ref in _refs(vulnerability) if ref]
        if owner is not None or all(ref in self.components for ref in refs):
            yield from self.findings_of(vulnerability, where, owner)
        else:
            self.pending.append((vulnerability, where, owner))

    def flush(self) -> Iterator[ImportedFinding]:
        for vulnerability, where, owner in self.pending:
            yield from self.findings_of(vulnerability, where, owner)
        self.pending.clear()

    def findings_of(
        self, vulnerability: Mapping[str, Any], where: str, owner: _Component | None
    ) -> Iterator[ImportedFinding]:
        vulnerability_id = text_of(vulnerability.get("id"))
        if not vulnerability_id:
            raise ImportFormatError(self.filename, "a vulnerability without an id", where)
        severity, cvss_vector, cvss_score, rating_source = _rating(vulnerability.get("ratings"))
        analysis = vulnerability.get("analysis")
        analysis = analysis if isinstance(analysis, Mapping) else {}
        state = text_of(analysis.get("state")).lower() or None
        common: dict[str, Any] = {
            "vulnerability_source": text_of(mapping_of(vulnerability.get("source")).get("name"))
            or None,
            "rating_source": rating_source,
            "vex_state": state,
            "vex_exception": True if state in EXCEPTION_STATES else None,
            "vex_justification": text_of(analysis.get("justification")) or None,
            "vex_response": _strings(analysis.get("response")),
            "vex_detail": text_of(analysis.get("detail"))[:_DETAIL_CAP] or None,
            "product": self.product.label if self.product else None,
        }
        description = text_of(vulnerability.get("description")) or text_of(
            vulnerability.get("detail")
        )
        recommendation = text_of(vulnerability.get("recommendation"))
        if recommendation:
            description = f"{description}\n\nRecommendation: {recommendation}".strip()
        cwe = next((c for c in _cwe_numbers(vulnerability.get("cwes")) if c > 0), None)
        targets: list[tuple[str | None, Any]] = [
            (text_of(a.get("ref")) or None, a.get("versions"))
            for a in list_of(vulnerability.get("affects"))
            if isinstance(a, Mapping)
        ]
        if owner is not None or not targets:
            targets = [(None, None)]
        cve_ids = advisory_ids(
            vulnerability_id,
            *(text_of(mapping_of(r).get("id")) for r in list_of(vulnerability.get("references"))),
        )
        # A tool's own id (OSS Index uses UUIDs) says little to a person: name the CVE too.
        named = vulnerability_id
        if cve_ids and vulnerability_id.lower() not in {i.lower() for i in cve_ids}:
            named = f"{cve_ids[0]} ({vulnerability_id})"
        seen: set[Location] = set()
        for ref, versions in targets:
            component = owner if owner is not None else self.resolve(ref)
            location = Location(purl=component.stable_purl if component else None)
            if location in seen:
                continue  # two refs to versions of one package: one finding
            seen.add(location)
            evidence = dict(common)
            evidence.update(
                bom_ref=ref,
                component_purl=component.purl if component else None,
                component_version=component.version if component else None,
                affected_versions=_versions(versions),
            )
            subject = component.label if component else None
            yield ImportedFinding(
                rule_id=vulnerability_id,
                title=f"{named} in {subject}" if subject else named,
                severity=severity,
                location=location,
                target=self.product.name if self.product else None,
                description=description[:_TEXT_CAP],
                cvss_vector=cvss_vector,
                cvss_score=cvss_score,
                cve_ids=cve_ids,
                cwe=f"CWE-{cwe}" if cwe else None,
                evidence={k: v for k, v in evidence.items() if v not in (None, [], "")},
            )

    def resolve(self, ref: str | None) -> _Component | None:
        """The component a ``ref`` names: by bom-ref, as a package URL, or a BOM-Link's part."""
        if not ref:
            return None
        candidates = [ref]
        if ref.startswith("urn:cdx:") and "#" in ref:
            candidates.append(unquote(ref.partition("#")[2]))
        for candidate in candidates:
            if candidate in self.components:
                return self.components[candidate]
        for candidate in candidates:
            if versionless_purl(candidate):
                parsed = PackageURL.from_string(candidate)
                return _Component(parsed.name, parsed.namespace, parsed.version, candidate)
        return None

    def finish(self, saw_vulnerabilities: bool, where: str) -> Iterator[ImportedFinding]:
        if not saw_vulnerabilities:
            raise ImportFormatError(
                self.filename,
                "a CycloneDX BOM without vulnerabilities: an SBOM, not a VEX or vulnerability "
                "report (nothing to import)",
                where,
            )
        yield from self.flush()


def _refs(vulnerability: Mapping[str, Any]) -> list[str]:
    return [
        text_of(a.get("ref"))
        for a in list_of(vulnerability.get("affects"))
        if isinstance(a, Mapping)
    ]


def _rating(ratings: Any) -> tuple[Severity, str | None, float | None, str | None]:
    """(severity, CVSS vector, CVSS score, rating source) from the strongest rating."""
    best: tuple[Severity, Mapping[str, Any]] | None = None
    for rating in list_of(ratings):
        if not isinstance(rating, Mapping):
            continue
        severity = _rating_severity(rating)
        if severity is not None and (best is None or severity.rank > best[0].rank):
            best = (severity, rating)
    if best is None:
        return UNRATED_SEVERITY, None, None, None
    severity, rating = best
    method = text_of(rating.get("method")).lower()
    vector = text_of(rating.get("vector")) or None
    if vector and not vector.upper().startswith("CVSS:") and method in _CVSS_PREFIX:
        vector = _CVSS_PREFIX[method] + vector
    if vector and not method.startswith("cvss") and not vector.upper().startswith("CVSS:"):
        vector = None  # an OWASP risk rating or similar: not a CVSS vector
    score = rating.get("score")
    cvss_score = (
        float(score)
        if isinstance(score, int | float) and not isinstance(score, bool) and vector
        else None
    )
    source = text_of(mapping_of(rating.get("source")).get("name")) or None
    return severity, vector, cvss_score, source


def _rating_severity(rating: Mapping[str, Any]) -> Severity | None:
    text = text_of(rating.get("severity")).lower()
    if text in _SEVERITY:
        return _SEVERITY[text]
    score = rating.get("score")
    method = text_of(rating.get("method")).lower()
    if isinstance(score, int | float) and method.startswith("cvss"):
        return severity_from_cvss(score)
    return None


def _cwe_numbers(value: Any) -> list[int]:
    numbers = []
    for item in list_of(value):
        try:
            numbers.append(int(str(item).strip().upper().removeprefix("CWE-")))
        except ValueError:
            continue
    return numbers


def _versions(value: Any) -> list[str]:
    """Affected versions as ``"<version or range> (<status>)"``, a few of them."""
    shown = []
    for item in list_of(value)[:_LIST_CAP]:
        if isinstance(item, Mapping):
            what = text_of(item.get("version")) or text_of(item.get("range"))
            status = text_of(item.get("status"))
            if what:
                shown.append(f"{what} ({status})" if status else what)
    return shown


def _component(data: Mapping[str, Any]) -> _Component:
    return _Component(
        name=text_of(data.get("name")) or None,
        group=text_of(data.get("group")) or None,
        version=text_of(data.get("version")) or None,
        purl=text_of(data.get("purl")) or None,
    )


def _strings(value: Any) -> list[str]:
    return [v.strip() for v in list_of(value) if isinstance(v, str) and v.strip()][:_LIST_CAP]


# ------------------------------------------------------------------------------------ JSON

_PRODUCT = "metadata.component"
_COMPONENT = "components.item"
_VULNERABILITY = "vulnerabilities.item"


class _JsonDocument(_Document):
    def __init__(self, stream: BinaryIO, filename: str) -> None:
        super().__init__(filename)
        self.values = JsonValues(
            stream,
            filename,
            collect=(_PRODUCT, _COMPONENT, _VULNERABILITY),
            bounds=("bomFormat", "vulnerabilities"),
        )

    def findings(self) -> Iterator[ImportedFinding]:
        values = self.values
        bom_format: Any = None
        saw_vulnerabilities = False
        for prefix, value in values:
            if prefix == "bomFormat":
                bom_format = value
                if value != "CycloneDX":
                    raise values.error(f"not a CycloneDX document: bomFormat is {value!r}", prefix)
            elif prefix == "vulnerabilities":
                saw_vulnerabilities = saw_vulnerabilities or value is JSON_START
            elif not isinstance(value, Mapping):
                raise values.error(f"expected a JSON object, found {value!r}", prefix)
            elif prefix == _VULNERABILITY:
                yield from self.offer(value, values.where(prefix))
            else:
                self._index_tree(value, product=prefix == _PRODUCT)
        if values.kind != "object":
            raise values.error(f"not a CycloneDX document: the top level is a JSON {values.kind}")
        if bom_format is None:
            raise values.error("not a CycloneDX document: no bomFormat")
        yield from self.finish(saw_vulnerabilities, "the top level")

    def _index_tree(self, data: Mapping[str, Any], *, product: bool = False) -> None:
        component = _component(data)
        if product:
            self.product = component
        self.index(text_of(data.get("bom-ref")) or None, component)
        if component.purl:
            self.index(component.purl, component)
        for child in list_of(data.get("components")):
            if isinstance(child, Mapping):
                self._index_tree(child)


# ------------------------------------------------------------------------------------- XML


class _XmlDocument(_Document):
    def __init__(self, stream: BinaryIO, filename: str) -> None:
        super().__init__(filename)
        self.events = XmlEvents(stream, filename, record_lines=frozenset({"vulnerability"}))

    def findings(self) -> Iterator[ImportedFinding]:
        events = self.events
        saw_vulnerabilities = False
        for event, element in events:
            tag = local_name(element.tag)
            if event == "start":
                if element is events.root and (
                    tag != "bom" or not element.tag.startswith("{" + _BOM_NAMESPACE)
                ):
                    raise ImportFormatError(
                        self.filename,
                        f"not a CycloneDX XML document: the root element is {element.tag}",
                        events.line_of(element),
                    )
                if tag == "vulnerabilities":
                    saw_vulnerabilities = True
                continue
            if tag == "component":
                parent = events.parent
                component = _xml_component(element)
                if parent is not None and local_name(parent.tag) == "metadata":
                    self.product = component
                self.index(element.get("bom-ref"), component)
                if component.purl:
                    self.index(component.purl, component)
                events.discard(element)
            elif tag == "vulnerability":
                owner = self._owner()
                where = events.line_of(element)
                yield from self.offer(_xml_vulnerability(element), where, owner)
                events.discard(element)
        yield from self.finish(saw_vulnerabilities, events.position())

    def _owner(self) -> _Component | None:
        """For the old extension: the component whose <v:vulnerabilities> holds this one."""
        stack = self.events.stack
        if len(stack) >= 2 and local_name(stack[-2].tag) == "component":
            return _xml_component(stack[-2])
        return None


def _xml_children(element: Element, name: str) -> list[Element]:
    return [child for child in element if local_name(child.tag) == name]


def _xml_text(element: Element | None, name: str) -> str:
    if element is None:
        return ""
    for child in element:
        if local_name(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _xml_child(element: Element, name: str) -> Element | None:
    for child in element:
        if local_name(child.tag) == name:
            return child
    return None


def _xml_component(element: Element) -> _Component:
    return _Component(
        name=_xml_text(element, "name") or None,
        group=_xml_text(element, "group") or None,
        version=_xml_text(element, "version") or None,
        purl=_xml_text(element, "purl") or None,
    )


def _xml_vulnerability(element: Element) -> dict[str, Any]:
    """A vulnerability element in the shape of its JSON form (both XML generations)."""
    source = _xml_child(element, "source")
    ratings = []
    for rating in _xml_items(element, "ratings", "rating"):
        score_element = _xml_child(rating, "score")
        nested = score_element is not None and len(score_element) > 0  # old: <score><base>
        score_text = _xml_text(score_element, "base") if nested else _xml_text(rating, "score")
        try:
            score: float | None = float(score_text)
        except ValueError:
            score = None
        ratings.append(
            {
                "score": score,
                "severity": _xml_text(rating, "severity"),
                "method": _xml_text(rating, "method"),
                "vector": _xml_text(rating, "vector"),
                "source": {"name": _xml_text(_xml_child(rating, "source"), "name")},
            }
        )
    affects = [
        {
            "ref": _xml_text(target, "ref"),
            "versions": [
                {
                    "version": _xml_text(version, "version"),
                    "range": _xml_text(version, "range"),
                    "status": _xml_text(version, "status"),
                }
                for version in _xml_items(target, "versions", "version")
            ],
        }
        for target in _xml_items(element, "affects", "target")
    ]
    if not affects and element.get("ref"):
        affects = [{"ref": element.get("ref")}]  # the old extension's way to name a component
    recommendations = [
        _own_text(r) for r in _xml_items(element, "recommendations", "recommendation")
    ]
    analysis = _xml_child(element, "analysis")
    return {
        "id": _xml_text(element, "id"),
        "source": {
            "name": (source.get("name") or _xml_text(source, "name")) if source is not None else ""
        },
        "references": [
            {"id": _xml_text(reference, "id")}
            for reference in _xml_items(element, "references", "reference")
        ],
        "ratings": ratings,
        "cwes": [_own_text(cwe) for cwe in _xml_items(element, "cwes", "cwe")],
        "description": _xml_text(element, "description"),
        "detail": _xml_text(element, "detail"),
        "recommendation": _xml_text(element, "recommendation")
        or "; ".join(r for r in recommendations if r),
        "analysis": {
            "state": _xml_text(analysis, "state"),
            "justification": _xml_text(analysis, "justification"),
            "response": [_own_text(r) for r in _xml_items(analysis, "responses", "response")],
            "detail": _xml_text(analysis, "detail"),
        },
        "affects": affects,
    }


def _xml_items(element: Element | None, list_name: str, item_name: str) -> list[Element]:
    """The ``<item_name>`` children of ``element``'s ``<list_name>`` child."""
    container = _xml_child(element, list_name) if element is not None else None
    return _xml_children(container, item_name) if container is not None else []


def _own_text(element: Element) -> str:
    return (element.text or "").strip()

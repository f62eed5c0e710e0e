"""Grype JSON reports (``grype <image|dir|sbom> -o json``), from the early anchore 0.x output on.

A report is an object with ``matches[]`` (one vulnerability matched to one package each),
then ``source`` (what was scanned), ``distro`` and ``descriptor`` (``"name": "grype"``).
Matches are streamed one at a time. ``ignoredMatches`` (silenced by the user's grype
configuration) are not findings.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id`` = ``vulnerability.id`` (a CVE, GHSA or distribution advisory id, as grype names
  the record it matched);
- ``location.purl`` = the package without version, qualifiers or subpath
  (``pkg:deb/debian/libc6``), from ``artifact.purl`` or built from the artifact type and
  name. The installed version, fixed versions, fix state, data source and the paths the
  package was found at go to the evidence: an upgrade that leaves the package vulnerable is
  the same finding, and a package found at two paths is one finding.

``target`` is ``source.target.userInput`` for an image (else its first tag, repo digest or
image id), the path for a directory or file scan (``.`` is no name). ``source`` comes after
the matches, so a seekable stream is first skimmed for it (in C, without building the
matches); a pipe is read once and its findings are held back until ``source`` arrives.

Severity is grype's (``Negligible`` is info). ``Unknown`` takes the CVSS score's rating when
there is a score, else medium, so an unscored vulnerability still gets a due date.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import ijson

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    UTF8_BOM,
    ImportedFinding,
    Importer,
    JsonValues,
    advisory_ids,
    cvss_base_score,
    json_outline,
    list_of,
    mapping_of,
    package_purl,
    severity_from_cvss,
    text_of,
    versionless_purl,
)

EXPECTED = "a Grype JSON report (an object with matches, source and descriptor)"
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.INFO,
}
UNRATED = Severity.MEDIUM
# grype artifact types -> purl type, for the rare match without an artifact purl.
PURL_TYPES = {
    "apk": "apk",
    "deb": "deb",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "java-archive": "maven",
    "jenkins-plugin": "maven",
    "go-module": "golang",
    "gem": "gem",
    "rust-crate": "cargo",
    "php-composer": "composer",
    "dotnet": "nuget",
    "conan": "conan",
    "hex": "hex",
    "dart-pub": "pub",
    "swift": "swift",
    "cocoapods": "cocoapods",
    "binary": "generic",
}
_CVSS_VERSIONS = ("3.1", "3.0", "4.0", "2.0")
_LIST_CAP = 10


class GrypeImporter(Importer):
    name = "grype"
    description = "Grype JSON report: vulnerable packages of an image, directory or SBOM"

    def sniff(self, head: bytes) -> bool:
        outline = json_outline(head)
        if outline is None or outline.kind != "object" or "matches" not in outline.paths:
            return False
        if outline.values.get("descriptor.name") == "grype":
            return True
        # A large report: only the first matches fit in the head, descriptor comes last.
        return {"matches.item.vulnerability", "matches.item.artifact"} <= outline.paths

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        source = _skim_source(buffered)
        values = JsonValues(
            buffered, filename, ("matches.item", "source", "descriptor.name"), bounds=("matches",)
        )
        target = _target(source) if isinstance(source, Mapping) else None
        target_known = isinstance(source, Mapping)
        held: list[tuple[Mapping[str, Any], str]] = []
        has_matches = False
        for prefix, value in values:
            if prefix == "matches":
                has_matches = True  # [] (or null) is a report without findings
            elif prefix == "matches.item":
                if not isinstance(value, Mapping):
                    raise values.error(
                        f"a match is a JSON {type(value).__name__}, not an object", prefix
                    )
                if target_known:
                    yield _finding(value, target, values, prefix)
                else:
                    held.append((value, values.where(prefix)))
            elif prefix == "source":
                target_known = True
                target = _target(value) if isinstance(value, Mapping) else None
                yield from (_finding(m, target, values, where) for m, where in held)
                held.clear()
            elif prefix == "descriptor.name" and value != "grype":
                raise values.error(f"written by {value!r}, not grype: expected {EXPECTED}", prefix)
        if values.kind != "object" or not has_matches:
            raise values.error(f"no matches: expected {EXPECTED}")
        yield from (_finding(m, target, values, where) for m, where in held)


def _skim_source(buffered: io.BufferedReader) -> Any:
    """``source`` read ahead from a seekable stream (C speed, matches skipped), else None."""
    if not buffered.seekable():
        return None
    start = buffered.tell()
    try:
        if buffered.peek(3)[:3] == UTF8_BOM:
            buffered.read(3)
        return next(ijson.items(buffered, "source", use_float=True), None)
    except ijson.JSONError:
        return None  # the real pass reports the syntax error with its position
    finally:
        buffered.seek(start)


def _finding(
    match: Mapping[str, Any], target: str | None, values: JsonValues, where: str
) -> ImportedFinding:
    vulnerability = mapping_of(match.get("vulnerability"))
    artifact = mapping_of(match.get("artifact"))
    rule_id = text_of(vulnerability.get("id"))
    if not rule_id:
        raise values.error(f"a match without vulnerability.id (at {where})", "matches.item")
    package = text_of(artifact.get("name"))
    related = [r for r in list_of(match.get("relatedVulnerabilities")) if isinstance(r, Mapping)]
    vector, score = _cvss([vulnerability, *related])
    rating = text_of(vulnerability.get("severity")).lower()
    severity = SEVERITIES.get(rating)
    basis = None
    if severity is None:
        from_score = severity_from_cvss(score)
        severity, basis = (from_score, "cvss") if from_score else (UNRATED, "unrated")
    fix = mapping_of(vulnerability.get("fix"))
    evidence = {
        "package": package,
        "installed_version": text_of(artifact.get("version")),
        "package_type": text_of(artifact.get("type")),
        "fixed_versions": [text_of(v) for v in list_of(fix.get("versions")) if text_of(v)],
        "fix_state": text_of(fix.get("state")),
        "data_source": text_of(vulnerability.get("dataSource")),
        "namespace": text_of(vulnerability.get("namespace")),
        "paths": _paths(artifact.get("locations")),
        "severity_basis": basis,
    }
    description = text_of(vulnerability.get("description")) or next(
        (text_of(r.get("description")) for r in related if text_of(r.get("description"))), ""
    )
    return ImportedFinding(
        rule_id=rule_id,
        title=f"{rule_id} in {package}" if package else rule_id,
        severity=severity,
        location=Location(purl=_purl(artifact)),
        target=target,
        description=description,
        cvss_vector=vector,
        cvss_score=score,
        cve_ids=advisory_ids(rule_id, *(r.get("id") for r in related)),
        evidence={k: v for k, v in evidence.items() if v not in (None, "", [])},
    )


def _purl(artifact: Mapping[str, Any]) -> str | None:
    purl = versionless_purl(artifact.get("purl"))
    if purl:
        return purl
    name = text_of(artifact.get("name"))
    purl_type = PURL_TYPES.get(text_of(artifact.get("type")), "generic")
    if purl_type == "maven" and ":" in name:
        group, _, name = name.partition(":")
        return package_purl(purl_type, name, group)
    if purl_type in ("npm", "golang", "composer") and "/" in name:
        namespace, _, name = name.rpartition("/")
        return package_purl(purl_type, name, namespace)
    return package_purl(purl_type, name)


def _cvss(records: list[Mapping[str, Any]]) -> tuple[str | None, float | None]:
    """The vector and score grype's own record gives, else a related (NVD) one; v3 first."""
    candidates: list[tuple[str, str, Any]] = []
    for record in records:
        for entry in list_of(record.get("cvss")):
            if isinstance(entry, Mapping):
                metrics = mapping_of(entry.get("metrics"))
                version = text_of(entry.get("version"))
                candidates.append((version, text_of(entry.get("vector")), metrics.get("baseScore")))
        for key, version in (("cvssV3", "3.x"), ("cvssV2", "2.0")):  # grype before 0.9
            legacy = mapping_of(record.get(key))
            if legacy:
                candidates.append((version, text_of(legacy.get("vector")), legacy.get("baseScore")))
    for wanted in (*_CVSS_VERSIONS, "3.x"):
        for version, vector, score in candidates:
            if vector and version == wanted:
                if isinstance(score, bool) or not isinstance(score, int | float):
                    score = cvss_base_score(vector)
                return vector, float(score) if score is not None else None
    return None, None


def _target(source: Mapping[str, Any]) -> str | None:
    target = source.get("target")
    if isinstance(target, Mapping):
        for key in ("userInput", "tags", "repoDigests", "imageID", "path"):
            value = target.get(key)
            value = value[0] if isinstance(value, list) and value else value
            if text_of(value):
                return text_of(value)
        return None
    name = text_of(target).strip('"')  # some reports quote a directory: "\".\""
    return name if name and name != "." else None


def _paths(locations: Any) -> list[str]:
    paths = [text_of(mapping_of(loc).get("path")) for loc in list_of(locations)]
    return sorted({p for p in paths if p})[:_LIST_CAP]

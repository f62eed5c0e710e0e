"""osv-scanner JSON reports (``osv-scanner --format json``).

A report is an object with ``results[]``: one per scanned source (a lockfile, an SBOM, a git
checkout), each with ``packages[]``, and each package with the full OSV records of its
``vulnerabilities`` and their ``groups`` (osv-scanner's own grouping of records that are
aliases of one another: ``GHSA-...`` and ``PYSEC-...`` describing one CVE). Packages are
streamed one at a time. A 0-byte file is what osv-scanner's JSON output has been seen to be
when there was nothing to report; it is read as no findings when the format is named (the
sniffer cannot tell it from any other empty file).

Identity (the fingerprint is built later from asset + rule_id + location). One finding per
group and package, because a group is one vulnerability under several names:
- ``rule_id`` = the group's CVE when it has exactly one, else its lowest GHSA id, else its
  lowest id. Picked from all the group's ids and aliases, so the rule id stays put when the
  database adds a record for an alias the group already named;
- ``location.purl`` = the package without version (``pkg:pypi/django``), built from the OSV
  ecosystem and name (or read from a package purl). A vulnerable git commit has no package:
  its repository (``pkg:github/owner/name``) when an affected range names one.
The installed version, fixed versions, ecosystem and the lockfile path (absolute and
machine-specific, so never identity) go to the evidence.

``target`` is the source path (the lockfile, SBOM or directory scanned).

Severity: osv-scanner's ``max_severity`` of the group when present, else the highest CVSS
base score of the group's records, else the GHSA rating in ``database_specific``. A
malicious-package record (``MAL-``) without a rating is critical: the package is the attack.
Anything else unrated is medium, so it still gets a due date.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    JSON_END,
    JSON_START,
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

EXPECTED = "an osv-scanner JSON report (an object with results[].packages)"
UNRATED = Severity.MEDIUM
GHSA_SEVERITIES = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}
# OSV ecosystem (before any ":release" suffix) -> (purl type, namespace).
ECOSYSTEM_PURL_TYPES: Mapping[str, tuple[str, str | None]] = {
    "npm": ("npm", None),
    "PyPI": ("pypi", None),
    "Go": ("golang", None),
    "Maven": ("maven", None),
    "crates.io": ("cargo", None),
    "RubyGems": ("gem", None),
    "NuGet": ("nuget", None),
    "Packagist": ("composer", None),
    "Pub": ("pub", None),
    "Hex": ("hex", None),
    "ConanCenter": ("conan", None),
    "CRAN": ("cran", None),
    "Hackage": ("hackage", None),
    "SwiftURL": ("swift", None),
    "GitHub Actions": ("githubactions", None),
    "Debian": ("deb", "debian"),
    "Ubuntu": ("deb", "ubuntu"),
    "Alpine": ("apk", "alpine"),
    "Wolfi": ("apk", "wolfi"),
    "Chainguard": ("apk", "chainguard"),
    "Rocky Linux": ("rpm", "rocky-linux"),
    "AlmaLinux": ("rpm", "almalinux"),
    "Red Hat": ("rpm", "redhat"),
    "openSUSE": ("rpm", "opensuse"),
    "SUSE": ("rpm", "suse"),
    "Mageia": ("rpm", "mageia"),
}
_SLASH_NAMESPACED = frozenset({"npm", "golang", "composer", "swift", "githubactions"})
_GIT_HOSTS = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket"}
_TOP_LEVEL = frozenset({"results", "experimental_config", "image_metadata", "license_summary"})
_LIST_CAP = 20


class OsvScannerImporter(Importer):
    name = "osv-scanner"
    description = "osv-scanner JSON report: vulnerable packages per lockfile, SBOM or commit"

    def sniff(self, head: bytes) -> bool:
        outline = json_outline(head)
        if outline is None or outline.kind != "object" or "results" not in outline.paths:
            return False
        if {"results.item.packages", "results.item.source"} & outline.paths:
            return True
        # No results at all: only a whole document with nothing but osv-scanner's members.
        empty = "results.item" not in outline.values and not any(
            path.startswith("results.item.") for path in outline.paths
        )
        return empty and outline.complete and outline.top_level() <= _TOP_LEVEL

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        if not buffered.peek(1):
            return iter(())  # osv-scanner's "nothing found": a 0-byte file
        return _read(buffered, filename)


@dataclass
class _Group:
    ids: list[str]
    aliases: set[str]
    max_severity: float | None


def _read(stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
    values = JsonValues(
        stream,
        filename,
        ("results.item.source", "results.item.packages.item"),
        bounds=("results", "results.item"),
    )
    source: Mapping[str, Any] = {}
    held: list[tuple[Mapping[str, Any], str]] = []
    has_results = False
    for prefix, value in values:
        if prefix == "results":
            has_results = True  # [] (or null): nothing found
        elif prefix == "results.item":
            if value is not JSON_START and value is not JSON_END:
                raise values.error(
                    f"a result is a JSON {type(value).__name__}, not an object", prefix
                )
            yield from (f for p, w in held for f in _findings(p, source, values, w))
            held.clear()
            source = {}
        elif prefix == "results.item.source":
            source = value if isinstance(value, Mapping) else {}
            yield from (f for p, w in held for f in _findings(p, source, values, w))
            held.clear()
        else:
            if not isinstance(value, Mapping):
                raise values.error(
                    f"a package entry is a JSON {type(value).__name__}, not an object", prefix
                )
            if source:
                yield from _findings(value, source, values, values.where(prefix))
            else:
                held.append((value, values.where(prefix)))
    if values.kind != "object" or not has_results:
        raise values.error(f"no results: expected {EXPECTED}")


def _findings(
    entry: Mapping[str, Any], source: Mapping[str, Any], values: JsonValues, where: str
) -> Iterator[ImportedFinding]:
    package = mapping_of(entry.get("package"))
    records: dict[str, Mapping[str, Any]] = {}
    for record in list_of(entry.get("vulnerabilities")):
        record_id = text_of(record.get("id")) if isinstance(record, Mapping) else ""
        if not record_id:
            raise values.error(f"a vulnerability without an id (in {where})", "results.item")
        records.setdefault(record_id, record)
    for group in _groups(entry.get("groups"), records):
        members = [records[i] for i in group.ids if i in records]
        if members:
            yield _finding(group, members, package, source)


def _groups(raw: Any, records: Mapping[str, Mapping[str, Any]]) -> list[_Group]:
    """osv-scanner's groups, then the records no group mentions (reports before groups
    existed), grouped the way osv-scanner groups them: records sharing an id or alias."""
    groups: list[_Group] = []
    grouped: set[str] = set()
    for item in list_of(raw):
        if not isinstance(item, Mapping):
            continue
        ids = [i for i in (text_of(x) for x in list_of(item.get("ids"))) if i]
        if not ids:
            continue
        aliases = {a for a in (text_of(x) for x in list_of(item.get("aliases"))) if a}
        groups.append(_Group(ids, aliases, _score(item.get("max_severity"))))
        grouped.update(ids)
    loose: list[_Group] = []
    for record_id in records:
        if record_id in grouped:
            continue
        names = {record_id, *_aliases(records[record_id])}
        joined = [g for g in loose if g.aliases & names]
        merged = _Group([record_id], names, None)
        for group in joined:
            loose.remove(group)
            merged.ids[:0] = group.ids
            merged.aliases |= group.aliases
        loose.append(merged)
    groups += loose
    for group in groups:
        group.aliases.update(group.ids)
        for record_id in group.ids:
            if record_id in records:
                group.aliases.update(_aliases(records[record_id]))
    return groups


def _aliases(record: Mapping[str, Any]) -> list[str]:
    return [alias for alias in map(text_of, list_of(record.get("aliases"))) if alias]


def _finding(
    group: _Group,
    members: list[Mapping[str, Any]],
    package: Mapping[str, Any],
    source: Mapping[str, Any],
) -> ImportedFinding:
    rule_id = group_rule_id(group.aliases)
    lead = next((m for m in members if text_of(m.get("id")) == rule_id), None) or min(
        members, key=lambda m: _preference(text_of(m.get("id")))
    )
    name = text_of(package.get("name"))
    ecosystem = text_of(package.get("ecosystem"))
    vector, score = _best_cvss(members)
    severity, basis = _severity(group, members, score)
    cwes = _cwes(members)
    evidence = {
        "package": name,
        "installed_version": text_of(package.get("version")),
        "ecosystem": ecosystem,
        "commit": text_of(package.get("commit")),
        "fixed_versions": _fixed_versions(members, name),
        "ids": sorted(group.ids),
        "manifest": text_of(source.get("path")),
        "source_type": text_of(source.get("type")),
        "data_source": "osv",
        "severity_basis": basis,
        "cwes": cwes if len(cwes) > 1 else None,
    }
    title = text_of(lead.get("summary")) or (f"{rule_id} in {name}" if name else rule_id)
    return ImportedFinding(
        rule_id=rule_id,
        title=title,
        severity=severity,
        location=_location(package, members),
        target=text_of(source.get("path")) or None,
        description=text_of(lead.get("details")),
        cvss_vector=vector,
        cvss_score=score,
        cve_ids=advisory_ids(*group.aliases),
        cwe=cwes[0] if cwes else None,
        evidence={k: v for k, v in evidence.items() if v not in (None, "", [])},
    )


def group_rule_id(ids: Iterable[str]) -> str:
    """The one name of an alias group: its only CVE, else its lowest GHSA, else its lowest id."""
    names = sorted({i.strip() for i in ids if i.strip()})
    cves = [i for i in names if i.upper().startswith("CVE-")]
    if len(cves) == 1:
        return cves[0]
    return min(names, key=_preference)


def _preference(identifier: str) -> tuple[int, str]:
    upper = identifier.upper()
    rank = 0 if upper.startswith("GHSA-") else 1 if not upper.startswith("CVE-") else 2
    return rank, identifier


def _location(package: Mapping[str, Any], members: list[Mapping[str, Any]]) -> Location:
    purl = versionless_purl(package.get("purl"))
    if purl:
        return Location(purl=purl)
    name = text_of(package.get("name"))
    ecosystem = text_of(package.get("ecosystem")).partition(":")[0]
    if name and ecosystem:
        purl_type, namespace = ECOSYSTEM_PURL_TYPES.get(ecosystem, ("generic", None))
        if purl_type == "maven" and ":" in name:
            namespace, _, name = name.partition(":")
        elif purl_type in _SLASH_NAMESPACED and "/" in name:
            namespace, _, name = name.rpartition("/")
        return Location(purl=package_purl(purl_type, name, namespace))
    repository = _repository(members)
    if repository is None:
        return Location()
    host, _, path = repository.partition("/")
    owner, _, project = path.rpartition("/")
    if host in _GIT_HOSTS and owner and project:
        return Location(purl=package_purl(_GIT_HOSTS[host], project, owner))
    return Location(url=f"https://{repository}")


def _repository(members: list[Mapping[str, Any]]) -> str | None:
    """host/path of the git repository a commit-based record names, without scheme or .git."""
    for record in members:
        for affected in list_of(record.get("affected")):
            for range_ in list_of(mapping_of(affected).get("ranges")):
                repo = text_of(mapping_of(range_).get("repo"))
                if repo:
                    repo = repo.split("://", 1)[-1].removesuffix("/").removesuffix(".git")
                    return repo.lower()
    return None


def _severity(
    group: _Group, members: list[Mapping[str, Any]], score: float | None
) -> tuple[Severity, str | None]:
    for candidate, basis in ((group.max_severity, "max_severity"), (score, "cvss")):
        rated = severity_from_cvss(candidate)
        if rated is not None:
            return rated, basis
    ratings = [
        GHSA_SEVERITIES.get(text_of(mapping_of(m.get("database_specific")).get("severity")).upper())
        for m in members
    ]
    known = [r for r in ratings if r is not None]
    if known:
        return max(known, key=lambda s: s.rank), "database_specific"
    if any(text_of(m.get("id")).upper().startswith("MAL-") for m in members):
        return Severity.CRITICAL, "malicious package"
    return UNRATED, "unrated"


def _best_cvss(members: list[Mapping[str, Any]]) -> tuple[str | None, float | None]:
    """The highest-scoring CVSS vector among the group's records (v3 and v4 before v2)."""
    best: tuple[int, float, str] | None = None
    for record in members:
        for entry in list_of(record.get("severity")):
            entry = mapping_of(entry)
            kind = text_of(entry.get("type")).upper()
            vector = text_of(entry.get("score"))
            if not kind.startswith("CVSS_") or not vector:
                continue
            score = cvss_base_score(vector)
            if score is None:
                continue
            candidate = (0 if kind == "CVSS_V2" else 1, score, vector)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return (best[2], best[1]) if best else (None, None)


def _cwes(members: list[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for record in members:
        database = mapping_of(record.get("database_specific"))
        found += [text_of(c) for c in list_of(database.get("cwe_ids"))]
        for affected in list_of(record.get("affected")):
            specific = mapping_of(mapping_of(affected).get("database_specific"))
            found += [text_of(mapping_of(c).get("cweId")) for c in list_of(specific.get("cwes"))]
    return list(dict.fromkeys(c.upper() for c in found if c))


def _fixed_versions(members: list[Mapping[str, Any]], name: str) -> list[str]:
    fixed: list[str] = []
    for record in members:
        for affected in list_of(record.get("affected")):
            affected = mapping_of(affected)
            affected_name = text_of(mapping_of(affected.get("package")).get("name"))
            if name and affected_name and affected_name.lower() != name.lower():
                continue
            for range_ in list_of(affected.get("ranges")):
                if text_of(mapping_of(range_).get("type")).upper() == "GIT":
                    continue
                for event in list_of(mapping_of(range_).get("events")):
                    version = text_of(mapping_of(event).get("fixed"))
                    if version:
                        fixed.append(version)
    return list(dict.fromkeys(fixed))[:_LIST_CAP]


def _score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(text_of(value)) if text_of(value) else None
    except ValueError:
        return None

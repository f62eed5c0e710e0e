"""Pure parser for the sbom engine: the reader's component inventory -> observations.

The reader (``autosec.engines.sbom.read``, run through the subprocess runner) only reads and
normalises the SBOM. Judging its components needs the advisories in the store, which a pure
parser may not read, so the lookup is handed in: an :data:`AdvisoryLookup` (a function from
package keys to advisories). The scan stage passes one backed by the store; tests and the CLI
pass one backed by an in-memory :class:`~autosec.intel.matching.AdvisoryIndex`. One call per
run, whatever the number of components.

What comes out, per SBOM file and package (all versions of a package in one SBOM make one
observation, since a finding's identity is the package without its version):

- ``sbom.vulnerable-component:<VULN>``: the package is affected by a vulnerability. ``<VULN>``
  names the alias group (its lowest CVE id, else its GHSA id, else its record id), so a GHSA
  and a PYSEC for the same CVE are one finding. Severity from the advisories' CVSS vectors,
  else GitHub's rating, else medium (said so in the evidence). Evidence lists every id, the
  fixed version(s) and the versions found.
- ``sbom.unassessed-advisory:<VULN>`` (info): an advisory names the package but its version
  cannot be placed (commit ranges only, an ecosystem without a version ordering): reported,
  not dropped, so a person can look.
- ``sbom.outdated-component`` (low): the freshness policy's ``max_age_days`` is set, and the
  SBOM gives the component's release date (SPDX ``releaseDate``, CycloneDX
  ``releaseNotes.timestamp`` or a release-date property). Most SBOMs carry no release dates;
  components without one are counted, not judged (``undated``): looking dates up in package
  registries would be network access a parser must not make.

Components without a package URL, or with a type no OSV ecosystem covers, cannot be matched:
they are counted in :class:`SbomAssessment` (``unchecked``) for the run's summary.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from packageurl import PackageURL

from autosec.domain.models import Location, Observation, Severity
from autosec.intel.matching import (
    AdvisoryLookup,
    Component,
    Match,
    MatchStatus,
    component_from_purl,
    match_components,
)
from autosec.intel.osv import Advisory

VULNERABLE = "sbom.vulnerable-component"
UNASSESSED = "sbom.unassessed-advisory"
OUTDATED = "sbom.outdated-component"
RULE_PREFIXES = (VULNERABLE, UNASSESSED, OUTDATED)

_GHSA_SEVERITY = {
    "LOW": Severity.LOW,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "HIGH": Severity.HIGH,
    "CRITICAL": Severity.CRITICAL,
}


class SbomParseError(ValueError):
    """The reader's output cannot be used, or the run cannot be judged."""


@dataclass(frozen=True)
class InventoryComponent:
    name: str
    version: str | None
    purl: str | None
    type: str | None = None
    bom_ref: str | None = None
    release_date: date | None = None


@dataclass(frozen=True)
class SbomDocument:
    path: str
    sha256: str
    format: str
    spec_version: str
    components: tuple[InventoryComponent, ...]
    warnings: tuple[str, ...] = ()


@dataclass
class SbomAssessment:
    """Everything one SBOM file said, judged."""

    document: SbomDocument
    matches: list[Match] = field(default_factory=list)
    outdated: list[tuple[InventoryComponent, int]] = field(default_factory=list)
    unchecked: list[tuple[InventoryComponent, str]] = field(default_factory=list)
    undated: int = 0

    @property
    def affected(self) -> list[Match]:
        return [m for m in self.matches if m.status is MatchStatus.AFFECTED]

    @property
    def unknown(self) -> list[Match]:
        return [m for m in self.matches if m.status is MatchStatus.UNKNOWN]

    def counts(self) -> dict[str, int]:
        return {
            "components": len(self.document.components),
            "vulnerable": len({m.component.purl for m in self.affected}),
            "vulnerabilities": len(self.affected),
            "unassessed": len(self.unknown),
            "outdated": len(self.outdated),
            "unchecked": len(self.unchecked),
            "undated": self.undated,
        }


# --- the reader's output ------------------------------------------------------------------


def read_inventory(raw: bytes) -> list[SbomDocument]:
    """The documents in the reader's JSON; :class:`SbomParseError` when it is not that."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SbomParseError(f"sbom reader output is not JSON: {exc}") from exc
    if not isinstance(data, Mapping) or data.get("autosec_sbom_inventory") != 1:
        raise SbomParseError("sbom reader output lacks 'autosec_sbom_inventory': 1")
    documents = data.get("documents")
    if not isinstance(documents, list):
        raise SbomParseError("sbom reader output: 'documents' is not a list")
    return [document_from_mapping(d, index) for index, d in enumerate(documents)]


def document_from_mapping(data: Any, index: int = 0) -> SbomDocument:
    where = f"sbom reader output: documents[{index}]"
    if not isinstance(data, Mapping):
        raise SbomParseError(f"{where}: not an object")
    try:
        components = tuple(
            InventoryComponent(
                name=str(c["name"]),
                version=c.get("version"),
                purl=c.get("purl"),
                type=c.get("type"),
                bom_ref=c.get("bom_ref"),
                release_date=date.fromisoformat(c["release_date"])
                if c.get("release_date")
                else None,
            )
            for c in data["components"]
        )
        return SbomDocument(
            path=str(data["path"]),
            sha256=str(data["sha256"]),
            format=str(data["format"]),
            spec_version=str(data.get("spec_version") or ""),
            components=components,
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SbomParseError(f"{where}: malformed ({type(exc).__name__}: {exc})") from exc


# --- judging --------------------------------------------------------------------------------


def assess(
    documents: Sequence[SbomDocument],
    lookup: AdvisoryLookup,
    *,
    max_age_days: int | None = None,
    today: date | None = None,
) -> list[SbomAssessment]:
    """Match every document's components (one ``lookup`` call), and apply freshness."""
    if max_age_days is not None and today is None:
        raise ValueError("the freshness check needs today's date")
    assessments = [SbomAssessment(d) for d in documents]
    components: dict[str, Component] = {}
    for assessment in assessments:
        for item in assessment.document.components:
            if not item.purl:
                assessment.unchecked.append((item, "no package URL"))
                continue
            try:
                components.setdefault(item.purl, component_from_purl(item.purl))
            except ValueError as exc:
                assessment.unchecked.append((item, str(exc)))
    matches_by_purl: dict[str, list[Match]] = defaultdict(list)
    for match in match_components(components.values(), lookup):
        matches_by_purl[match.component.purl].append(match)
    for assessment in assessments:
        seen: set[str] = set()
        for item in assessment.document.components:
            if item.purl and item.purl in components and item.purl not in seen:
                seen.add(item.purl)
                assessment.matches.extend(matches_by_purl.get(item.purl, ()))
            if max_age_days is None or today is None:
                continue
            if item.release_date is None:
                assessment.undated += 1
            elif (age := (today - item.release_date).days) > max_age_days:
                assessment.outdated.append((item, age))
    return assessments


def observations(
    assessment: SbomAssessment,
    asset_id: str,
    engine: str = "sbom",
    max_age_days: int | None = None,
) -> list[Observation]:
    """The observations of one judged SBOM, one per (rule, package)."""
    path = assessment.document.path
    found: list[Observation] = []
    groups: dict[tuple[str, str], list[Match]] = defaultdict(list)
    for match in assessment.matches:
        prefix = VULNERABLE if match.status is MatchStatus.AFFECTED else UNASSESSED
        groups[(f"{prefix}:{vulnerability_id(match)}", package_of(match.component.purl))].append(
            match
        )
    for (rule_id, package), matches in sorted(groups.items()):
        found.append(_match_observation(rule_id, package, matches, asset_id, engine, path))
    outdated: dict[str, list[tuple[InventoryComponent, int]]] = defaultdict(list)
    for item, age in assessment.outdated:
        outdated[package_of(item.purl) if item.purl else item.name].append((item, age))
    for package, items in sorted(outdated.items()):
        found.append(_outdated_observation(package, items, asset_id, engine, path, max_age_days))
    return found


def parse_sbom_output(
    raw: bytes,
    asset_by_path: Mapping[str, str],
    lookup: AdvisoryLookup,
    engine: str = "sbom",
    *,
    max_age_days: int | None = None,
    today: date | None = None,
) -> list[Observation]:
    """Reader output -> observations, each assigned to the asset of its SBOM's path.

    Every path of ``asset_by_path`` must be in the output (the reader read them all or
    failed), and no other: a run judged on the wrong files must not close anything.
    """
    documents = read_inventory(raw)
    paths = {d.path for d in documents}
    missing = sorted(set(asset_by_path) - paths)
    extra = sorted(paths - set(asset_by_path))
    if missing or extra:
        raise SbomParseError(
            f"sbom reader output does not match the run's targets (missing {missing}, "
            f"unexpected {extra})"
        )
    found: list[Observation] = []
    for assessment in assess(documents, lookup, max_age_days=max_age_days, today=today):
        asset_id = asset_by_path[assessment.document.path]
        found.extend(observations(assessment, asset_id, engine, max_age_days))
    return found


# --- building observations ------------------------------------------------------------------


def vulnerability_id(match: Match) -> str:
    """A stable name for an alias group: lowest CVE, else lowest GHSA, else lowest record id."""
    for prefix in ("CVE-", "GHSA-"):
        ids = sorted(i for i in match.ids if i.startswith(prefix))
        if ids:
            return ids[0]
    return sorted(match.advisory_ids)[0]


def package_of(purl: str) -> str:
    """The package URL without version, qualifiers and subpath (a finding's identity)."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return purl.split("?", 1)[0].split("#", 1)[0]
    return PackageURL(parsed.type, parsed.namespace, parsed.name).to_string()


def _match_observation(
    rule_id: str, package: str, matches: list[Match], asset_id: str, engine: str, path: str
) -> Observation:
    first = matches[0]
    component = first.component
    versions = sorted({m.component.version or "?" for m in matches})
    ids = sorted({i for m in matches for i in m.ids})
    fixed = list(dict.fromkeys(f for m in matches for f in m.fixed_versions))
    advisories = _unique_advisories(a for m in matches for a in m.advisories)
    vuln = rule_id.split(":", 1)[1]
    affected = first.status is MatchStatus.AFFECTED
    severity, vector, score, source = (
        advisory_severity(advisories) if affected else (Severity.INFO, None, None, "unassessed")
    )
    others = [i for i in ids if i != vuln]
    label = f"{vuln} ({', '.join(others)})" if others else vuln
    if affected:
        title = f"{component.name} {', '.join(versions)}: {label}"
        fix = f"Fixed in {', '.join(fixed)}." if fixed else "No fixed version is named."
    else:
        title = f"{component.name} {', '.join(versions)}: {label} could not be assessed"
        fix = "Check the advisory by hand: " + "; ".join(
            dict.fromkeys(n for m in matches for n in m.notes)
        )
    summary = next((a.summary for a in advisories if a.summary), "")
    description = " ".join(p for p in (summary.strip(), fix) if p)
    cwes = sorted({c for a in advisories for c in a.cwe_ids})
    return Observation(
        asset_id=asset_id,
        engine=engine,
        rule_id=rule_id,
        title=title,
        severity=severity,
        location=Location(file=path, purl=package),
        description=description,
        cvss_vector=vector,
        cvss_score=score,
        cve_ids=tuple(i for i in ids if i.startswith("CVE-")),
        cwe=cwes[0] if cwes else None,
        evidence={
            "sbom": path,
            "package": package,
            "ecosystem": component.ecosystem,
            "purls": sorted({m.component.purl for m in matches}),
            "versions": versions,
            "advisory_ids": sorted({i for m in matches for i in m.advisory_ids}),
            "ids": ids,
            "fixed_versions": fixed,
            "notes": list(dict.fromkeys(n for m in matches for n in m.notes)),
            "severity_source": source,
            "references": list(dict.fromkeys(r for a in advisories for r in a.references))[:10],
        },
    )


def _outdated_observation(
    package: str,
    items: list[tuple[InventoryComponent, int]],
    asset_id: str,
    engine: str,
    path: str,
    max_age_days: int | None,
) -> Observation:
    oldest = max(age for _, age in items)
    versions = sorted({i.version or "?" for i, _ in items})
    name = items[0][0].name
    return Observation(
        asset_id=asset_id,
        engine=engine,
        rule_id=OUTDATED,
        title=f"{name} {', '.join(versions)} was released {oldest} days ago",
        severity=Severity.LOW,
        location=Location(file=path, purl=package if package.startswith("pkg:") else None),
        description=(
            f"The freshness policy allows software at most {max_age_days} days old; this "
            "component is older. Old dependencies collect unpatched weaknesses and drift from "
            "supported versions: plan an upgrade."
        ),
        evidence={
            "sbom": path,
            "package": package,
            "versions": versions,
            "release_dates": sorted({str(i.release_date) for i, _ in items if i.release_date}),
            "age_days": oldest,
            "max_age_days": max_age_days,
        },
    )


def _unique_advisories(advisories: Iterable[Advisory]) -> list[Advisory]:
    seen: dict[str, Advisory] = {}
    for advisory in advisories:
        seen.setdefault(advisory.id, advisory)
    return [seen[k] for k in sorted(seen)]


def advisory_severity(
    advisories: Iterable[Advisory],
) -> tuple[Severity, str | None, float | None, str]:
    """(severity, best CVSS vector, its base score, where the severity came from).

    The highest CVSS base score among the advisories' vectors wins; without a usable vector,
    GitHub's rating; without either, medium, and the evidence says it was a default.
    """
    best: tuple[float, str, Severity] | None = None
    rated: list[Severity] = []
    for advisory in advisories:
        for vector in advisory.severity:
            scored = _cvss(vector.type, vector.score)
            if scored is not None and (best is None or scored[0] > best[0]):
                best = (scored[0], vector.score, scored[1])
        label = advisory.ghsa_severity
        if label in _GHSA_SEVERITY:
            rated.append(_GHSA_SEVERITY[label])
    if best is not None:
        return best[2], best[1], best[0], "cvss"
    if rated:
        return max(rated, key=lambda s: s.rank), None, None, "ghsa"
    return Severity.MEDIUM, None, None, "default (the advisories state no severity)"


def _cvss(kind: str, vector: str) -> tuple[float, Severity] | None:
    from cvss import CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V3" or vector.startswith("CVSS:3"):
            parsed = CVSS3(vector)
            score, label = float(parsed.scores()[0]), parsed.severities()[0]
        elif kind == "CVSS_V4" or vector.startswith("CVSS:4"):
            parsed4 = CVSS4(vector)
            score, label = float(parsed4.base_score), parsed4.severity
        else:
            return None
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
    if str(label).lower() == "none":
        return score, Severity.INFO
    return score, Severity.parse(str(label))


def assessment_report(assessment: SbomAssessment) -> dict[str, Any]:
    """A JSON-ready account of one judged SBOM, component by component (the CLI prints it)."""
    document = assessment.document

    def match_entry(match: Match) -> dict[str, Any]:
        severity, vector, score, source = advisory_severity(match.advisories)
        return {
            "purl": match.component.purl,
            "ecosystem": match.component.ecosystem,
            "name": match.component.name,
            "version": match.component.version,
            "vulnerability": vulnerability_id(match),
            "ids": list(match.ids),
            "advisory_ids": list(match.advisory_ids),
            "cve_ids": list(match.cve_ids),
            "fixed_versions": list(match.fixed_versions),
            "severity": severity.value
            if match.status is MatchStatus.AFFECTED
            else Severity.INFO.value,
            "cvss_vector": vector,
            "cvss_score": score,
            "severity_source": source,
            "summary": next((a.summary for a in match.advisories if a.summary), ""),
            "notes": list(match.notes),
        }

    return {
        "sbom": document.path,
        "sha256": document.sha256,
        "format": document.format,
        "spec_version": document.spec_version,
        "warnings": list(document.warnings),
        "counts": assessment.counts(),
        "vulnerable": [match_entry(m) for m in assessment.affected],
        "unassessed": [match_entry(m) for m in assessment.unknown],
        "outdated": [
            {
                "name": item.name,
                "version": item.version,
                "purl": item.purl,
                "release_date": item.release_date.isoformat() if item.release_date else None,
                "age_days": age,
            }
            for item, age in assessment.outdated
        ],
        "unchecked": [
            {"name": item.name, "version": item.version, "purl": item.purl, "reason": reason}
            for item, reason in assessment.unchecked
        ],
    }

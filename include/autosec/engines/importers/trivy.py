"""Trivy JSON reports (``trivy image|fs|repo|config|rootfs --format json``).

Two shapes are read. The current one (``SchemaVersion`` 2, Trivy 0.20 and later) is an object
with ``ArtifactName`` and ``Results[]``, each result carrying ``Vulnerabilities``,
``Misconfigurations`` and ``Secrets``. The legacy one is a bare array of results, or the literal
``null`` when there was nothing to report. Both are streamed: one vulnerability,
misconfiguration or secret is in memory at a time, never the report.

Identity (the fingerprint is built later from asset + rule_id + location):
- vulnerabilities: ``rule_id`` = ``VulnerabilityID``; ``location.purl`` = the package without
  version, qualifiers or subpath (``pkg:deb/debian/openssl``), from ``PkgIdentifier.PURL``,
  the older ``Ref``, or else built from the result ``Type`` and ``PkgName`` the way Trivy
  builds it. The installed and fixed versions, the lockfile or OS (``Target``) and the data
  source go to the evidence: an upgrade that leaves the package vulnerable, or the same
  package found again from another scan root, stays the same finding. An entry without a
  ``VulnerabilityID`` names no vulnerability and is skipped.
- misconfigurations: ``rule_id`` = the AVD id (``AVDID``, or ``ID`` spelt the AVD way:
  ``DS002`` and ``DS-0002`` are ``AVD-DS-0002``, so the rule id survives Trivy's renamings);
  ``location`` = the file (``Target``) and ``CauseMetadata.StartLine``. Only failures are
  findings: checks Trivy lists as passed or excepted (``--include-non-failures``) are not.
- secrets: ``rule_id`` = ``RuleID``; ``location`` = the file and ``StartLine``. ``Match`` (and
  ``Secret``, where a report has one) are kept only as ``conceal``'s hash and masked preview;
  the code excerpt is dropped.
License findings are not security findings and are not read.

``target`` is ``ArtifactName`` (the image, directory or repository scanned; ``.`` is no name).
The legacy shape has none: import it with ``--asset``.

The sniffer claims an object with ``SchemaVersion`` and ``Results`` or ``ArtifactName``, or a
legacy array whose first element is a result (``Target`` with ``Vulnerabilities``, ``Type`` or
``Class``). It does not claim the literal ``null``: gitleaks v7 writes it too, and guessing
wrong would close every finding of the other tool; name the format for such a file.
Trivy's SARIF and CycloneDX outputs are read by those importers; trivy-operator's Kubernetes
reports and ``trivy k8s`` summaries are other formats.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from autosec.domain.models import Location, Severity
from autosec.domain.secrets import conceal
from autosec.engines.importers.base import (
    JSON_END,
    JSON_START,
    ImportedFinding,
    Importer,
    JsonValues,
    advisory_ids,
    cvss_base_score,
    json_outline,
    package_purl,
    severity_from_cvss,
    text_of,
    versionless_purl,
)

SCHEMA_VERSION = 2
EXPECTED = "a Trivy JSON report (an object with SchemaVersion and Results, or a legacy array)"
SEVERITIES = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}
# Trivy's UNKNOWN (typically a CVE nobody has scored yet): the CVSS score when there is one,
# else medium, so it gets a due date instead of hiding as "info".
UNRATED = Severity.MEDIUM
_FINDING_LISTS = ("Vulnerabilities", "Misconfigurations", "Secrets")
_RESULT_FIELDS = ("Target", "Class", "Type")

# Result ``Type`` of language packages -> purl type (as Trivy itself writes PkgIdentifier.PURL).
LANGUAGE_PURL_TYPES = {
    "bundler": "gem",
    "gemspec": "gem",
    "cargo": "cargo",
    "rustbinary": "cargo",
    "composer": "composer",
    "composer-vendor": "composer",
    "gobinary": "golang",
    "gomod": "golang",
    "jar": "maven",
    "pom": "maven",
    "gradle": "maven",
    "sbt": "maven",
    "npm": "npm",
    "yarn": "npm",
    "pnpm": "npm",
    "bun": "npm",
    "node-pkg": "npm",
    "javascript": "npm",
    "nuget": "nuget",
    "dotnet-core": "nuget",
    "packages-props": "nuget",
    "pip": "pypi",
    "pipenv": "pypi",
    "poetry": "pypi",
    "uv": "pypi",
    "python-pkg": "pypi",
    "conda-pkg": "conda",
    "conda-environment": "conda",
    "pub": "pub",
    "hex": "hex",
    "conan": "conan",
    "cocoapods": "cocoapods",
    "swift": "swift",
    "julia": "julia",
}
# Result ``Type`` of OS packages -> (purl type, namespace).
OS_PURL_TYPES = {
    "alpine": ("apk", "alpine"),
    "wolfi": ("apk", "wolfi"),
    "chainguard": ("apk", "chainguard"),
    "debian": ("deb", "debian"),
    "ubuntu": ("deb", "ubuntu"),
    "redhat": ("rpm", "redhat"),
    "centos": ("rpm", "centos"),
    "rocky": ("rpm", "rocky"),
    "alma": ("rpm", "alma"),
    "amazon": ("rpm", "amazon"),
    "oracle": ("rpm", "oracle"),
    "fedora": ("rpm", "fedora"),
    "photon": ("rpm", "photon"),
    "cbl-mariner": ("rpm", "cbl-mariner"),
    "azurelinux": ("rpm", "azurelinux"),
    "opensuse": ("rpm", "opensuse"),
    "opensuse.leap": ("rpm", "opensuse"),
    "opensuse.tumbleweed": ("rpm", "opensuse"),
    "suse linux enterprise server": ("rpm", "suse"),
    "suse linux enterprise micro": ("rpm", "suse"),
    "sles": ("rpm", "suse"),
}
_SLASH_NAMESPACED = frozenset({"composer", "npm", "golang", "swift"})
_CHECK_ID = re.compile(r"^(?:AVD-)?([A-Z]+)-?(\d+)$")


class TrivyImporter(Importer):
    name = "trivy"
    description = "Trivy JSON report: vulnerable packages, misconfigurations and secrets"

    def sniff(self, head: bytes) -> bool:
        outline = json_outline(head)
        if outline is None:
            return False
        if outline.kind == "object":
            top = outline.top_level()
            return "SchemaVersion" in top and bool({"Results", "ArtifactName"} & top)
        if outline.kind == "array":
            return "item.Target" in outline.paths and any(
                f"item.{key}" in outline.paths for key in ("Vulnerabilities", "Type", "Class")
            )
        return False

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        return _TrivyReader(stream, filename).findings()


@dataclass
class _Result:
    """One ``Results[]`` element: its context, and findings read before its ``Target``."""

    prefix: str
    fields: dict[str, str] = field(default_factory=dict)
    pending: list[tuple[str, str, Any]] = field(default_factory=list)


class _TrivyReader:
    def __init__(self, stream: BinaryIO, filename: str) -> None:
        collect = ["SchemaVersion", "ArtifactName", "ArtifactType"]
        for results in ("Results.item", "item"):
            collect += [f"{results}.{key}" for key in _RESULT_FIELDS]
            collect += [f"{results}.{key}.item" for key in _FINDING_LISTS]
        self.values = JsonValues(stream, filename, collect, bounds=("Results.item", "item"))
        self.filename = filename
        self.artifact: str | None = None
        self.recognised = False

    def findings(self) -> Iterator[ImportedFinding]:
        result: _Result | None = None
        for prefix, value in self.values:
            if prefix in ("Results.item", "item"):
                if value is JSON_START:
                    result = _Result(prefix)
                    self.recognised = True
                    continue
                if value is not JSON_END or result is None:
                    raise self.values.error(
                        f"a result is a JSON {type(value).__name__}, not an object", prefix
                    )
                if "Target" not in result.fields:
                    raise self.values.error("a result without a Target", prefix)
                yield from self._flush(result)
                result = None
                continue
            if result is None:
                self._top_level(prefix, value)
                continue
            key = prefix[len(result.prefix) + 1 :]
            if key in _RESULT_FIELDS:
                result.fields[key] = value if isinstance(value, str) else ""
                continue
            kind = key.partition(".")[0]
            if not isinstance(value, Mapping):
                raise self.values.error(
                    f"a {kind} entry is a JSON {type(value).__name__}, not an object", prefix
                )
            if "Target" in result.fields:
                yield from self._flush(result)
                finding = self._finding(kind, value, result.fields, prefix)
                if finding is not None:
                    yield finding
            else:
                result.pending.append((kind, prefix, value))
        if self.values.kind not in ("object", "array", "null"):
            raise self.values.error(f"the document is a JSON {self.values.kind}, not {EXPECTED}")
        if self.values.kind == "object" and not self.recognised:
            raise self.values.error(
                f"no SchemaVersion, ArtifactName or Results: expected {EXPECTED}"
            )

    def _top_level(self, prefix: str, value: Any) -> None:
        self.recognised = True
        if prefix == "SchemaVersion" and value != SCHEMA_VERSION:
            raise self.values.error(
                f"Trivy SchemaVersion {value!r} is not supported (expected {SCHEMA_VERSION})",
                prefix,
            )
        if prefix == "ArtifactName" and isinstance(value, str):
            name = value.strip()
            self.artifact = name if name and name != "." else None

    def _flush(self, result: _Result) -> Iterator[ImportedFinding]:
        pending, result.pending = result.pending, []
        for kind, prefix, value in pending:
            finding = self._finding(kind, value, result.fields, prefix)
            if finding is not None:
                yield finding

    def _finding(
        self, kind: str, item: Mapping[str, Any], result: Mapping[str, str], prefix: str
    ) -> ImportedFinding | None:
        if kind == "Vulnerabilities":
            return _vulnerability(item, result, self.artifact)
        if kind == "Misconfigurations":
            return _misconfiguration(item, result, self.artifact)
        finding = _secret(item, result, self.artifact)
        if finding is None:
            raise self.values.error("a secret without a RuleID", prefix)
        return finding


def _vulnerability(
    item: Mapping[str, Any], result: Mapping[str, str], artifact: str | None
) -> ImportedFinding | None:
    rule_id = text_of(item.get("VulnerabilityID"))
    if not rule_id:
        return None
    package = text_of(item.get("PkgName"))
    installed = text_of(item.get("InstalledVersion"))
    identifier = item.get("PkgIdentifier")
    purl = (
        versionless_purl(identifier.get("PURL") if isinstance(identifier, Mapping) else None)
        or versionless_purl(item.get("Ref"))
        or _built_purl(result.get("Type", ""), package)
    )
    vector, score = _cvss(item)
    severity, basis = _severity(item, score)
    cwes = _cwes(item.get("CweIDs"))
    scanned = "os" if _is_os_result(result) else "manifest"
    evidence = _compact(
        {
            "package": package,
            "installed_version": installed,
            "fixed_versions": _versions(item.get("FixedVersion")),
            "status": text_of(item.get("Status")),
            "package_path": text_of(item.get("PkgPath")),
            scanned: result.get("Target"),
            "data_source": _data_source(item.get("DataSource")),
            "severity_source": text_of(item.get("SeveritySource")),
            "severity_basis": basis,
            "reference": text_of(item.get("PrimaryURL")),
            "cwes": cwes if len(cwes) > 1 else None,
        }
    )
    title = text_of(item.get("Title")) or f"{rule_id} in {package or 'a package'}"
    return ImportedFinding(
        rule_id=rule_id,
        title=title,
        severity=severity,
        location=Location(purl=purl),
        target=artifact,
        description=text_of(item.get("Description")),
        cvss_vector=vector,
        cvss_score=score,
        cve_ids=advisory_ids(rule_id),
        cwe=cwes[0] if cwes else None,
        evidence=evidence,
    )


def _misconfiguration(
    item: Mapping[str, Any], result: Mapping[str, str], artifact: str | None
) -> ImportedFinding | None:
    status = text_of(item.get("Status")).upper()
    if status and status != "FAIL":
        return None
    rule_id = check_id(item)
    if not rule_id:
        return None
    cause = item.get("CauseMetadata")
    cause = cause if isinstance(cause, Mapping) else {}
    severity, basis = _severity(item, None)
    evidence = _compact(
        {
            "check_id": text_of(item.get("ID")),
            "check_type": text_of(item.get("Type")),
            "provider": text_of(cause.get("Provider")),
            "service": text_of(cause.get("Service")),
            "resource": text_of(cause.get("Resource")),
            "end_line": _line(cause.get("EndLine")),
            "resolution": text_of(item.get("Resolution")),
            "reference": text_of(item.get("PrimaryURL")),
            "severity_basis": basis,
        }
    )
    message = text_of(item.get("Message"))
    description = text_of(item.get("Description"))
    return ImportedFinding(
        rule_id=rule_id,
        title=text_of(item.get("Title")) or rule_id,
        severity=severity,
        location=Location(file=result.get("Target") or None, line=_line(cause.get("StartLine"))),
        target=artifact,
        description="\n\n".join(part for part in (message, description) if part),
        evidence=evidence,
    )


def _secret(
    item: Mapping[str, Any], result: Mapping[str, str], artifact: str | None
) -> ImportedFinding | None:
    rule_id = text_of(item.get("RuleID"))
    if not rule_id:
        return None
    severity, basis = _severity(item, None)
    evidence = _compact(
        {
            "category": text_of(item.get("Category")),
            "end_line": _line(item.get("EndLine")),
            "severity_basis": basis,
        }
    )
    secret = item.get("Secret") if isinstance(item.get("Secret"), str) else item.get("Match")
    if isinstance(secret, str) and secret:
        evidence.update(conceal(secret))
    return ImportedFinding(
        rule_id=rule_id,
        title=text_of(item.get("Title")) or f"Secret ({rule_id})",
        severity=severity,
        location=Location(file=result.get("Target") or None, line=_line(item.get("StartLine"))),
        target=artifact,
        cwe="CWE-798",
        evidence=evidence,
    )


def check_id(item: Mapping[str, Any]) -> str:
    """The check's AVD id, the one spelling every Trivy version can be mapped to.

    Older reports carry only ``ID`` (``DS002``, ``KSV014``), later ones add ``AVDID``
    (``AVD-DS-0002``), newer checks spell ``ID`` with a dash (``DS-0002``): all one check.
    """
    avd_id = text_of(item.get("AVDID")).upper()
    if avd_id:
        return avd_id
    raw = text_of(item.get("ID"))
    match = _CHECK_ID.match(raw.upper())
    if match is None:
        return raw
    return f"AVD-{match.group(1)}-{int(match.group(2)):04d}"


def _is_os_result(result: Mapping[str, str]) -> bool:
    """OS packages: by ``Class``, or (legacy reports have none) by the result ``Type``."""
    if "Class" in result:
        return result["Class"] == "os-pkgs"
    return result.get("Type", "").strip().lower() in OS_PURL_TYPES


def _built_purl(result_type: str, package: str) -> str | None:
    """The versionless purl Trivy would write for a package of this result type."""
    if not package:
        return None
    kind = result_type.strip().lower()
    if kind in OS_PURL_TYPES:
        purl_type, namespace = OS_PURL_TYPES[kind]
        return package_purl(purl_type, package, namespace)
    purl_type = LANGUAGE_PURL_TYPES.get(kind, "generic")
    if purl_type == "maven" and ":" in package:
        group, _, artifact = package.partition(":")
        return package_purl("maven", artifact, group)
    if purl_type in _SLASH_NAMESPACED and "/" in package:
        namespace, _, name = package.rpartition("/")
        return package_purl(purl_type, name, namespace)
    return package_purl(purl_type, package)


def _severity(item: Mapping[str, Any], cvss_score: float | None) -> tuple[Severity, str | None]:
    """Trivy's rating; when it has none (UNKNOWN), the CVSS score's, else ``UNRATED``.

    The second value says which fallback decided (None when Trivy rated the finding).
    """
    rated = SEVERITIES.get(text_of(item.get("Severity")).upper())
    if rated is not None:
        return rated, None
    from_score = severity_from_cvss(cvss_score)
    if from_score is not None:
        return from_score, "cvss"
    return UNRATED, "unrated"


def _cvss(item: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The CVSS vector and score of the severity source, else NVD, else any; v3 first."""
    scores = item.get("CVSS")
    if not isinstance(scores, Mapping) or not scores:
        return None, None
    preferred = [text_of(item.get("SeveritySource")), "nvd", "ghsa", *sorted(scores)]
    sources = [scores[s] for s in dict.fromkeys(preferred) if isinstance(scores.get(s), Mapping)]
    for version in ("V3", "V40", "V2"):
        for source in sources:
            vector = text_of(source.get(f"{version}Vector"))
            score = source.get(f"{version}Score")
            if vector:
                if isinstance(score, bool) or not isinstance(score, int | float):
                    score = cvss_base_score(vector)
                return vector, float(score) if score is not None else None
    return None, None


def _data_source(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return text_of(value.get("ID")) or text_of(value.get("Name")) or None
    return None


def _versions(value: Any) -> list[str]:
    """``FixedVersion`` lists every fixed release, comma-separated: "1.2.5, 2.0.1"."""
    if not isinstance(value, str):
        return []
    return [version.strip() for version in value.split(",") if version.strip()]


def _cwes(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [cwe.strip().upper() for cwe in value if isinstance(cwe, str) and cwe.strip()]


def _line(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value > 0 else None


def _compact(evidence: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in evidence.items() if value not in (None, "", [])}

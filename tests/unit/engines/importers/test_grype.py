"""Grype JSON reports: one finding per match, package identity without versions, late source."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from autosec.domain.fingerprint import fingerprint
from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.grype import GrypeImporter
from autosec.engines.importers.registry import sniff_format

FIXTURES = Path(__file__).parent / "fixtures"
GRYPE = FIXTURES / "grype"
importer = GrypeImporter()


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like a report piped from another process."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 512))  # small reads, like a pipe
        buffer[: len(chunk)] = chunk
        return len(chunk)


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_json(document: object, name: str = "report.json") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(json.dumps(document).encode()), name))


def byte_position(error: ImportFormatError) -> int:
    match = re.fullmatch(r"byte (\d+)", error.position or "")
    assert match, f"position {error.position!r} is not a byte offset"
    return int(match.group(1))


@pytest.mark.parametrize("name", ["empty.json", "one.json", "many.json", "bom_crlf.json"])
def test_sniff_claims_grype_reports(name: str) -> None:
    assert importer.sniff(head_of((GRYPE / name).read_bytes()))


def test_sniff_claims_a_large_report_whose_descriptor_is_beyond_the_head() -> None:
    data = (GRYPE / "many.json").read_bytes()
    head = data[: data.index(b'"ignoredMatches"')]  # no source, no descriptor in sight
    assert importer.sniff(head_of(head))


@pytest.mark.parametrize("name", ["empty.json", "one.json", "many.json", "bom_crlf.json"])
def test_the_registry_sniffs_these_reports_as_grype(name: str) -> None:
    """No importer earlier in the sniffing order claims them first."""
    assert sniff_format((GRYPE / name).read_bytes()) == "grype"


@pytest.mark.parametrize(
    "head",
    [
        b'{"matches": []}',  # nothing says grype
        b'{"matches": [], "descriptor": {"name": "syft"}}',
        b'{"matches": [{"template-id": "x", "matched-at": "https://x"}]}',
        b'{"artifacts": [], "source": {"type": "image"}, "descriptor": {"name": "syft"}}',
        b'[{"RuleID": "generic-api-key", "Match": "k=1", "Secret": "1"}]',
        b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}',
        b"null",
    ],
)
def test_sniff_leaves_other_documents_alone(head: bytes) -> None:
    assert not importer.sniff(head_of(head))


@pytest.mark.parametrize(
    "other", ["trivy/one.json", "osv_scanner/one.json", "sarif/one.sarif"], ids=str
)
def test_sniff_does_not_claim_the_other_package_reports(other: str) -> None:
    assert not importer.sniff(head_of((FIXTURES / other).read_bytes()))


def test_a_report_without_matches_has_no_findings() -> None:
    assert parse(GRYPE / "empty.json") == []


def test_one_match_is_identified_by_advisory_and_package_without_version() -> None:
    [finding] = parse(GRYPE / "one.json")
    assert finding.rule_id == "CVE-2023-45853"
    assert finding.location == Location(purl="pkg:deb/debian/zlib1g")
    assert finding.target == "registry.example.com/shop/web:2.0.1"
    assert finding.severity is Severity.CRITICAL
    # grype's own record has no CVSS: the related NVD record's is taken.
    assert finding.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert finding.cvss_score == 9.8
    assert finding.cve_ids == ("CVE-2023-45853",)
    assert finding.description.startswith("MiniZip in zlib through 1.3")
    assert finding.evidence == {
        "package": "zlib1g",
        "installed_version": "1:1.2.13.dfsg-1",
        "package_type": "deb",
        "fix_state": "wont-fix",
        "data_source": "https://security-tracker.debian.org/tracker/CVE-2023-45853",
        "namespace": "debian:distro:debian:12",
        "paths": ["/usr/share/doc/zlib1g/copyright", "/var/lib/dpkg/status"],
    }


def test_many_maps_grype_severities_and_builds_missing_purls() -> None:
    findings = parse(GRYPE / "many.json")
    assert [(f.rule_id, f.location.purl, f.severity) for f in findings] == [
        ("GHSA-9wx4-h78v-vm56", "pkg:pypi/requests", Severity.MEDIUM),
        ("CVE-2024-12797", "pkg:generic/openssl", Severity.MEDIUM),  # Unknown: unrated
        ("CVE-2019-18276", "pkg:deb/debian/bash", Severity.INFO),  # Negligible
        ("CVE-2022-42889", "pkg:maven/org.apache.commons/commons-text", Severity.CRITICAL),
        ("CVE-2022-42889", "pkg:maven/org.apache.commons/commons-text", Severity.CRITICAL),
    ]  # the ignored match is not a finding
    assert {f.target for f in findings} == {"/src/shop-web"}
    requests, unknown, bash, jar, second_jar = findings
    assert requests.cve_ids == ("CVE-2024-35195", "GHSA-9wx4-h78v-vm56")
    assert requests.evidence["fixed_versions"] == ["2.32.0"]
    assert unknown.evidence["severity_basis"] == "unrated"
    assert bash.cvss_score == 7.8  # v3.1 preferred over the v2 entry
    assert jar.cvss_score == 9.8  # computed from the vector grype gave without a score
    # The same jar at two paths is one finding once fingerprinted: same identity.
    assert (jar.rule_id, jar.location) == (second_jar.rule_id, second_jar.location)
    assert jar.evidence["paths"] != second_jar.evidence["paths"]


def test_an_upgrade_that_stays_vulnerable_keeps_the_fingerprint() -> None:
    report = json.loads((GRYPE / "one.json").read_text())
    before = parse_json(report)[0]
    artifact = report["matches"][0]["artifact"]
    artifact["version"] = "1:1.2.13.dfsg-1+b1"
    artifact["purl"] = "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1%2Bb1?arch=arm64&distro=debian-12"
    report["descriptor"]["version"] = "0.90.0"
    after = parse_json(report)[0]
    assert after.evidence["installed_version"] == "1:1.2.13.dfsg-1+b1"
    assert fingerprint(after.to_observation("a", "import:grype")) == fingerprint(
        before.to_observation("a", "import:grype")
    )


def test_a_piped_report_waits_for_the_source_before_naming_the_target() -> None:
    data = (GRYPE / "many.json").read_bytes()
    piped = list(importer.parse(Pipe(data), "many.json"))
    assert piped == parse(GRYPE / "many.json")
    assert {f.target for f in piped} == {"/src/shop-web"}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ({"type": "image", "target": {"userInput": "busybox:1.36"}}, "busybox:1.36"),
        (
            {"type": "image", "target": {"tags": ["quay.io/x/y:1"], "imageID": "sha256:1"}},
            "quay.io/x/y:1",
        ),
        ({"type": "image", "target": {"imageID": "sha256:1"}}, "sha256:1"),
        ({"type": "directory", "target": "."}, None),
        ({"type": "directory", "target": '"."'}, None),
        ({"type": "file", "target": "/builds/shop/sbom.json"}, "/builds/shop/sbom.json"),
    ],
)
def test_the_target_is_what_grype_was_pointed_at(source: dict, target: str | None) -> None:
    report = json.loads((GRYPE / "one.json").read_text())
    report["source"] = source
    assert parse_json(report)[0].target == target


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(GRYPE / "bom_crlf.json") == parse(GRYPE / "one.json")


def test_a_truncated_report_names_the_file_and_where_it_ends() -> None:
    path = GRYPE / "truncated.json"
    with pytest.raises(ImportFormatError) as caught:
        parse(path)
    assert caught.value.filename == "truncated.json"
    assert byte_position(caught.value) == path.stat().st_size
    assert "premature EOF" in caught.value.problem


def test_a_doubled_comma_is_located_and_explained() -> None:
    data = (GRYPE / "malformed.json").read_bytes()
    with pytest.raises(ImportFormatError) as caught:
        parse(GRYPE / "malformed.json")
    doubled = data.index(b",,") + 1
    assert doubled <= byte_position(caught.value) <= doubled + 1
    assert "must be a string" in caught.value.problem


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"source": {}, "descriptor": {"name": "grype"}}, "no matches"),
        ({"matches": [], "descriptor": {"name": "syft"}}, "written by 'syft', not grype"),
        ({"matches": ["CVE-2024-1"]}, "a match is a JSON str"),
        (
            {"matches": [{"vulnerability": {}, "artifact": {"name": "x"}}]},
            "without vulnerability.id",
        ),
        ([{"matches": []}], "no matches"),
    ],
)
def test_a_readable_document_that_is_not_a_grype_report_is_refused(
    document: object, problem: str
) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(problem)) as caught:
        parse_json(document, "odd.json")
    assert caught.value.filename == "odd.json"


def test_parsing_twice_gives_the_same_identities() -> None:
    def identities() -> list[tuple[str, Location]]:
        return [(f.rule_id, f.location) for f in parse(GRYPE / "many.json")]

    assert identities() == identities()

"""osv-scanner JSON reports: one finding per alias group and package, stable group names."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.osv_scanner import OsvScannerImporter, group_rule_id
from autosec.engines.importers.registry import sniff_format

FIXTURES = Path(__file__).parent / "fixtures"
OSV = FIXTURES / "osv_scanner"
importer = OsvScannerImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_json(document: object, name: str = "report.json") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(json.dumps(document).encode()), name))


def byte_position(error: ImportFormatError) -> int:
    match = re.fullmatch(r"byte (\d+)", error.position or "")
    assert match, f"position {error.position!r} is not a byte offset"
    return int(match.group(1))


@pytest.mark.parametrize("name", ["no_results.json", "one.json", "many.json", "bom_crlf.json"])
def test_sniff_claims_osv_scanner_reports(name: str) -> None:
    assert importer.sniff(head_of((OSV / name).read_bytes()))


@pytest.mark.parametrize("name", ["no_results.json", "one.json", "many.json", "bom_crlf.json"])
def test_the_registry_sniffs_these_reports_as_osv_scanner(name: str) -> None:
    """No importer earlier in the sniffing order claims them first."""
    assert sniff_format((OSV / name).read_bytes()) == "osv-scanner"


@pytest.mark.parametrize(
    "head",
    [
        b"",  # a 0-byte file could be anything's "nothing found": the format must be named
        b'{"results": [], "errors": [], "paths": {"scanned": []}, "version": "1.95.0"}',  # semgrep
        b'{"errors": [], "generated_at": "2025-01-01T00:00:00Z", "metrics": {}, "results": []}',
        b'{"results": [{"check_id": "python.lang.eval", "path": "a.py", "start": {}}]}',
        b'{"results": [{"test_id": "B101", "filename": "a.py"}]}',  # bandit
        b'{"results": [], "version": "2.1.0", "runs": []}',
        b'[{"Target": "a", "Vulnerabilities": []}]',
        b"null",
    ],
)
def test_sniff_leaves_other_documents_alone(head: bytes) -> None:
    assert not importer.sniff(head_of(head))


@pytest.mark.parametrize("other", ["trivy/one.json", "grype/one.json", "sarif/one.sarif"], ids=str)
def test_sniff_does_not_claim_the_other_package_reports(other: str) -> None:
    assert not importer.sniff(head_of((FIXTURES / other).read_bytes()))


@pytest.mark.parametrize("name", ["empty.json", "no_results.json"])
def test_a_report_without_findings_has_none(name: str) -> None:
    assert parse(OSV / name) == []


def test_a_zero_byte_file_is_no_findings_but_a_bom_alone_is_not_a_report() -> None:
    assert (OSV / "empty.json").stat().st_size == 0
    with pytest.raises(ImportFormatError, match="empty file"):
        list(importer.parse(io.BytesIO(b"\xef\xbb\xbf"), "bom-only.json"))


def test_one_alias_group_is_one_finding_named_by_its_cve() -> None:
    [finding] = parse(OSV / "one.json")  # GHSA-h5c8-rqwp-cp95 and PYSEC-2024-5: one group
    assert finding.rule_id == "CVE-2024-22195"
    assert finding.location == Location(purl="pkg:pypi/jinja2")
    assert finding.target == "/home/runner/work/shop/shop/backend/requirements.txt"
    assert finding.severity is Severity.MEDIUM  # max_severity 5.4
    assert finding.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"
    assert finding.cvss_score == 5.4
    assert finding.cve_ids == ("CVE-2024-22195", "GHSA-h5c8-rqwp-cp95")
    assert finding.cwe == "CWE-79"
    assert finding.title.startswith("Jinja vulnerable to HTML attribute injection")
    assert finding.evidence == {
        "package": "Jinja2",
        "installed_version": "3.1.2",
        "ecosystem": "PyPI",
        "fixed_versions": ["3.1.3"],
        "ids": ["GHSA-h5c8-rqwp-cp95", "PYSEC-2024-5"],
        "manifest": "/home/runner/work/shop/shop/backend/requirements.txt",
        "source_type": "lockfile",
        "data_source": "osv",
        "severity_basis": "max_severity",
    }


def test_many_covers_ecosystems_malicious_packages_and_vulnerable_commits() -> None:
    findings = parse(OSV / "many.json")
    assert [(f.rule_id, f.location, f.severity) for f in findings] == [
        ("CVE-2023-45133", Location(purl="pkg:npm/%40babel/traverse"), Severity.CRITICAL),
        ("GHSA-8348-2q94-ffjx", Location(purl="pkg:npm/flot-axis"), Severity.CRITICAL),
        ("CVE-2021-3121", Location(purl="pkg:golang/github.com/gogo/protobuf"), Severity.MEDIUM),
        (
            "CVE-2022-42889",
            Location(purl="pkg:maven/org.apache.commons/commons-text"),
            Severity.CRITICAL,
        ),
        ("CVE-2023-50094", Location(purl="pkg:github/yogeshojha/rengine"), Severity.HIGH),
    ]
    babel, malicious, gogo, text, commit = findings
    assert babel.evidence["fixed_versions"] == ["7.23.2", "8.0.0-alpha.4"]
    assert babel.evidence["cwes"] == ["CWE-184", "CWE-697"]
    assert malicious.evidence["severity_basis"] == "malicious package"
    assert malicious.evidence["ids"] == ["MAL-2023-1035"]
    assert gogo.evidence["severity_basis"] == "unrated"  # Go's database rates nothing
    assert text.evidence["severity_basis"] == "max_severity"
    assert commit.evidence["commit"] == "f5f3c22f3ed5a6804a2a8d9ee9fa43044cfa24a6"
    assert commit.evidence["source_type"] == "git"
    assert [f.target for f in findings] == [
        "/src/shop/web/package-lock.json",
        "/src/shop/web/package-lock.json",
        "/src/shop/api/go.mod",
        "/src/shop/billing/pom.xml",
        "/src/vendor/rengine",
    ]


def test_the_rule_id_survives_the_database_adding_an_alias_record() -> None:
    """osv-scanner's test data a/b: GO-2021-0053 alone, then grouped with its GHSA record."""
    report = json.loads((OSV / "many.json").read_text())
    before = parse_json(report)[2]
    later = copy.deepcopy(report)
    package = later["results"][1]["packages"][0]
    package["vulnerabilities"].append(
        {
            "id": "GHSA-c3h9-896r-86jm",
            "aliases": ["CVE-2021-3121"],
            "summary": "Improper Input Validation in GoGo Protobuf",
            "severity": [
                {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:H"}
            ],
        }
    )
    package["groups"] = [{"ids": ["GHSA-c3h9-896r-86jm", "GO-2021-0053"]}]
    after = parse_json(later)[2]
    assert (after.rule_id, after.location) == (before.rule_id, before.location)
    assert after.rule_id == "CVE-2021-3121"
    assert after.severity is Severity.HIGH  # the new record brought a score (8.6)
    assert after.evidence["ids"] == ["GHSA-c3h9-896r-86jm", "GO-2021-0053"]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["PYSEC-2023-74", "GHSA-j8r2-6x86-q33q", "CVE-2023-32681"], "CVE-2023-32681"),
        (["GHSA-q7rv-6hp3-vh96", "CVE-2022-24775", "CVE-2023-29197"], "GHSA-q7rv-6hp3-vh96"),
        (["MAL-2023-1035", "GHSA-8348-2q94-ffjx"], "GHSA-8348-2q94-ffjx"),
        (["RUSTSEC-2022-0013", "PYSEC-2020-1"], "PYSEC-2020-1"),
    ],
)
def test_a_group_is_named_by_its_only_cve_else_its_lowest_ghsa(ids: list, expected: str) -> None:
    assert group_rule_id(ids) == expected
    assert group_rule_id(reversed(ids)) == expected


def test_records_without_groups_are_grouped_by_shared_aliases() -> None:
    """Reports from before osv-scanner wrote groups: the aliases still make one finding."""
    report = json.loads((OSV / "many.json").read_text())
    package = json.loads((OSV / "one.json").read_text())["results"][0]["packages"][0]
    del package["groups"]
    package["vulnerabilities"].append({"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1111"]})
    report["results"][0]["packages"] = [package]
    findings = parse_json(report)[:2]
    assert [(f.rule_id, f.evidence["ids"]) for f in findings] == [
        ("CVE-2024-22195", ["GHSA-h5c8-rqwp-cp95", "PYSEC-2024-5"]),
        ("CVE-2099-1111", ["PYSEC-2099-1"]),
    ]
    # Without max_severity: the highest CVSS base score among the group's records.
    assert findings[0].evidence["severity_basis"] == "cvss"
    assert findings[1].evidence["severity_basis"] == "unrated"


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(OSV / "bom_crlf.json") == parse(OSV / "one.json")


def test_a_truncated_report_names_the_file_and_where_it_ends() -> None:
    path = OSV / "truncated.json"
    with pytest.raises(ImportFormatError) as caught:
        parse(path)
    assert caught.value.filename == "truncated.json"
    assert byte_position(caught.value) == path.stat().st_size


def test_an_unquoted_version_is_located_in_the_value() -> None:
    data = (OSV / "malformed.json").read_bytes()
    with pytest.raises(ImportFormatError) as caught:
        parse(OSV / "malformed.json")
    value = data.index(b"3.1.2")
    assert value <= byte_position(caught.value) < value + len(b"3.1.2")
    assert "malformed JSON" in caught.value.problem


@pytest.mark.parametrize(
    ("document", "problem", "position"),
    [
        ({"matches": []}, "no results", None),
        ({"results": ["lockfile"]}, "a result is a JSON str", "results[0]"),
        ({"results": [{"source": {"path": "a"}, "packages": [[]]}]}, "a package entry", None),
        (
            {"results": [{"source": {"path": "a"}, "packages": [{"vulnerabilities": [{}]}]}]},
            "a vulnerability without an id",
            None,
        ),
        ([], "no results", None),
    ],
)
def test_a_readable_document_that_is_not_an_osv_scanner_report_is_refused(
    document: object, problem: str, position: str | None
) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(problem)) as caught:
        parse_json(document, "odd.json")
    assert caught.value.filename == "odd.json"
    if position is not None:
        assert caught.value.position == position


def test_parsing_twice_gives_the_same_identities() -> None:
    def identities() -> list[tuple[str, Location]]:
        return [(f.rule_id, f.location) for f in parse(OSV / "many.json")]

    assert identities() == identities()

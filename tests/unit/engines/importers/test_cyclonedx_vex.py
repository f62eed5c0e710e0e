"""CycloneDX VEX and BOMs with vulnerabilities (JSON, XML): a finding per vulnerability and ref."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.cyclonedx_vex import EXCEPTION_STATES, CycloneDxVexImporter

FIXTURES = Path(__file__).parent / "fixtures"
VEX = FIXTURES / "cyclonedx_vex"
importer = CycloneDxVexImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_bytes(data: bytes, name: str = "vex.json") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(data), name))


def by_rule(findings: list[ImportedFinding]) -> dict[str, list[ImportedFinding]]:
    grouped: dict[str, list[ImportedFinding]] = {}
    for finding in findings:
        grouped.setdefault(finding.rule_id, []).append(finding)
    return grouped


@pytest.mark.parametrize(
    "name",
    [
        "empty.json",
        "one.json",
        "many.json",
        "many_bom_crlf.json",
        "one.xml",
        "legacy_extension.xml",
    ],
)
def test_sniff_claims_cyclonedx_documents_with_vulnerabilities(name: str) -> None:
    assert importer.sniff(head_of((VEX / name).read_bytes()))


@pytest.mark.parametrize(
    "path",
    [
        VEX / "sbom.json",
        FIXTURES / "gitleaks" / "many.json",
        FIXTURES / "nuclei" / "many_array.json",
        FIXTURES / "zap" / "many.xml",
        FIXTURES / "nmap_xml" / "many.xml",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_leaves_sboms_and_other_documents_alone(path: Path) -> None:
    assert not importer.sniff(head_of(path.read_bytes()))


def test_sniff_refuses_an_xml_sbom_that_only_declares_the_vulnerability_namespace() -> None:
    sbom = (
        b'<?xml version="1.0"?>\n<bom xmlns="http://cyclonedx.org/schema/bom/1.1" '
        b'xmlns:v="http://cyclonedx.org/schema/ext/vulnerability/1.0" version="1">\n'
        b"<components><component type='library'><name>yaspin</name></component></components>"
    )
    assert not importer.sniff(sbom)
    assert importer.sniff(sbom + b"<v:vulnerabilities><v:vulnerability ref='x'>")


def test_sniff_wants_the_cyclonedx_bom_format_and_an_array() -> None:
    assert not importer.sniff(b'{"bomFormat": "SPDX", "vulnerabilities": []}')
    assert not importer.sniff(b'{"bomFormat": "CycloneDX", "vulnerabilities": null}')
    assert importer.sniff(b'{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-20')


def test_a_document_with_an_empty_vulnerability_list_has_no_findings() -> None:
    assert parse(VEX / "empty.json") == []


def test_an_sbom_is_refused_so_importing_one_by_mistake_closes_nothing() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse(VEX / "sbom.json")
    assert caught.value.filename == "sbom.json"
    assert "SBOM" in caught.value.problem


def test_one_vulnerability_is_located_by_its_package_without_version() -> None:
    [finding] = parse(VEX / "one.json")
    assert finding.rule_id == "CVE-2021-44228"
    assert finding.location == Location(purl="pkg:maven/org.apache.logging.log4j/log4j-core")
    assert finding.title == "CVE-2021-44228 in org.apache.logging.log4j/log4j-core 2.14.1"
    assert finding.severity is Severity.CRITICAL
    assert finding.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"
    assert finding.cvss_score == 10.0
    assert finding.cve_ids == ("CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q")
    assert finding.cwe == "CWE-502"
    assert finding.target == "shop-api"
    assert "Recommendation: Upgrade to 2.17.1" in finding.description
    evidence = finding.evidence
    assert evidence["vex_state"] == "exploitable"
    assert "vex_exception" not in evidence
    assert evidence["vex_response"] == ["update"]
    assert evidence["component_version"] == "2.14.1"
    assert (
        evidence["component_purl"]
        == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar"
    )
    assert evidence["affected_versions"] == ["2.14.1 (affected)"]


def test_the_xml_form_gives_the_same_finding_as_the_json_form() -> None:
    assert parse(VEX / "one.xml") == parse(VEX / "one.json")


def test_many_vulnerabilities_listed_before_their_components_still_resolve() -> None:
    findings = parse(VEX / "many.json")
    grouped = by_rule(findings)
    assert Counter(f.rule_id for f in findings) == {
        "CVE-2022-42889": 1,
        "GHSA-j8r2-6x86-q33q": 1,  # a purl ref and a BOM-Link to another version: one package
        "SNYK-PYTHON-DJANGO-5750790": 1,
        "CVE-2024-0001": 2,
        "CVE-2023-44487": 1,
    }
    assert grouped["CVE-2022-42889"][0].location.purl == "pkg:maven/org.apache.commons/commons-text"
    assert grouped["GHSA-j8r2-6x86-q33q"][0].location.purl == "pkg:pypi/requests"
    assert grouped["SNYK-PYTHON-DJANGO-5750790"][0].location.purl == "pkg:pypi/django"  # nested
    assert {f.location for f in grouped["CVE-2024-0001"]} == {
        Location(purl="pkg:generic/bmc-firmware"),  # a component without a package URL
        Location(),  # a ref that names nothing: the asset as a whole
    }
    assert grouped["CVE-2023-44487"][0].location.purl == "pkg:generic/acme/storefront"
    assert {f.target for f in findings} == {"storefront"}


def test_severity_is_the_strongest_rating_and_unrated_is_medium() -> None:
    severity = {f.rule_id: f.severity for f in parse(VEX / "many.json")}
    assert severity == {
        "CVE-2022-42889": Severity.CRITICAL,  # NVD critical beats the vendor's "none"
        "GHSA-j8r2-6x86-q33q": Severity.MEDIUM,
        "SNYK-PYTHON-DJANGO-5750790": Severity.HIGH,  # CVSS 7.5 without a severity word
        "CVE-2024-0001": Severity.MEDIUM,  # no rating at all
        "CVE-2023-44487": Severity.HIGH,
    }


def test_vex_states_are_carried_and_exceptions_marked_but_still_emitted() -> None:
    grouped = by_rule(parse(VEX / "many.json"))
    states = {rule: found[0].evidence.get("vex_state") for rule, found in grouped.items()}
    assert states == {
        "CVE-2022-42889": "not_affected",
        "GHSA-j8r2-6x86-q33q": "in_triage",
        "SNYK-PYTHON-DJANGO-5750790": "false_positive",
        "CVE-2024-0001": None,
        "CVE-2023-44487": "resolved",
    }
    for found in grouped.values():
        state = found[0].evidence.get("vex_state")
        assert found[0].evidence.get("vex_exception", False) is (state in EXCEPTION_STATES)
    not_affected = grouped["CVE-2022-42889"][0].evidence
    assert not_affected["vex_justification"] == "code_not_reachable"
    assert not_affected["vex_detail"] == "StringSubstitutor is never called with untrusted input."


def test_a_tools_own_id_keeps_the_rule_and_names_the_cve_for_people() -> None:
    [snyk] = by_rule(parse(VEX / "many.json"))["SNYK-PYTHON-DJANGO-5750790"]
    assert snyk.cve_ids == ("CVE-2023-36053",)
    assert snyk.title == "CVE-2023-36053 (SNYK-PYTHON-DJANGO-5750790) in Django 4.2.1"
    assert snyk.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"


def test_the_old_xml_extension_attaches_vulnerabilities_to_their_component() -> None:
    findings = parse(VEX / "legacy_extension.xml")
    assert [(f.rule_id, f.location.purl, f.severity) for f in findings] == [
        ("GHSA-xgxc-v2qg-chmh", "pkg:generic/Django", Severity.LOW),
        ("CVE-2021-33203", "pkg:generic/Django", Severity.MEDIUM),
        (
            "CVE-2019-14379",
            "pkg:maven/com.fasterxml.jackson.core/jackson-databind",
            Severity.CRITICAL,
        ),
    ]
    assert findings[1].cwe == "CWE-22"
    assert findings[1].cvss_score == 4.9
    assert "Recommendation: Upgrade to 2.2.24" in findings[1].description
    assert {f.target for f in findings} == {"registry.example.com/shop/api:3.2.0"}
    assert all("urn:uuid" not in repr(f.location) for f in findings)


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(VEX / "many_bom_crlf.json") == parse(VEX / "many.json")


def test_parsing_twice_gives_the_same_identities() -> None:
    first = Counter((f.rule_id, f.location) for f in parse(VEX / "many.json"))
    assert first == Counter((f.rule_id, f.location) for f in parse(VEX / "many.json"))


def test_a_malformed_document_names_the_file_and_the_byte_offset() -> None:
    data = (VEX / "malformed.json").read_bytes()
    start = data.index(b'"CVE-2024-0001",,') + len(b'"CVE-2024-0001",')
    with pytest.raises(ImportFormatError) as caught:
        parse(VEX / "malformed.json")
    assert caught.value.filename == "malformed.json"
    match = re.fullmatch(r"byte (\d+)", caught.value.position or "")
    assert match and start <= int(match.group(1)) <= start + 1


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_xml_entity_declarations_are_refused(name: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse(VEX / name)
    assert caught.value.filename == name
    assert caught.value.position is not None and caught.value.position.startswith("line 2")


def test_a_vulnerability_without_id_names_its_place() -> None:
    data = b'{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-1"}, {"affects": []}]}'
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data)
    assert caught.value.position == "vulnerabilities[1]"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"bomFormat": "SPDX", "vulnerabilities": []}', "bomFormat is 'SPDX'"),
        (b'{"vulnerabilities": []}', "no bomFormat"),
        (b'[{"bomFormat": "CycloneDX"}]', "top level is a JSON array"),
        (b'<?xml version="1.0"?><bom><vulnerabilities/></bom>', "root element is bom"),
    ],
)
def test_documents_that_are_not_cyclonedx_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data)
    assert problem in caught.value.problem

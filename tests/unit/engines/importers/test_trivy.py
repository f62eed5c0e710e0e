"""Trivy JSON reports: current and legacy shapes, package identity without versions, streaming."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from autosec.domain.fingerprint import fingerprint
from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.registry import sniff_format
from autosec.engines.importers.trivy import TrivyImporter, check_id

FIXTURES = Path(__file__).parent / "fixtures"
TRIVY = FIXTURES / "trivy"
importer = TrivyImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_json(document: object, name: str = "report.json") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(json.dumps(document).encode()), name))


def one_report() -> dict:
    return json.loads((TRIVY / "one.json").read_text())


def byte_position(error: ImportFormatError) -> int:
    match = re.fullmatch(r"byte (\d+)", error.position or "")
    assert match, f"position {error.position!r} is not a byte offset"
    return int(match.group(1))


@pytest.mark.parametrize(
    "name", ["empty.json", "one.json", "many.json", "legacy.json", "bom_crlf.json"]
)
def test_sniff_claims_current_and_legacy_reports(name: str) -> None:
    assert importer.sniff(head_of((TRIVY / name).read_bytes()))


@pytest.mark.parametrize("name", ["one.json", "many.json", "legacy.json", "bom_crlf.json"])
def test_the_registry_sniffs_these_reports_as_trivy(name: str) -> None:
    """No importer earlier in the sniffing order claims them first."""
    assert sniff_format((TRIVY / name).read_bytes()) == "trivy"


@pytest.mark.parametrize(
    "head",
    [
        b"null",  # gitleaks v7 writes it too: the format must be named
        b"[]",
        b'{"SchemaVersion": 2}',
        b'{"ArtifactName": "x", "Results": []}',  # no SchemaVersion: not the current shape
        b'{"apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "ConfigAuditReport",'
        b' "report": {"checks": []}}',
        b'[{"RuleID": "aws-access-key", "Secret": "x", "File": "a.py", "StartLine": 1}]',
        b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": []}',
        b'{"template-id": "tech-detect", "matched-at": "https://x"}\n{"template-id": "y"}',
        b"",
        b"<?xml version='1.0'?><nmaprun/>",
    ],
)
def test_sniff_leaves_other_documents_alone(head: bytes) -> None:
    assert not importer.sniff(head_of(head))


@pytest.mark.parametrize(
    "other", ["grype/one.json", "osv_scanner/one.json", "sarif/one.sarif"], ids=str
)
def test_sniff_does_not_claim_the_other_package_reports(other: str) -> None:
    assert not importer.sniff(head_of((FIXTURES / other).read_bytes()))


@pytest.mark.parametrize("name", ["empty.json", "legacy_null.json"])
def test_a_report_without_findings_has_none(name: str) -> None:
    assert parse(TRIVY / name) == []


def test_one_vulnerability_is_identified_by_package_and_advisory_not_version() -> None:
    [finding] = parse(TRIVY / "one.json")
    assert finding.rule_id == "CVE-2024-5535"
    assert finding.location == Location(purl="pkg:deb/debian/libssl3")
    assert finding.target == "registry.example.com/shop/api:1.4.2"
    assert finding.severity is Severity.CRITICAL
    # The severity source (debian) has no CVSS entry: NVD's vector is taken.
    assert finding.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H"
    assert finding.cvss_score == 9.1
    assert finding.cve_ids == ("CVE-2024-5535",)
    assert finding.cwe == "CWE-200"
    assert finding.title == "openssl: SSL_select_next_proto buffer overread"
    assert finding.evidence == {
        "package": "libssl3",
        "installed_version": "3.0.14-1~deb12u1",
        "fixed_versions": ["3.0.15-1~deb12u1"],
        "status": "fixed",
        "os": "registry.example.com/shop/api:1.4.2 (debian 12.7)",
        "data_source": "debian",
        "severity_source": "debian",
        "reference": "https://avd.aquasec.com/nvd/cve-2024-5535",
    }


def test_an_upgrade_that_stays_vulnerable_keeps_the_fingerprint() -> None:
    report = one_report()
    vulnerability = report["Results"][0]["Vulnerabilities"][0]
    before = parse_json(report)[0]
    vulnerability["InstalledVersion"] = "3.0.14-1~deb12u2"
    vulnerability["PkgIdentifier"]["PURL"] = (
        "pkg:deb/debian/libssl3@3.0.14-1~deb12u2?arch=arm64&distro=debian-12.8"
    )
    vulnerability["Title"] = "reworded by a newer database"
    vulnerability["LastModifiedDate"] = "2025-01-01T00:00:00Z"
    report["Results"][0]["Target"] = "registry.example.com/shop/api:1.4.3 (debian 12.8)"
    after = parse_json(report)[0]
    assert after.evidence["installed_version"] == "3.0.14-1~deb12u2"
    assert fingerprint(after.to_observation("asset-1", importer.engine_name)) == fingerprint(
        before.to_observation("asset-1", importer.engine_name)
    )
    other_package = json.loads(json.dumps(report))
    other_package["Results"][0]["Vulnerabilities"][0]["PkgIdentifier"]["PURL"] = (
        "pkg:deb/debian/openssl@3.0.14-1~deb12u2"
    )
    moved = parse_json(other_package)[0]
    assert fingerprint(moved.to_observation("asset-1", "import:trivy")) != fingerprint(
        before.to_observation("asset-1", "import:trivy")
    )


def test_many_reads_vulnerabilities_failed_checks_and_secrets_only() -> None:
    findings = parse(TRIVY / "many.json")
    assert [(f.rule_id, f.location) for f in findings] == [
        ("CVE-2023-32681", Location(purl="pkg:pypi/requests")),
        ("GHSA-9wx4-h78v-vm56", Location(purl="pkg:pypi/requests")),
        ("CVE-2099-0001", Location(purl="pkg:pypi/flask-login")),
        ("CVE-2024-4068", Location(purl="pkg:npm/braces")),
        ("CVE-2024-21538", Location(purl="pkg:npm/%40babel/traverse")),
        ("AVD-DS-0002", Location(file="deploy/Dockerfile", line=1)),
        ("aws-access-key-id", Location(file="deploy/.env.production", line=3)),
    ]  # DS026 passed and the license finding is not a security finding
    assert {f.target for f in findings} == {"github.com/example/shop"}
    by_rule = {f.rule_id: f for f in findings}
    requests = by_rule["CVE-2023-32681"]
    assert requests.cve_ids == ("CVE-2023-32681",)
    assert requests.cwe == "CWE-200"
    assert requests.evidence["cwes"] == ["CWE-200", "CWE-670"]
    assert requests.evidence["manifest"] == "backend/requirements.txt"
    misconfiguration = by_rule["AVD-DS-0002"]
    assert misconfiguration.severity is Severity.HIGH
    assert misconfiguration.evidence["check_id"] == "DS002"
    assert misconfiguration.evidence["end_line"] == 9
    assert misconfiguration.description.startswith("Specify at least 1 USER command")


def test_unknown_severity_falls_back_to_the_cvss_score_then_to_medium() -> None:
    by_rule = {f.rule_id: f for f in parse(TRIVY / "many.json")}
    scored = by_rule["GHSA-9wx4-h78v-vm56"]  # a vector without a score: computed (5.6)
    assert scored.cvss_score == 5.6
    assert scored.severity is Severity.MEDIUM
    assert scored.evidence["severity_basis"] == "cvss"
    assert scored.cve_ids == ("GHSA-9wx4-h78v-vm56",)
    unrated = by_rule["CVE-2099-0001"]
    assert unrated.severity is Severity.MEDIUM
    assert unrated.cvss_score is None
    assert unrated.evidence["severity_basis"] == "unrated"
    assert unrated.evidence["fixed_versions"] == ["0.6.4", "0.7.1"]


def test_a_secret_is_kept_only_as_hash_and_masked_preview() -> None:
    [secret] = [f for f in parse(TRIVY / "many.json") if f.rule_id == "aws-access-key-id"]
    match = "AWS_ACCESS_KEY_ID=AKIAZ7QXEXAMPLE4KEY7"
    assert secret.evidence["secret_sha256"] == hashlib.sha256(match.encode()).hexdigest()
    assert "AKIAZ7QXEXAMPLE4KEY7" not in repr(secret)
    assert "AKIAZ7QX" not in json.dumps(secret.evidence)
    assert secret.severity is Severity.CRITICAL
    assert secret.cwe == "CWE-798"


def test_no_timestamps_or_descriptions_reach_identity_or_evidence() -> None:
    for finding in parse(TRIVY / "many.json") + parse(TRIVY / "one.json"):
        identity = json.dumps([finding.rule_id, finding.location.as_dict(), finding.evidence])
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:", identity)
        assert "leaking Proxy-Authorization" not in identity


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"ID": "DS002"}, "AVD-DS-0002"),
        ({"ID": "DS-0002"}, "AVD-DS-0002"),
        ({"ID": "DS002", "AVDID": "AVD-DS-0002"}, "AVD-DS-0002"),
        ({"ID": "KSV014"}, "AVD-KSV-0014"),
        ({"ID": "AVD-AWS-0143", "AVDID": "AVD-AWS-0143"}, "AVD-AWS-0143"),
        ({"ID": "custom-policy"}, "custom-policy"),
    ],
)
def test_a_check_keeps_one_rule_id_across_trivy_spellings(item: dict, expected: str) -> None:
    assert check_id(item) == expected


def test_the_legacy_array_builds_purls_from_the_result_type() -> None:
    findings = parse(TRIVY / "legacy.json")
    assert [(f.rule_id, f.location.purl, f.target) for f in findings] == [
        ("CVE-2018-16840", "pkg:apk/alpine/curl", None),
        ("CVE-2022-31090", "pkg:composer/guzzlehttp/guzzle", None),
    ]  # the entry without a VulnerabilityID names nothing and is skipped
    assert findings[0].evidence["os"] == "shop-api (alpine 3.7.1)"
    assert findings[1].evidence["manifest"] == "app/composer.lock"


def test_findings_written_before_their_results_target_still_get_it() -> None:
    report = one_report()
    result = report["Results"][0]
    report["Results"][0] = {
        "Vulnerabilities": result["Vulnerabilities"],
        "Target": result["Target"],
        "Class": result["Class"],
        "Type": result["Type"],
    }
    [reordered] = parse_json(report)
    assert reordered.location == Location(purl="pkg:deb/debian/libssl3")
    assert reordered.evidence["os"] == result["Target"]


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(TRIVY / "bom_crlf.json") == parse(TRIVY / "one.json")


def test_a_truncated_report_names_the_file_and_where_it_ends() -> None:
    path = TRIVY / "truncated.json"
    with pytest.raises(ImportFormatError) as caught:
        parse(path)
    assert caught.value.filename == "truncated.json"
    assert byte_position(caught.value) == path.stat().st_size
    assert "premature EOF" in caught.value.problem
    assert str(caught.value).startswith("truncated.json at byte ")


def test_a_missing_comma_is_located_at_the_unexpected_token() -> None:
    data = (TRIVY / "malformed.json").read_bytes()
    with pytest.raises(ImportFormatError) as caught:
        parse(TRIVY / "malformed.json")
    token = data.index(b'"PkgIdentifier"')  # where a comma was expected
    assert token <= byte_position(caught.value) < token + len(b'"PkgIdentifier"')
    assert "expect ',' or '}'" in caught.value.problem


def test_findings_stream_out_before_a_later_error() -> None:
    """Streaming: the findings before a broken tail are handed out first, then the error."""
    data = (TRIVY / "many.json").read_bytes()
    cut = data[: data.index(b'"Target": "deploy/Dockerfile"')]
    findings = importer.parse(io.BytesIO(cut), "cut.json")
    first = [next(findings) for _ in range(5)]
    assert [f.rule_id for f in first][-1] == "CVE-2024-21538"
    with pytest.raises(ImportFormatError, match="premature EOF"):
        next(findings)


@pytest.mark.parametrize(
    ("document", "problem", "position"),
    [
        (
            {"SchemaVersion": 2, "Results": [{"Target": "a", "Vulnerabilities": [{}, "CVE-1"]}]},
            "a Vulnerabilities entry is a JSON str",
            "Results[0].Vulnerabilities[1]",
        ),
        ({"SchemaVersion": 3, "Results": []}, "SchemaVersion 3 is not supported", "SchemaVersion"),
        ({"matches": [], "source": {}}, "no SchemaVersion, ArtifactName or Results", None),
        ({"SchemaVersion": 2, "Results": [{"Class": "os-pkgs"}]}, "without a Target", None),
        ([{"Target": "a"}, "b"], "a result is a JSON str", "[1]"),
        ("a string", "the document is a JSON scalar", None),
    ],
)
def test_a_readable_document_that_is_not_a_trivy_report_is_refused(
    document: object, problem: str, position: str | None
) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(problem)) as caught:
        parse_json(document, "odd.json")
    assert caught.value.filename == "odd.json"
    if position is not None:
        assert caught.value.position == position


def test_parsing_twice_gives_the_same_identities() -> None:
    def identities() -> list[tuple[str, Location]]:
        return [(f.rule_id, f.location) for f in parse(TRIVY / "many.json")]

    assert identities() == identities()

"""Real reports from the shared corpus through the SARIF, Trivy, Grype and osv-scanner importers.

Every file of each group must be recognised by the registry's sniffing as its format, parse,
and give findings with a rule id and a valid severity, the same identities on a second parse,
and as many findings as the raw file says, counted here with ``json.load`` independently of
the importers. The deliberate exceptions are listed with their reason, per file.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from tests.conftest import CORPUS

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    SNIFF_BYTES,
    ImportedFinding,
    ImportFormatError,
    head_of,
)
from autosec.engines.importers.registry import get_importer, sniff_format

DOJO = "scanners/DefectDojo__django-DefectDojo"
# corpus folder -> the format every file in it is (unless listed in EXCEPTIONS)
GROUPS = {
    f"{DOJO}/sarif": "sarif",
    f"{DOJO}/trivy": "trivy",
    f"{DOJO}/anchore_grype": "grype",
    f"{DOJO}/osv_scanner": "osv-scanner",
    "scanners/google__osv-scanner/osv_scanner": "osv-scanner",
}
# Files of these groups no sniffer can or should claim, with the reason and the number of
# findings the group's importer reads when the format is named.
EXCEPTIONS: dict[str, tuple[str, int]] = {
    f"{DOJO}/osv_scanner/no_findings.json": (
        "0 bytes: osv-scanner's 'nothing found', indistinguishable from any empty file",
        0,
    ),
}
# Neighbouring formats that must not be claimed by these importers, with the reason.
NOT_OURS: dict[str, str] = {
    f"{DOJO}/trivy_operator/configauditreport_many.json": (
        "a trivy-operator ConfigAuditReport (a Kubernetes resource), not a Trivy JSON report"
    ),
}
OUR_FORMATS = frozenset(GROUPS.values())
# Findings in named files, as counted by hand from the files (the count functions below must
# agree, so a mistake in either shows).
KNOWN_COUNTS = {
    f"{DOJO}/anchore_grype/many_vulns3.json": 327,
    f"{DOJO}/anchore_grype/issue_9618.json": 35,
    f"{DOJO}/sarif/codeQL-output.sarif": 72,
    f"{DOJO}/sarif/flawfinder.sarif": 53,  # 54 results, one of kind "pass"
    f"{DOJO}/trivy/legacy_trivy_mix.json": 6,  # 7 entries, one without a VulnerabilityID
    f"{DOJO}/trivy/misconfigurations_and_secrets.json": 5,
    f"{DOJO}/osv_scanner/many_findings.json": 37,  # 86 OSV records in 37 alias groups
    "scanners/google__osv-scanner/osv_scanner/test-vuln-results-b.json": 2,
}


def _corpus_files() -> list[tuple[str, str]]:
    if not CORPUS.is_dir():
        return []
    return [
        (path.relative_to(CORPUS).as_posix(), fmt)
        for folder, fmt in GROUPS.items()
        for path in sorted((CORPUS / folder).rglob("*"))
        if path.is_file()
    ]


CASES = _corpus_files()
SNIFFED = [(rel, fmt) for rel, fmt in CASES if rel not in EXCEPTIONS]


@pytest.fixture(autouse=True)
def _needs_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")


def parse(rel: str, fmt: str) -> list[ImportedFinding]:
    with (CORPUS / rel).open("rb") as stream:
        return list(get_importer(fmt).parse(stream, rel))


def head(rel: str) -> bytes:
    with (CORPUS / rel).open("rb") as stream:
        return stream.read(SNIFF_BYTES)


def raw(rel: str) -> Any:
    return json.loads((CORPUS / rel).read_text(encoding="utf-8-sig"))


# --- independent counts: what the raw file says a reader must find --------------------------


def count_sarif(document: dict) -> int:
    return sum(
        1
        for run in document["runs"]
        for result in run.get("results") or []
        if result.get("kind", "fail") not in ("pass", "notApplicable")
        and result.get("baselineState") != "absent"
    )


def count_trivy(document: Any) -> int:
    results = document if isinstance(document, list) else (document or {}).get("Results") or []
    total = 0
    for result in results:
        total += sum(1 for v in result.get("Vulnerabilities") or [] if v.get("VulnerabilityID"))
        total += sum(
            1 for m in result.get("Misconfigurations") or [] if m.get("Status", "FAIL") == "FAIL"
        )
        total += len(result.get("Secrets") or [])
    return total


def count_grype(document: dict) -> int:
    return len(document["matches"])


def count_osv_scanner(document: dict) -> int:
    """One per alias group (a package without groups in these files has unaliased records)."""
    return sum(
        len(package.get("groups") or []) or len(package.get("vulnerabilities") or [])
        for result in document["results"]
        for package in result["packages"]
    )


COUNTERS = {
    "sarif": count_sarif,
    "trivy": count_trivy,
    "grype": count_grype,
    "osv-scanner": count_osv_scanner,
}


# --- the tests --------------------------------------------------------------------------------


def test_every_group_has_files() -> None:
    groups = Counter(fmt for _, fmt in CASES)
    assert set(groups) == OUR_FORMATS
    assert all(count >= 3 for count in groups.values()), groups


@pytest.mark.parametrize(("rel", "fmt"), SNIFFED, ids=[rel for rel, _ in SNIFFED])
def test_the_registry_sniffs_each_file_as_its_format(rel: str, fmt: str) -> None:
    assert sniff_format(head(rel)) == fmt


@pytest.mark.parametrize("rel", sorted(EXCEPTIONS))
def test_exceptions_are_left_to_a_named_format_and_then_read(rel: str) -> None:
    fmt = next(f for folder, f in GROUPS.items() if rel.startswith(f"{folder}/"))
    assert sniff_format(head(rel)) is None
    assert len(parse(rel, fmt)) == EXCEPTIONS[rel][1]


@pytest.mark.parametrize("rel", sorted(NOT_OURS))
def test_neighbouring_formats_are_not_claimed_nor_read_as_ours(rel: str) -> None:
    assert sniff_format(head(rel)) not in OUR_FORMATS
    with pytest.raises(ImportFormatError):
        parse(rel, "trivy")


def test_no_other_corpus_file_is_claimed_by_these_importers() -> None:
    """SBOMs, VEX, nuclei JSON Lines, gitleaks arrays, ZAP, semgrep, bandit...: none is ours."""
    ours = {rel for rel, _ in CASES}
    claimed = {}
    for path in sorted(CORPUS.rglob("*")):
        rel = path.relative_to(CORPUS).as_posix()
        if not path.is_file() or rel in ours:
            continue
        start = head(rel)
        claims = [fmt for fmt in sorted(OUR_FORMATS) if get_importer(fmt).sniff(head_of(start))]
        if claims:
            claimed[rel] = claims
    assert claimed == {}


@pytest.mark.parametrize(("rel", "fmt"), CASES, ids=[rel for rel, _ in CASES])
def test_each_file_parses_into_well_formed_findings(rel: str, fmt: str) -> None:
    findings = parse(rel, fmt)
    for finding in findings:
        assert isinstance(finding.rule_id, str) and finding.rule_id.strip()
        assert isinstance(finding.severity, Severity)
        assert isinstance(finding.location, Location)
        assert finding.title.strip()
        assert all(isinstance(i, str) and i for i in finding.cve_ids)
        # Evidence goes to a JSON column: serialisable, no NUL characters.
        encoded = json.dumps(finding.evidence)
        assert "\\u0000" not in encoded
        if fmt in ("trivy", "grype", "osv-scanner") and finding.location.purl:
            assert "@" not in finding.location.purl and "?" not in finding.location.purl


@pytest.mark.parametrize(("rel", "fmt"), SNIFFED, ids=[rel for rel, _ in SNIFFED])
def test_each_file_gives_as_many_findings_as_the_raw_file_says(rel: str, fmt: str) -> None:
    expected = COUNTERS[fmt](raw(rel))
    assert len(parse(rel, fmt)) == expected
    if rel in KNOWN_COUNTS:
        assert expected == KNOWN_COUNTS[rel]


def test_the_named_counts_are_all_in_the_corpus() -> None:
    assert set(KNOWN_COUNTS) <= {rel for rel, _ in CASES}


@pytest.mark.parametrize(("rel", "fmt"), CASES, ids=[rel for rel, _ in CASES])
def test_parsing_twice_gives_the_same_identities(rel: str, fmt: str) -> None:
    def identities() -> Counter:
        return Counter((f.rule_id, f.location) for f in parse(rel, fmt))

    assert identities() == identities()


def test_grype_findings_follow_the_matches_in_order() -> None:
    rel = f"{DOJO}/anchore_grype/many_vulns3.json"
    matches = raw(rel)["matches"]
    findings = parse(rel, "grype")
    assert [f.rule_id for f in findings] == [m["vulnerability"]["id"] for m in matches]
    negligible = sum(1 for m in matches if m["vulnerability"]["severity"] == "Negligible")
    assert sum(1 for f in findings if f.severity is Severity.INFO) == negligible == 106


def test_sarif_rule_ids_are_the_results_rule_ids() -> None:
    rel = f"{DOJO}/sarif/codeQL-output.sarif"
    results = raw(rel)["runs"][0]["results"]
    findings = parse(rel, "sarif")
    assert [f.rule_id for f in findings] == [r["ruleId"] for r in results]
    assert all(f.location.file and f.location.line for f in findings)


def test_trivy_secrets_in_the_corpus_are_concealed() -> None:
    rel = f"{DOJO}/trivy/misconfigurations_and_secrets.json"
    matches = [
        secret["Match"] for result in raw(rel)["Results"] for secret in result.get("Secrets") or []
    ]
    secrets = [f for f in parse(rel, "trivy") if f.cwe == "CWE-798"]
    assert len(secrets) == len(matches) == 2
    for finding, match in zip(secrets, matches, strict=True):
        assert match not in repr(finding)
        assert len(finding.evidence["secret_sha256"]) == 64


def test_osv_scanner_identities_survive_a_database_that_grew_an_alias_record() -> None:
    """osv-scanner's own test data: run b found GHSA-c3h9-896r-86jm next to GO-2021-0053."""
    folder = "scanners/google__osv-scanner/osv_scanner"
    before = parse(f"{folder}/test-vuln-results-a.json", "osv-scanner")
    after = parse(f"{folder}/test-vuln-results-b.json", "osv-scanner")
    assert {(f.rule_id, f.location) for f in after} == {(f.rule_id, f.location) for f in before}
    assert ("CVE-2021-3121", Location(purl="pkg:golang/github.com/gogo/protobuf")) in {
        (f.rule_id, f.location) for f in after
    }

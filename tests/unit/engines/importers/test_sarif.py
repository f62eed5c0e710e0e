"""SARIF 2.1.0 logs: rules resolved by id, index and extension, identity by rule + file + line."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.registry import sniff_format
from autosec.engines.importers.sarif import SarifImporter, artifact_path

FIXTURES = Path(__file__).parent / "fixtures"
SARIF = FIXTURES / "sarif"
importer = SarifImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_json(document: object, name: str = "log.sarif") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(json.dumps(document).encode()), name))


def byte_position(error: ImportFormatError) -> int:
    match = re.fullmatch(r"byte (\d+)", error.position or "")
    assert match, f"position {error.position!r} is not a byte offset"
    return int(match.group(1))


def log(*runs: dict, version: str = "2.1.0") -> dict:
    return {"version": version, "runs": list(runs)}


@pytest.mark.parametrize(
    "name", ["empty.sarif", "one.sarif", "many.sarif", "bom_crlf.sarif", "truncated.sarif"]
)
def test_sniff_claims_sarif_logs(name: str) -> None:
    assert importer.sniff(head_of((SARIF / name).read_bytes()))


def test_sniff_claims_a_log_whose_version_comes_after_its_runs() -> None:
    head = b'{"runs": [{"tool": {"driver": {"name": "nodejsscan"}}, "results": [{"ruleId": "a"'
    assert importer.sniff(head)


@pytest.mark.parametrize("name", ["empty.sarif", "one.sarif", "many.sarif", "bom_crlf.sarif"])
def test_the_registry_sniffs_these_reports_as_sarif(name: str) -> None:
    """No importer earlier in the sniffing order claims them first."""
    assert sniff_format((SARIF / name).read_bytes()) == "sarif"


@pytest.mark.parametrize(
    "head",
    [
        b'{"version": "2.0.0", "runs": []}',  # SARIF 2.0 is another schema
        b'{"version": "1.0.0", "runLogs": []}',
        b'{"runs": []}',  # nothing says SARIF
        b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": []}',
        b'{"results": [], "version": "1.2.3"}',
        b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1}',
        b'[{"RuleID": "x", "Secret": "y"}]',
        b"",
    ],
)
def test_sniff_leaves_other_documents_alone(head: bytes) -> None:
    assert not importer.sniff(head_of(head))


@pytest.mark.parametrize(
    "other", ["trivy/one.json", "grype/one.json", "osv_scanner/one.json"], ids=str
)
def test_sniff_does_not_claim_the_other_package_reports(other: str) -> None:
    assert not importer.sniff(head_of((FIXTURES / other).read_bytes()))


def test_a_run_without_results_has_no_findings() -> None:
    assert parse(SARIF / "empty.sarif") == []


def test_one_result_is_identified_by_rule_file_and_line() -> None:
    [finding] = parse(SARIF / "one.sarif")
    rule = "python.django.security.injection.sql.sql-injection-db-cursor-execute"
    assert finding.rule_id == rule
    assert finding.location == Location(file="backend/orders/views.py", line=42)
    assert finding.target == "https://github.com/example/shop"
    assert finding.severity is Severity.HIGH  # security-severity 8.8
    assert finding.cwe == "CWE-89"
    assert finding.title == f"Semgrep Finding: {rule}"
    assert finding.description == (
        "User-controlled data from request.GET flows into cursor.execute()."
    )
    assert finding.evidence == {
        "tool": "Semgrep OSS",
        "tool_version": "1.95.0",
        "level": "error",
        "security_severity": 8.8,
        "column": 9,
        "end_line": 42,
        "fingerprints": {
            "matchBasedId/v1": "8c1f0d2e3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d",
            "primaryLocationLineHash": "5a1c3e0d9b7f2a64:1",
        },
    }


def test_many_resolves_extension_rules_artifact_indexes_and_message_strings() -> None:
    findings = parse(SARIF / "many.sarif")
    assert [(f.rule_id, f.location, f.severity) for f in findings] == [
        ("js/sql-injection", Location(file="web/src/db.js", line=17), Severity.HIGH),
        (
            "js/useless-assignment-to-local",
            Location(file="web/src/util helpers.js", line=8),
            Severity.MEDIUM,
        ),
        (
            "js/uninitialized",
            Location(file="C:/build/shop/web/src/math.js", line=4),
            Severity.MEDIUM,
        ),
        ("B6412", Location(file="Example.Worker.DoWork"), Severity.LOW),
        ("B6413", Location(url="https://shop.example.com/debug/vars?x=1"), Severity.MEDIUM),
    ]  # the "pass" result and the one absent since the baseline are not findings
    injection, useless, uninitialized, logical, debug = findings
    assert injection.title == "Database query built from user-controlled sources"
    assert injection.cwe == "CWE-89"  # "external/cwe/cwe-089", leading zero dropped
    assert useless.cwe == "CWE-563"
    assert useless.evidence["suppressed"] is True
    assert useless.evidence["suppression_status"] == "accepted"
    assert uninitialized.title == 'Variable "total" is used before it is assigned in sum().'
    assert logical.cwe == "CWE-328"
    assert logical.title == "InsecureHash"
    assert debug.title == "Debug endpoint exposed."  # no rule metadata: the message
    # The first run names its repository; the second run names nothing.
    assert [f.target for f in findings] == ["https://github.com/example/shop"] * 3 + [None] * 2


@pytest.mark.parametrize(
    ("level", "rule_default", "security_severity", "kind", "expected"),
    [
        ("error", None, None, None, Severity.HIGH),
        ("warning", None, None, None, Severity.MEDIUM),
        ("note", None, None, None, Severity.LOW),
        ("none", None, None, None, Severity.INFO),
        (None, "error", None, None, Severity.HIGH),
        (None, None, None, None, Severity.MEDIUM),  # SARIF's default level is "warning"
        (None, None, None, "informational", Severity.INFO),  # not a failure: level "none"
        ("note", None, "9.8", None, Severity.CRITICAL),
        ("error", None, "0.0", None, Severity.INFO),
        ("error", None, "not a score", None, Severity.HIGH),
    ],
)
def test_severity_comes_from_security_severity_else_the_level(
    level: str | None,
    rule_default: str | None,
    security_severity: str | None,
    kind: str | None,
    expected: Severity,
) -> None:
    rule: dict = {"id": "R1"}
    if rule_default:
        rule["defaultConfiguration"] = {"level": rule_default}
    if security_severity:
        rule["properties"] = {"security-severity": security_severity}
    result: dict = {"ruleId": "R1", "message": {"text": "m"}}
    if level:
        result["level"] = level
    if kind:
        result["kind"] = kind
    [finding] = parse_json(
        log({"tool": {"driver": {"name": "T", "rules": [rule]}}, "results": [result]})
    )
    assert finding.severity is expected


def test_results_written_before_the_tool_wait_for_its_rules() -> None:
    run = {
        "results": [{"ruleIndex": 0, "message": {"text": "late tool"}}],
        "tool": {
            "driver": {"name": "T", "rules": [{"id": "T001", "shortDescription": {"text": "s"}}]}
        },
    }
    [finding] = parse_json(log(run))
    assert (finding.rule_id, finding.title) == ("T001", "s")


def test_a_result_without_any_rule_is_named_after_the_tool() -> None:
    run = {"tool": {"driver": {"name": "dockle"}}, "results": [{"message": {"text": "x"}}]}
    [finding] = parse_json(log(run))
    assert finding.rule_id == "dockle"


def test_line_moves_are_new_locations_but_messages_are_not_identity() -> None:
    document = json.loads((SARIF / "one.sarif").read_text())
    before = parse_json(document)[0]
    result = document["runs"][0]["results"][0]
    result["message"]["text"] = "Reworded by a newer Semgrep."
    result["fingerprints"] = {}
    document["runs"][0]["tool"]["driver"]["semanticVersion"] = "1.99.0"
    reworded = parse_json(document)[0]
    assert (reworded.rule_id, reworded.location) == (before.rule_id, before.location)
    result["locations"][0]["physicalLocation"]["region"]["startLine"] = 43
    moved = parse_json(document)[0]
    assert moved.location == Location(file="backend/orders/views.py", line=43)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("src/a.py", "src/a.py"),
        ("file:///C:/code/file1.c", "C:/code/file1.c"),
        ("file:///src/index.js", "/src/index.js"),
        ("src/with%20space.py", "src/with space.py"),
        ("https://example.com/a.js", "https://example.com/a.js"),
        ("npm/example-lib@1.0.0", "npm/example-lib@1.0.0"),
    ],
)
def test_artifact_uris_become_paths(uri: str, path: str) -> None:
    assert artifact_path(uri) == path


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(SARIF / "bom_crlf.sarif") == parse(SARIF / "one.sarif")


def test_a_truncated_log_names_the_file_and_where_it_ends() -> None:
    path = SARIF / "truncated.sarif"
    with pytest.raises(ImportFormatError) as caught:
        parse(path)
    assert caught.value.filename == "truncated.sarif"
    assert byte_position(caught.value) == path.stat().st_size
    assert "premature EOF" in caught.value.problem


def test_a_missing_comma_is_located_at_the_unexpected_token() -> None:
    data = (SARIF / "malformed.sarif").read_bytes()
    with pytest.raises(ImportFormatError) as caught:
        parse(SARIF / "malformed.sarif")
    token = data.index(b'"message"', data.index(b'"ruleIndex": 0'))
    assert token <= byte_position(caught.value) < token + len(b'"message"')
    assert "expect ',' or '}'" in caught.value.problem


@pytest.mark.parametrize(
    ("document", "problem", "position"),
    [
        (log(version="2.0.0"), "SARIF version '2.0.0'", "version"),
        ({"version": "2.1.0"}, "no runs", None),
        (log("a run"), "a run is a JSON str", "runs[0]"),
        (
            log({"tool": {"driver": {"name": "T"}}, "results": [{}, 7]}),
            "a result is a JSON int",
            "runs[0].results[1]",
        ),
        ([log()], "no runs", None),
    ],
)
def test_a_readable_document_that_is_not_a_sarif_log_is_refused(
    document: object, problem: str, position: str | None
) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(problem)) as caught:
        parse_json(document, "odd.sarif")
    assert caught.value.filename == "odd.sarif"
    if position is not None:
        assert caught.value.position == position


def test_parsing_twice_gives_the_same_identities() -> None:
    def identities() -> list[tuple[str, Location]]:
        return [(f.rule_id, f.location) for f in parse(SARIF / "many.sarif")]

    assert identities() == identities()

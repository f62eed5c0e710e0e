"""gitleaks JSON reports: v7 and v8 shapes, identity by file and line, secrets never in clear."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.gitleaks import GitleaksImporter

FIXTURES = Path(__file__).parent / "fixtures"
GITLEAKS = FIXTURES / "gitleaks"
importer = GitleaksImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_bytes(data: bytes, name: str = "report.json") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(data), name))


def byte_position(error: ImportFormatError) -> int:
    match = re.fullmatch(r"byte (\d+)", error.position or "")
    assert match, f"position {error.position!r} is not a byte offset"
    return int(match.group(1))


def secrets_in(path: Path) -> set[str]:
    raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    return {item.get("Secret") or item.get("offender") for item in raw or []} - {"REDACTED"}


@pytest.mark.parametrize("name", ["one.json", "many.json", "many_v7.json", "many_bom_crlf.json"])
def test_sniff_claims_gitleaks_reports_of_both_generations(name: str) -> None:
    assert importer.sniff(head_of((GITLEAKS / name).read_bytes()))


@pytest.mark.parametrize(
    "path",
    [
        GITLEAKS / "empty.json",  # "[]" says nothing about which tool wrote it
        GITLEAKS / "no_leaks_v7.json",
        FIXTURES / "nuclei" / "many_array.json",
        FIXTURES / "cyclonedx_vex" / "many.json",
        FIXTURES / "zap" / "many.xml",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_leaves_other_documents_alone(path: Path) -> None:
    assert not importer.sniff(head_of(path.read_bytes()))


def test_sniff_needs_a_rule_and_a_secret_not_just_an_array_of_objects() -> None:
    assert not importer.sniff(b'[{"RuleID": "aws-access-token", "File": "a.py"}]')
    assert not importer.sniff(b'[{"Secret": "x", "File": "a.py"}]')
    assert importer.sniff(b'[{"rule": "AWS", "offender": "AKIA...", "file": "a.py"}, {"ru')


@pytest.mark.parametrize("name", ["empty.json", "no_leaks_v7.json"])
def test_a_run_without_leaks_has_no_findings(name: str) -> None:
    assert parse(GITLEAKS / name) == []


def test_a_zero_byte_file_is_refused_because_gitleaks_always_writes_something() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b"", "gitleaks.json")
    assert caught.value.filename == "gitleaks.json"
    assert caught.value.position == "byte 0"
    assert "empty" in caught.value.problem


def test_one_v8_finding_carries_rule_file_line_and_a_concealed_secret() -> None:
    [finding] = parse(GITLEAKS / "one.json")
    secret = "AKIAIOSFODNN7EXAMPLE"
    assert finding.rule_id == "aws-access-token"
    assert finding.location == Location(file="deploy/settings.ini", line=12)
    assert finding.severity is Severity.HIGH
    assert finding.cwe == "CWE-798"
    assert finding.title == "Leaked secret (AWS Access Key) in deploy/settings.ini:12"
    assert finding.evidence["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert finding.evidence["secret_preview"] == "AK************LE"
    assert finding.evidence["commit"] == "4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a098"
    assert finding.evidence["end_column"] == 39
    # the commit is evidence, never identity: it changes with every rewrite of history
    assert "4f1c2a9e" not in repr(finding.location)


def test_many_v8_findings_share_identity_across_commits_and_mark_redacted_secrets() -> None:
    findings = parse(GITLEAKS / "many.json")
    identities = Counter((f.rule_id, f.location) for f in findings)
    assert identities == {
        ("aws-access-token", Location(file="deploy/settings.ini", line=12)): 2,
        ("generic-api-key", Location(file="services/payments/.env", line=3)): 1,
        ("private-key", Location(file="ops/keys/id_rsa", line=1)): 1,
    }
    commits = {f.evidence.get("commit") for f in findings if f.rule_id == "aws-access-token"}
    assert len(commits) == 2
    redacted = next(f for f in findings if f.rule_id == "private-key")
    assert redacted.evidence["secret_redacted"] is True
    assert "secret_sha256" not in redacted.evidence  # a hash of "REDACTED" would match them all
    assert all(f.severity is Severity.HIGH for f in findings)


def test_v7_findings_read_rule_offender_and_line_number() -> None:
    findings = parse(GITLEAKS / "many_v7.json")
    assert [(f.rule_id, f.location) for f in findings] == [
        ("Generic Password", Location(file="config/db.py", line=8)),
        ("Asymmetric Private Key", Location(file="certs/server-key.pem", line=1)),
    ]
    assert findings[0].target == "https://git.example.com/team/shop-api"
    assert findings[0].evidence["tags"] == ["key", "password"]
    assert (
        findings[0].evidence["secret_sha256"]
        == hashlib.sha256(b"hunter2-correct-horse-battery").hexdigest()
    )


@pytest.mark.parametrize("name", ["one.json", "many.json", "many_v7.json", "many_bom_crlf.json"])
def test_the_clear_secret_appears_nowhere_in_a_finding(name: str) -> None:
    secrets = secrets_in(GITLEAKS / name)
    assert secrets, "the fixture must carry secrets for this test to mean anything"
    for finding in parse(GITLEAKS / name):
        shown = repr(finding)
        for secret in secrets:
            assert secret not in shown


def test_a_secret_repeated_in_other_fields_is_replaced_by_its_preview() -> None:
    secret = "EXAMPLEfakeTOKEN0123456789abcdefXYZ"
    report = [
        {
            "RuleID": "generic-api-key",
            "Description": f"key {secret}",
            "StartLine": 1,
            "Secret": secret,
            "Match": f"KEY={secret}",
            "File": f"backup/{secret}.txt",
            "Author": secret,
            "Tags": [secret],
        }
    ]
    [finding] = parse_bytes(json.dumps(report).encode())
    assert secret not in repr(finding)
    preview = finding.evidence["secret_preview"]
    assert finding.location.file == f"backup/{preview}.txt"
    assert finding.evidence["author"] == preview


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(GITLEAKS / "many_bom_crlf.json") == parse(GITLEAKS / "many.json")


def test_parsing_twice_gives_the_same_identities() -> None:
    first = Counter((f.rule_id, f.location) for f in parse(GITLEAKS / "many.json"))
    second = Counter((f.rule_id, f.location) for f in parse(GITLEAKS / "many.json"))
    assert first == second


def test_a_malformed_report_names_the_file_and_the_byte_offset() -> None:
    data = (GITLEAKS / "malformed.json").read_bytes()
    token = b'"generic-api-key"'
    start = data.index(b'"RuleID" ' + token) + len(b'"RuleID" ')
    with pytest.raises(ImportFormatError) as caught:
        parse(GITLEAKS / "malformed.json")
    error = caught.value
    assert error.filename == "malformed.json"
    assert start <= byte_position(error) <= start + len(token)
    assert str(error).startswith("malformed.json at byte ")


def test_the_offset_of_an_error_deep_in_a_large_report_counts_every_chunk_before_it() -> None:
    item = {"RuleID": "generic-api-key", "Secret": "s3cr3t-value-0000", "File": "a.py"}
    body = ",\n".join(json.dumps({**item, "StartLine": n}) for n in range(3000))
    data = ("\ufeff[\n" + body + ',\n{"RuleID": "x" "File": "b.py"}\n]').encode()
    assert len(data) > 3 * 64 * 1024  # the error lies several read chunks in
    token = b'"File"'
    start = data.rindex(b'"x" ' + token) + len(b'"x" ')
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data, "big.json")
    assert start <= byte_position(caught.value) <= start + len(token)


def test_a_document_that_is_not_an_array_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b'{"RuleID": "x"}', "object.json")
    assert "expected an array" in caught.value.problem
    assert caught.value.filename == "object.json"


def test_a_finding_without_rule_id_names_its_place_in_the_array() -> None:
    data = b'[{"RuleID": "a", "Secret": "xxxx", "File": "a"}, {"Secret": "yyyy", "File": "b"}]'
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data)
    assert caught.value.position == "finding 2"


def test_a_report_truncated_mid_array_is_an_error_not_a_short_report() -> None:
    data = (GITLEAKS / "many.json").read_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(cut)
    assert byte_position(caught.value) == len(cut)

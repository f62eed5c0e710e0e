"""nuclei JSON Lines and JSON array exports: template matches by URL, host:port or name."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.nuclei import NucleiImporter

FIXTURES = Path(__file__).parent / "fixtures"
NUCLEI = FIXTURES / "nuclei"
importer = NucleiImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_bytes(data: bytes, name: str = "nuclei.jsonl") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(data), name))


@pytest.mark.parametrize(
    "name", ["one.jsonl", "many.jsonl", "many_array.json", "many_bom_crlf.jsonl"]
)
def test_sniff_claims_nuclei_lines_and_array_exports(name: str) -> None:
    assert importer.sniff(head_of((NUCLEI / name).read_bytes()))


def test_sniff_reads_the_nuclei_2_key_names() -> None:
    line = b'{"templateID":"tech-detect","info":{},"host":"h","matched":"http://h/"}\n{"tem'
    assert importer.sniff(line)


@pytest.mark.parametrize(
    "path",
    [
        NUCLEI / "empty.jsonl",
        FIXTURES / "gitleaks" / "many.json",
        FIXTURES / "cyclonedx_vex" / "many.json",
        FIXTURES / "zap" / "many.xml",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_leaves_other_documents_alone(path: Path) -> None:
    assert not importer.sniff(head_of(path.read_bytes()))


def test_sniff_needs_both_a_template_and_where_it_matched() -> None:
    assert not importer.sniff(b'{"template-id": "x", "host": "h"}\n')
    assert not importer.sniff(b'{"matched-at": "h", "host": "h"}\n')


def test_a_zero_byte_file_is_nucleis_way_of_saying_nothing_matched() -> None:
    assert parse(NUCLEI / "empty.jsonl") == []
    assert parse_bytes(b"\n\r\n  \n") == []


def test_one_result_carries_template_location_and_classification() -> None:
    [finding] = parse(NUCLEI / "one.jsonl")
    assert finding.rule_id == "CVE-2021-41773"
    assert finding.title == "Apache 2.4.49 - Path Traversal and Remote Code Execution"
    assert finding.severity is Severity.HIGH
    assert finding.location == Location(
        host="shop.example.com",
        port=443,
        url="https://shop.example.com/icons/.%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    )
    assert finding.target == "https://shop.example.com"
    assert finding.cve_ids == ("CVE-2021-41773",)
    assert finding.cwe == "CWE-22"
    assert finding.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
    assert finding.cvss_score == 7.5
    assert finding.evidence["ip"] == "203.0.113.10"
    shown = repr(finding)
    assert "2024-03-05" not in shown  # the timestamp
    assert "root:x:0:0" not in shown  # the response


def test_many_results_cover_urls_network_ports_dns_names_and_old_key_names() -> None:
    findings = parse(NUCLEI / "many.jsonl")
    assert [(f.rule_id, f.location, f.severity) for f in findings] == [
        (
            "http-missing-security-headers:strict-transport-security",
            Location(
                host="shop.example.com", port=443, url="https://shop.example.com/?ts=&utm_source="
            ),
            Severity.INFO,
        ),
        (
            "http-missing-security-headers:x-frame-options",
            Location(
                host="shop.example.com", port=443, url="https://shop.example.com/?ts=&utm_source="
            ),
            Severity.INFO,
        ),
        (
            "CVE-2021-41773",
            Location(
                host="shop.example.com",
                port=443,
                url="https://shop.example.com/icons/.%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            ),
            Severity.HIGH,
        ),
        (
            "redis-default-logins",
            Location(host="cache.example.com", port=6379, protocol="tcp"),
            Severity.CRITICAL,
        ),
        ("caa-fingerprint", Location(host="example.com"), Severity.INFO),
        (
            "openssh5.3-detect",
            Location(host="bastion.example.com", port=22, protocol="tcp"),
            Severity.LOW,
        ),
        (
            "tech-detect:nginx",
            Location(host="legacy.example.com", port=8080, url="http://legacy.example.com:8080/"),
            Severity.INFO,
        ),
    ]
    tech = findings[-1]
    assert tech.evidence["extracted_results"] == ["nginx/1.18.0"]
    assert findings[5].evidence["tags"] == ["network", "openssh"]  # 2.x: a comma-separated string


def test_the_json_array_export_gives_the_same_findings_as_json_lines() -> None:
    assert parse(NUCLEI / "many_array.json") == parse(NUCLEI / "many.jsonl")


def test_bom_crlf_and_blank_lines_change_nothing() -> None:
    assert parse(NUCLEI / "many_bom_crlf.jsonl") == parse(NUCLEI / "many.jsonl")


def test_parsing_twice_gives_the_same_identities() -> None:
    first = Counter((f.rule_id, f.location) for f in parse(NUCLEI / "many.jsonl"))
    assert first == Counter((f.rule_id, f.location) for f in parse(NUCLEI / "many.jsonl"))


def test_a_malformed_line_names_the_file_line_and_column() -> None:
    lines = (NUCLEI / "malformed.jsonl").read_text().splitlines()
    number, line = next((n, text) for n, text in enumerate(lines, 1) if '":high"' in text)
    column = line.index('":high"') + 3  # 1-based column of the bare word
    with pytest.raises(ImportFormatError) as caught:
        parse(NUCLEI / "malformed.jsonl")
    assert caught.value.filename == "malformed.jsonl"
    assert caught.value.position == f"line {number}, column {column}"


def test_a_malformed_array_export_names_the_byte_offset() -> None:
    data = (NUCLEI / "many_array.json").read_bytes()
    broken = data.replace(b'"severity": "critical"', b'"severity" "critical"')
    start = broken.index(b'"severity" "critical"') + len(b'"severity" ')
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(broken, "export.json")
    match = re.fullmatch(r"byte (\d+)", caught.value.position or "")
    assert match and start <= int(match.group(1)) <= start + len(b'"critical"')


def test_an_unknown_severity_is_refused_with_the_line() -> None:
    result = {"template-id": "x", "matched-at": "h:1", "info": {"severity": "urgent"}}
    data = b"\n" + json.dumps(result).encode()
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data)
    assert caught.value.position == "line 2"
    assert "urgent" in caught.value.problem


def test_a_result_without_template_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b'{"matched-at": "h:1"}\n')
    assert caught.value.position == "line 1"


def test_unknown_severity_word_from_nuclei_itself_is_info() -> None:
    data = json.dumps({"template-id": "x", "matched-at": "h", "info": {"severity": "unknown"}})
    [finding] = parse_bytes(data.encode())
    assert finding.severity is Severity.INFO


@pytest.mark.parametrize(
    ("matched_at", "location"),
    [
        ("[2001:db8::7]:6379", Location(host="2001:db8::7", port=6379, protocol="tcp")),
        ("2001:db8::7", Location(host="2001:db8::7")),
        ("Cache.Example.com:11211", Location(host="cache.example.com", port=11211, protocol="tcp")),
        ("cache.example.com:99999", Location(host="cache.example.com:99999")),
        (
            "HTTPS://Shop.Example.com:443/a?x=1#f",
            Location(host="shop.example.com", port=443, url="https://shop.example.com/a?x="),
        ),
    ],
)
def test_matched_at_forms_become_locations(matched_at: str, location: Location) -> None:
    data = json.dumps({"template-id": "t", "matched-at": matched_at, "info": {"severity": "low"}})
    [finding] = parse_bytes(data.encode())
    assert finding.location == location

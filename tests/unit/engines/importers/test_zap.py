"""OWASP ZAP XML reports: streamed safely, one finding per rule and stable URL."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import (
    ImportedFinding,
    ImportFormatError,
    XmlEvents,
    head_of,
    stable_url,
)
from autosec.engines.importers.zap import ZapImporter

FIXTURES = Path(__file__).parent / "fixtures"
ZAP = FIXTURES / "zap"
importer = ZapImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_bytes(data: bytes, name: str = "zap.xml") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(data), name))


@pytest.mark.parametrize("name", ["empty.xml", "one.xml", "many.xml", "many_bom_crlf.xml"])
def test_sniff_claims_zap_xml_reports(name: str) -> None:
    assert importer.sniff(head_of((ZAP / name).read_bytes()))


@pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "nmap_xml" / "many.xml",
        FIXTURES / "cyclonedx_vex" / "one.xml",
        FIXTURES / "gitleaks" / "many.json",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_leaves_other_documents_alone(path: Path) -> None:
    assert not importer.sniff(head_of(path.read_bytes()))


def test_sniff_looks_at_the_root_element_not_at_any_mention_of_zap() -> None:
    assert importer.sniff(b'<?xml version="1.0"?>\n<!-- report -->\n<OWASPZAPReport version="2.9">')
    assert not importer.sniff(b"<report><!-- exported from OWASPZAPReport --></report>")
    assert not importer.sniff(b'{"@programName": "ZAP", "site": []}')  # ZAP's JSON report


def test_a_report_without_alerts_has_no_findings() -> None:
    assert parse(ZAP / "empty.xml") == []


def test_one_alert_becomes_one_finding_at_a_url_without_query_values() -> None:
    [finding] = parse(ZAP / "one.xml")
    assert finding.rule_id == "10038-1"  # alertRef refines pluginid 10038
    assert finding.title == "Content Security Policy (CSP) Header Not Set"
    assert finding.severity is Severity.MEDIUM
    assert finding.location == Location(
        host="shop.example.com", port=443, url="https://shop.example.com/cart?item=&session="
    )
    assert finding.target == "https://shop.example.com"
    assert finding.cwe == "CWE-693"
    assert finding.evidence["confidence"] == "high"
    assert finding.evidence["methods"] == ["GET"]
    assert "<p>" not in finding.description
    assert finding.description.startswith("Content Security Policy (CSP) is an added layer")
    assert "Solution: Ensure that your web server" in finding.description
    assert "8f14e45f" not in repr(finding)  # the session id in the query string


def test_many_alerts_map_risk_codes_and_group_instances_by_stable_url() -> None:
    findings = parse(ZAP / "many.xml")
    identities = Counter((f.rule_id, f.location.url) for f in findings)
    assert identities == {
        ("40012", "https://shop.example.com/search?page=&q="): 1,
        ("40012", "https://shop.example.com/feedback"): 1,
        ("10020-1", "https://shop.example.com/"): 1,
        ("10020-2", "https://shop.example.com/"): 1,
        ("10024", "https://shop.example.com/login?password=&user="): 1,
        ("10202", "http://legacy.example.com:8080/account/edit"): 1,
    }
    severity = {f.rule_id: f.severity for f in findings}
    assert severity == {
        "40012": Severity.HIGH,
        "10020-1": Severity.MEDIUM,
        "10020-2": Severity.MEDIUM,
        "10024": Severity.INFO,
        "10202": Severity.LOW,
    }
    search = next(f for f in findings if f.location.url and "/search" in f.location.url)
    assert search.evidence["instance_count"] == 2
    assert search.evidence["params"] == ["q"]
    feedback = next(f for f in findings if f.location.url == "https://shop.example.com/feedback")
    assert feedback.evidence["methods"] == ["POST"]
    legacy = next(f for f in findings if f.rule_id == "10202")
    assert legacy.target == "http://legacy.example.com:8080"
    assert legacy.location.port == 8080
    false_positive = next(f for f in findings if f.rule_id == "10024")
    assert false_positive.evidence["confidence"] == "false positive"


def test_attack_strings_and_leaked_values_are_not_kept() -> None:
    for finding in parse(ZAP / "many.xml"):
        shown = repr(finding)
        assert "Sup3rS3cretPassw0rd" not in shown
        assert "alert(1)" not in shown
        assert "<img" not in shown


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(ZAP / "many_bom_crlf.xml") == parse(ZAP / "many.xml")


def test_parsing_twice_gives_the_same_identities() -> None:
    first = Counter((f.rule_id, f.location) for f in parse(ZAP / "many.xml"))
    assert first == Counter((f.rule_id, f.location) for f in parse(ZAP / "many.xml"))


def test_a_malformed_report_names_the_file_and_the_line() -> None:
    lines = (ZAP / "malformed.xml").read_bytes().split(b"\n")
    bad_line = next(n for n, line in enumerate(lines, start=1) if b"</cont>" in line)
    with pytest.raises(ImportFormatError) as caught:
        parse(ZAP / "malformed.xml")
    assert caught.value.filename == "malformed.xml"
    assert caught.value.position is not None
    assert caught.value.position.startswith(f"line {bad_line}, column ")
    assert "mismatched tag" in caught.value.problem


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_entity_declarations_are_refused_before_anything_is_expanded(name: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse(ZAP / name)
    assert caught.value.filename == name
    assert caught.value.position is not None and caught.value.position.startswith("line 2")
    assert "refused XML" in caught.value.problem


def test_a_risk_code_outside_zero_to_three_names_the_alert_line() -> None:
    data = (
        b'<?xml version="1.0"?>\n<OWASPZAPReport version="2.14.0">\n'
        b'<site name="https://a.example" host="a.example" port="443" ssl="true"><alerts>\n'
        b"<alertitem>\n<pluginid>10038</pluginid><riskcode>4</riskcode>\n"
        b"<instances><instance><uri>https://a.example/</uri></instance></instances>\n"
        b"</alertitem>\n</alerts></site></OWASPZAPReport>\n"
    )
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(data)
    assert caught.value.position == "line 4"
    assert "riskcode '4'" in caught.value.problem


def test_another_root_element_is_refused_with_its_line() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b'<?xml version="1.0"?>\n\n<nmaprun scanner="nmap"></nmaprun>')
    assert caught.value.position == "line 3"
    assert "<nmaprun>" in caught.value.problem


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b"")
    assert "empty file" in caught.value.problem


def test_handled_alerts_are_dropped_from_the_tree_so_memory_stays_flat() -> None:
    item = (
        b"<alertitem><pluginid>10038</pluginid><riskcode>1</riskcode><instances>"
        b"<instance><uri>https://a.example/p%d</uri></instance></instances></alertitem>\n"
    )
    data = (
        b'<OWASPZAPReport><site name="https://a.example" host="a.example" port="443"><alerts>\n'
        + b"".join(item % n for n in range(5000))
        + b"</alerts></site></OWASPZAPReport>"
    )
    events = XmlEvents(io.BytesIO(data), "big.xml")
    largest = 0
    alerts = None
    for event, element in events:
        if event == "end" and element.tag == "alertitem":
            alerts = events.parent
            events.discard(element)
            largest = max(largest, len(alerts))
    assert alerts is not None and len(alerts) == 0
    assert largest < 500  # at most one read chunk of alert items is ever held
    assert len(parse_bytes(data)) == 5000


@pytest.mark.parametrize(
    ("url", "stable"),
    [
        ("https://Shop.Example.com:443/a?b=1&a=2&b=3#top", "https://shop.example.com/a?a=&b="),
        ("http://user:pw@h.example:8080", "http://h.example:8080/"),
        ("http://[2001:db8::1]:80/x?y", "http://[2001:db8::1]/x?y="),
        ("not a url", "not a url"),
    ],
)
def test_stable_url_drops_what_changes_between_runs(url: str, stable: str) -> None:
    assert stable_url(url) == stable

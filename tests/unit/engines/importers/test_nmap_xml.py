"""nmap XML reports a team ran itself: the nmap engine's parser, no asset mapping needed."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from defusedxml import ElementTree

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import ImportedFinding, ImportFormatError, head_of
from autosec.engines.importers.nmap_xml import NmapXmlImporter
from autosec.engines.nmap.parser import (
    DATABASE_EXPOSED,
    OPEN_PORT,
    VERSION_DISCLOSED,
    parse_nmap_xml,
)

FIXTURES = Path(__file__).parent / "fixtures"
NMAP = FIXTURES / "nmap_xml"
importer = NmapXmlImporter()


def parse(path: Path) -> list[ImportedFinding]:
    with path.open("rb") as stream:
        return list(importer.parse(stream, path.name))


def parse_bytes(data: bytes, name: str = "scan.xml") -> list[ImportedFinding]:
    return list(importer.parse(io.BytesIO(data), name))


def open_ports(path: Path) -> set[tuple[str, int]]:
    """Counted with the standard library, independently of the parser under test."""
    tree = ElementTree.parse(path)
    found = set()
    for port in tree.iter("port"):
        state = port.find("state")
        if state is not None and state.get("state") == "open":
            found.add((port.get("protocol", ""), int(port.get("portid", "0"))))
    return found


@pytest.mark.parametrize("name", ["empty.xml", "one.xml", "many.xml", "many_bom_crlf.xml"])
def test_sniff_claims_nmap_reports(name: str) -> None:
    assert importer.sniff(head_of((NMAP / name).read_bytes()))


@pytest.mark.parametrize(
    "path",
    [FIXTURES / "zap" / "many.xml", FIXTURES / "cyclonedx_vex" / "one.xml"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_sniff_leaves_other_documents_alone(path: Path) -> None:
    assert not importer.sniff(head_of(path.read_bytes()))


def test_sniff_is_not_fooled_by_a_mention_of_nmaprun_in_a_comment() -> None:
    assert not importer.sniff(b"<?xml version='1.0'?><!-- converted from <nmaprun> --><scan/>")


def test_a_scan_with_only_closed_ports_has_no_findings() -> None:
    assert parse(NMAP / "empty.xml") == []


def test_one_open_port_names_the_host_nmap_was_given_as_target() -> None:
    findings = parse(NMAP / "one.xml")
    where = Location(host="127.0.0.1", port=5432, protocol="tcp")
    assert [(f.rule_id, f.location, f.severity) for f in findings] == [
        (OPEN_PORT, where, Severity.INFO),
        (DATABASE_EXPOSED, where, Severity.HIGH),  # PostgreSQL answered nmap's probe
    ]
    assert {f.target for f in findings} == {"localhost"}
    assert findings[0].evidence["service"] == "postgresql"


def test_many_ports_give_what_the_nmap_engine_gives_for_the_same_output() -> None:
    raw = (NMAP / "many.xml").read_bytes()
    imported = parse(NMAP / "many.xml")
    direct = parse_nmap_xml(raw, {"127.0.0.1": "asset-1"})
    assert [(f.rule_id, f.location, f.title, f.severity, f.evidence) for f in imported] == [
        (o.rule_id, o.location, o.title, o.severity, o.evidence) for o in direct
    ]
    assert {(f.location.protocol, f.location.port) for f in imported if f.rule_id == OPEN_PORT} == (
        open_ports(NMAP / "many.xml")
    )
    rules = Counter(f.rule_id for f in imported)
    assert rules[OPEN_PORT] == 5
    assert rules[VERSION_DISCLOSED] >= 1
    assert rules[DATABASE_EXPOSED] >= 2  # MariaDB, PostgreSQL and Redis answered
    assert all(f.target == "127.0.0.1" for f in imported)


ENGINE_FIXTURES = sorted((Path(__file__).parents[1] / "fixtures").glob("nmap_*.xml"))


@pytest.mark.parametrize("path", ENGINE_FIXTURES, ids=lambda p: p.name)
def test_the_nmap_engines_own_fixtures_give_the_same_findings_as_its_parser(path: Path) -> None:
    raw = path.read_bytes()
    direct = parse_nmap_xml(raw, {"0.0.0.0/0": "asset-1", "::/0": "asset-1"})
    assert [
        (f.rule_id, f.location, f.title, f.severity, f.cwe, f.evidence) for f in parse(path)
    ] == [(o.rule_id, o.location, o.title, o.severity, o.cwe, o.evidence) for o in direct]


def test_bom_and_crlf_change_nothing() -> None:
    assert parse(NMAP / "many_bom_crlf.xml") == parse(NMAP / "many.xml")


def test_parsing_twice_gives_the_same_identities() -> None:
    first = Counter((f.rule_id, f.location) for f in parse(NMAP / "many.xml"))
    assert first == Counter((f.rule_id, f.location) for f in parse(NMAP / "many.xml"))


def test_a_truncated_report_names_the_file_and_the_line_where_it_ends() -> None:
    data = (NMAP / "truncated.xml").read_bytes()
    last_line = data.count(b"\n") + 1
    with pytest.raises(ImportFormatError) as caught:
        parse(NMAP / "truncated.xml")
    assert caught.value.filename == "truncated.xml"
    assert caught.value.position == f"line {last_line}, column 1"
    assert "no element found" in caught.value.problem


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml", "external_dtd.xml"])
def test_entities_and_external_references_are_refused_at_the_doctype(name: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse(NMAP / name)
    assert caught.value.filename == name
    assert caught.value.position is not None and caught.value.position.startswith("line 2, ")
    assert "refused" in caught.value.problem


def test_nmaps_own_bare_doctype_is_accepted() -> None:
    assert b"<!DOCTYPE nmaprun>" in (NMAP / "many.xml").read_bytes()
    assert parse(NMAP / "many.xml")


def test_another_root_element_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b'<?xml version="1.0"?><OWASPZAPReport/>')
    assert "expected <nmaprun>" in caught.value.problem


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_bytes(b"\xef\xbb\xbf \r\n")
    assert "empty file" in caught.value.problem

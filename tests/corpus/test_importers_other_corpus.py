"""Real reports from the shared corpus through the gitleaks, ZAP, nuclei, nmap and VEX importers.

Every file of each group must be recognised by the registry's sniffing as its format, parse,
and give findings with a rule id, a valid severity and the same identities on a second parse.
The deliberate exceptions are listed in EXCEPTIONS with the reason, per file. Counts for a few
named files are computed here from the raw file, independently of the importers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from defusedxml import ElementTree
from tests.conftest import CORPUS

from autosec.domain.models import Location, Severity
from autosec.engines.importers.base import SNIFF_BYTES, ImportedFinding, ImportFormatError
from autosec.engines.importers.registry import get_importer, sniff_format
from autosec.engines.nmap.parser import parse_nmap_xml

DOJO = "scanners/DefectDojo__django-DefectDojo"
# corpus folder -> the format every file in it is (unless listed in EXCEPTIONS)
GROUPS = {
    f"{DOJO}/gitleaks": "gitleaks",
    "scanners/gitleaks__gitleaks/gitleaks": "gitleaks",
    f"{DOJO}/zap": "zap",
    "scanners/zaproxy__zap-extensions/zap": "zap",
    f"{DOJO}/nuclei": "nuclei",
    f"{DOJO}/nmap": "nmap-xml",
    f"{DOJO}/cyclonedx": "cyclonedx-vex",
    "sbom/CycloneDX__bom-examples/VEX": "cyclonedx-vex",
}
# Files no sniffer can or should claim, with the reason. "parse" says what the group's
# importer does with the file when it is named explicitly: a count of findings, or a refusal.
EXCEPTIONS: dict[str, tuple[str, int | str]] = {
    f"{DOJO}/gitleaks/no_findings.json": ("the literal null: no tool can be told from it", 0),
    "scanners/gitleaks__gitleaks/gitleaks/empty.json": ("[]: no tool can be told from it", 0),
    "scanners/gitleaks__gitleaks/gitleaks/csv_simple.csv": (
        "gitleaks' CSV report, not its JSON",
        "refused",
    ),
    "scanners/zaproxy__zap-extensions/zap/basic-traditional-json.json": (
        "ZAP's traditional JSON report, not its XML",
        "refused",
    ),
    "scanners/zaproxy__zap-extensions/zap/basic-traditional-json-plus.json": (
        "ZAP's traditional JSON-plus report, not its XML",
        "refused",
    ),
    f"{DOJO}/nuclei/empty.jsonl": ("0 bytes: nuclei writes nothing when nothing matched", 0),
    f"{DOJO}/nuclei/no_findings.json": ("0 bytes: nuclei writes nothing when nothing matched", 0),
    f"{DOJO}/cyclonedx/jake.xml": ("an SBOM without vulnerabilities", "refused"),
    f"{DOJO}/cyclonedx/retirejs.latest.xml": ("an SBOM without vulnerabilities", "refused"),
    "sbom/CycloneDX__bom-examples/VEX/bom.json": (
        "the SBOM the VEX example refers to: no vulnerabilities",
        "refused",
    ),
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
PARSED = [(rel, fmt) for rel, fmt in CASES if rel not in EXCEPTIONS]


@pytest.fixture(autouse=True)
def _needs_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")


def parse(rel: str, fmt: str) -> list[ImportedFinding]:
    with (CORPUS / rel).open("rb") as stream:
        return list(get_importer(fmt).parse(stream, rel))


def sniffed(rel: str) -> str | None:
    head = (CORPUS / rel).read_bytes()[:SNIFF_BYTES]
    try:
        return sniff_format(head)
    except ModuleNotFoundError as exc:  # a registered importer not in this checkout yet
        pytest.skip(f"the registry lists an importer that is missing here: {exc.name}")


def test_every_group_has_files() -> None:
    groups = Counter(fmt for _, fmt in CASES)
    assert set(groups) == set(GROUPS.values())
    for folder in GROUPS:
        assert any(rel.startswith(folder + "/") for rel, _ in CASES), folder
    assert set(EXCEPTIONS) <= {rel for rel, _ in CASES}, "an exception names a missing file"


@pytest.mark.parametrize(("rel", "fmt"), PARSED, ids=[rel for rel, _ in PARSED])
def test_the_registry_sniffs_the_format(rel: str, fmt: str) -> None:
    assert sniffed(rel) == fmt


@pytest.mark.parametrize("rel", sorted(EXCEPTIONS))
def test_the_exceptions_are_claimed_by_no_format(rel: str) -> None:
    assert sniffed(rel) is None, EXCEPTIONS[rel][0]


@pytest.mark.parametrize("rel", sorted(EXCEPTIONS))
def test_the_exceptions_parse_as_documented_when_named_explicitly(rel: str) -> None:
    fmt = dict(CASES)[rel]
    expected = EXCEPTIONS[rel][1]
    if expected == "refused":
        with pytest.raises(ImportFormatError) as caught:
            parse(rel, fmt)
        assert caught.value.filename == rel and caught.value.position
    else:
        assert len(parse(rel, fmt)) == expected


@pytest.mark.parametrize(("rel", "fmt"), PARSED, ids=[rel for rel, _ in PARSED])
def test_parse_gives_well_formed_findings_with_stable_identities(rel: str, fmt: str) -> None:
    findings = parse(rel, fmt)
    for finding in findings:
        assert finding.rule_id.strip(), finding
        assert isinstance(finding.severity, Severity)
        assert isinstance(finding.location, Location)
        assert finding.title.strip()
    first = Counter((f.rule_id, f.location) for f in findings)
    second = Counter((f.rule_id, f.location) for f in parse(rel, fmt))
    assert first == second


# --------------------------------------------------------------- counts computed from the files


def _json_items(rel: str) -> list[dict]:
    return json.loads((CORPUS / rel).read_text(encoding="utf-8")) or []


def _json_lines(rel: str) -> list[dict]:
    lines = (CORPUS / rel).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _zap_urls(rel: str) -> int:
    """Distinct (alert, URL without query values and fragment) pairs, per alert item."""
    total = 0
    for item in ElementTree.parse(CORPUS / rel).iter("alertitem"):
        seen = set()
        for uri in item.iter("uri"):
            parts = urlsplit((uri.text or "").strip())
            port = parts.port or {"http": 80, "https": 443}[parts.scheme.lower()]
            names = frozenset(name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
            seen.add(
                (
                    parts.scheme.lower(),
                    (parts.hostname or "").lower(),
                    port,
                    parts.path or "/",
                    names,
                )
            )
        total += len(seen)
    return total


def _open_ports(rel: str) -> int:
    return sum(
        1
        for port in ElementTree.parse(CORPUS / rel).iter("port")
        if port.find("state") is not None and port.find("state").get("state") == "open"
    )


def _vex_pairs(rel: str) -> int:
    """Vulnerability x distinct affected ref."""
    document = json.loads((CORPUS / rel).read_text(encoding="utf-8"))
    return sum(
        len({a["ref"] for a in vulnerability.get("affects", [])}) or 1
        for vulnerability in document.get("vulnerabilities", [])
    )


def _old_extension_vulnerabilities(rel: str) -> int:
    tag = "{http://cyclonedx.org/schema/ext/vulnerability/1.0}vulnerability"
    return sum(1 for _ in ElementTree.parse(CORPUS / rel).iter(tag))


KNOWN_COUNTS: list[
    tuple[str, str, Callable[[str], int], Callable[[list[ImportedFinding]], int]]
] = [
    (f"{DOJO}/gitleaks/data_many.json", "gitleaks", lambda r: len(_json_items(r)), len),
    (f"{DOJO}/gitleaks/version_7.5.0.json", "gitleaks", lambda r: len(_json_items(r)), len),
    (f"{DOJO}/gitleaks/redacted_data_many.json", "gitleaks", lambda r: len(_json_items(r)), len),
    (
        "scanners/gitleaks__gitleaks/gitleaks/json_simple.json",
        "gitleaks",
        lambda r: len(_json_items(r)),
        len,
    ),
    (f"{DOJO}/zap/some_2.9.0.xml", "zap", _zap_urls, len),
    (f"{DOJO}/zap/dvwa_baseline_dojo.xml", "zap", _zap_urls, len),
    (f"{DOJO}/zap/zap-results-first-scan.xml", "zap", _zap_urls, len),
    (f"{DOJO}/nuclei/many_findings.json", "nuclei", lambda r: len(_json_lines(r)), len),
    (f"{DOJO}/nuclei/multiple_v3.json", "nuclei", lambda r: len(_json_items(r)), len),
    (
        f"{DOJO}/nmap/issue4406.xml",
        "nmap-xml",
        _open_ports,
        lambda found: sum(1 for f in found if f.rule_id == "nmap.open-port"),
    ),
    (f"{DOJO}/cyclonedx/jake2.json", "cyclonedx-vex", _vex_pairs, len),
    (
        "sbom/CycloneDX__bom-examples/VEX/CISA-Use-Cases/Case-2/vex.json",
        "cyclonedx-vex",
        _vex_pairs,
        len,
    ),
    (f"{DOJO}/cyclonedx/grype_dd_1_14_1.xml", "cyclonedx-vex", _old_extension_vulnerabilities, len),
]


@pytest.mark.parametrize(
    ("rel", "fmt", "expected", "counted"), KNOWN_COUNTS, ids=[case[0] for case in KNOWN_COUNTS]
)
def test_known_counts(
    rel: str,
    fmt: str,
    expected: Callable[[str], int],
    counted: Callable[[list[ImportedFinding]], int],
) -> None:
    want = expected(rel)
    assert want > 0
    assert counted(parse(rel, fmt)) == want


@pytest.mark.parametrize(
    "rel", [rel for rel, fmt in PARSED if fmt == "gitleaks"], ids=lambda rel: rel
)
def test_gitleaks_secrets_from_real_reports_never_appear_in_clear(rel: str) -> None:
    items = _json_items(rel)
    secrets = {item.get("Secret") or item.get("offender") for item in items} - {"REDACTED", None}
    assert secrets or all("REDACTED" in json.dumps(item) for item in items)
    for finding in parse(rel, "gitleaks"):
        for secret in secrets:
            assert secret not in repr(finding)


@pytest.mark.parametrize(
    "rel", [rel for rel, fmt in PARSED if fmt == "nmap-xml"], ids=lambda rel: rel
)
def test_nmap_reports_give_what_the_nmap_engine_parser_gives(rel: str) -> None:
    direct = parse_nmap_xml((CORPUS / rel).read_bytes(), {"0.0.0.0/0": "a", "::/0": "a"})
    imported = parse(rel, "nmap-xml")
    assert [(f.rule_id, f.location, f.evidence) for f in imported] == [
        (o.rule_id, o.location, o.evidence) for o in direct
    ]


def test_vex_states_from_the_cisa_examples_are_carried() -> None:
    folder = "sbom/CycloneDX__bom-examples/VEX/CISA-Use-Cases/Case-1"
    states = {
        name: {f.evidence.get("vex_state") for f in parse(f"{folder}/{name}", "cyclonedx-vex")}
        for name in ("vex-affected.json", "vex-fixed.json", "vex-under_investigation.json")
    }
    assert states == {
        "vex-affected.json": {"exploitable"},
        "vex-fixed.json": {"resolved"},
        "vex-under_investigation.json": {"in_triage"},
    }

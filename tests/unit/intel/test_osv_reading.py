"""Reading OSV records: JSON and YAML files, folders, the published all.zip, and bad input."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autosec.intel.osv import (
    OsvError,
    advisory_from_dict,
    iter_osv,
    iter_osv_zip,
    parse_osv_bytes,
    read_osv_file,
)

RECORD = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": "2024-06-17T21:37:20Z",
    "aliases": ["CVE-2024-0001"],
    "summary": "A demo flaw",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Demo_Lib", "purl": "pkg:pypi/demo-lib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.10"}]}],
            "versions": ["1.0", "1.9"],
            "database_specific": {"last_known_affected_version_range": "<= 1.9"},
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "database_specific": {"cwe_ids": ["CWE-79"], "severity": "HIGH"},
    "references": [{"type": "WEB", "url": "https://example.org/advisory"}],
}

YAML_RECORD = """\
id: PYSEC-2099-1
modified: 2024-01-29T16:22:26.409794Z
published: 2023-11-30T07:15:00Z
withdrawn: 2024-02-01T00:00:00Z
aliases:
- CVE-2099-0001
affected:
- package:
    ecosystem: PyPI
    name: demo
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: 0
    - fixed: 1.10
  versions:
  - 1.0
  - 1.9
"""


def write_json(folder: Path, record: dict, name: str | None = None) -> Path:
    path = folder / (name or f"{record['id']}.json")
    path.write_text(json.dumps(record))
    return path


def test_a_json_record_becomes_an_advisory(tmp_path: Path) -> None:
    advisory = read_osv_file(write_json(tmp_path, RECORD))
    assert advisory.id == "GHSA-aaaa-bbbb-cccc"
    assert advisory.modified == datetime(2024, 6, 17, 21, 37, 20, tzinfo=UTC)
    assert advisory.all_ids == ("GHSA-aaaa-bbbb-cccc", "CVE-2024-0001")
    assert advisory.cve_ids == ("CVE-2024-0001",)
    assert advisory.cwe_ids == ("CWE-79",)
    assert advisory.ghsa_severity == "HIGH"
    assert advisory.withdrawn is None
    (entry,) = advisory.affected
    assert (entry.ecosystem, entry.name, entry.purl) == ("PyPI", "Demo_Lib", "pkg:pypi/demo-lib")
    assert [(e.kind, e.version) for e in entry.ranges[0].events] == [
        ("introduced", "0"),
        ("fixed", "1.10"),
    ]
    assert entry.last_known_affected_version_range == "<= 1.9"
    assert advisory.references == ("https://example.org/advisory",)
    assert advisory.severity[0].type == "CVSS_V3"


def test_yaml_keeps_versions_and_timestamps_as_written(tmp_path: Path) -> None:
    """Unquoted ``1.10`` is the version 1.10, not the float 1.1; timestamps stay exact."""
    path = tmp_path / "PYSEC-2099-1.yaml"
    path.write_text(YAML_RECORD)
    advisory = read_osv_file(path)
    (entry,) = advisory.affected
    assert entry.versions == ("1.0", "1.9")
    assert [e.version for e in entry.ranges[0].events] == ["0", "1.10"]
    assert advisory.modified == datetime(2024, 1, 29, 16, 22, 26, 409794, tzinfo=UTC)
    assert advisory.withdrawn == datetime(2024, 2, 1, tzinfo=UTC)


def test_the_stored_form_reads_back_equal(tmp_path: Path) -> None:
    advisory = read_osv_file(write_json(tmp_path, RECORD))
    assert advisory_from_dict(json.loads(json.dumps(advisory.to_dict()))) == advisory


def test_a_folder_is_read_recursively_in_a_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    write_json(tmp_path / "b", {**RECORD, "id": "GHSA-2"})
    write_json(tmp_path, {**RECORD, "id": "GHSA-1"})
    (tmp_path / "b" / "PYSEC-2099-1.yaml").write_text(YAML_RECORD)
    (tmp_path / "README.md").write_text("not a record")
    assert [a.id for a in iter_osv(tmp_path)] == ["GHSA-1", "GHSA-2", "PYSEC-2099-1"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"id": None}, "id: missing"),
        ({"modified": "yesterday"}, "modified: not an RFC 3339 timestamp: 'yesterday'"),
        ({"aliases": "CVE-1"}, "aliases: expected a list"),
        (
            {"affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{}]}]},
            "affected[0].ranges[0].type: missing",
        ),
        (
            {
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "x"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fix": "1"}]}
                        ],
                    }
                ]
            },
            "affected[0].ranges[0].events[1]: unknown event 'fix'",
        ),
        (
            {
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "x"},
                        "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}],
                    }
                ]
            },
            "affected[0].ranges[0].repo: missing (required for GIT ranges)",
        ),
        (
            {"affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": [1.1]}]},
            "affected[0].versions[0]: expected a version string, got 1.1",
        ),
    ],
)
def test_malformed_records_name_the_file_and_the_field(
    tmp_path: Path, change: dict, expected: str
) -> None:
    record = {k: v for k, v in {**RECORD, **change}.items() if v is not None}
    path = write_json(tmp_path, record, "bad.json")
    with pytest.raises(OsvError) as info:
        read_osv_file(path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)


def test_syntax_errors_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "id": "GHSA-1",\n  "modified": \n}')
    with pytest.raises(OsvError, match=r"broken\.json: line 4, column 1: invalid JSON"):
        read_osv_file(path)
    with pytest.raises(OsvError, match=r"x\.yaml: line 2, column \d+: invalid YAML"):
        parse_osv_bytes(b"id: a\n  - : [\n", "x.yaml", yaml_format=True)


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_the_published_all_zip_is_read_member_by_member(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "all.zip",
        {
            "GHSA-1.json": json.dumps({**RECORD, "id": "GHSA-1"}).encode(),
            "PYSEC-2099-1.yaml": YAML_RECORD.encode(),
            "LICENSE.txt": b"not a record",
        },
    )
    assert [a.id for a in iter_osv(archive)] == ["GHSA-1", "PYSEC-2099-1"]


@pytest.mark.parametrize(
    "name", ["../evil.json", "/etc/evil.json", "a/../../evil.json", "C:x.json"]
)
def test_a_path_traversal_member_refuses_the_archive(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "all.zip", {name: json.dumps(RECORD).encode()})
    with pytest.raises(OsvError, match="refusing member name"):
        list(iter_osv_zip(archive))


def test_an_oversized_member_refuses_the_archive(tmp_path: Path) -> None:
    big = {**RECORD, "details": "x" * 5000}
    archive = make_zip(tmp_path / "all.zip", {"GHSA-big.json": json.dumps(big).encode()})
    with pytest.raises(OsvError, match=r"all\.zip!GHSA-big\.json: \d+ bytes, more than the 1000"):
        list(iter_osv_zip(archive, max_member_bytes=1000))


def test_not_a_zip_and_a_bad_member_are_named(tmp_path: Path) -> None:
    fake = tmp_path / "all.zip"
    fake.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(OsvError, match="not a readable zip archive"):
        list(iter_osv(fake))
    archive = make_zip(tmp_path / "bad.zip", {"GHSA-1.json": b'{"id": "GHSA-1"}'})
    with pytest.raises(OsvError, match=r"bad\.zip!GHSA-1\.json.*modified: missing"):
        list(iter_osv(archive))


# --- the shared corpus ---------------------------------------------------------------------


def test_every_corpus_record_reads_and_round_trips(corpus: Path) -> None:
    advisories = list(iter_osv(corpus / "osv"))
    assert len(advisories) == 202
    for advisory in advisories:
        assert advisory_from_dict(advisory.to_dict()) == advisory, advisory.id
    withdrawn = sorted(a.id for a in advisories if a.withdrawn)
    assert "PYSEC-2020-221" in withdrawn and "PYSEC-2022-15" in withdrawn
    assert len(withdrawn) == 8


def test_corpus_log4j_and_snakeyaml_records(corpus: Path) -> None:
    folder = corpus / "osv" / "github__advisory-database"
    log4j = read_osv_file(folder / "GHSA-jfh8-c2jp-5v3q.json")
    assert log4j.aliases == ("CVE-2021-44228",)
    assert len(log4j.affected) == 3
    assert {a.name for a in log4j.affected} == {"org.apache.logging.log4j:log4j-core"}
    snakeyaml = read_osv_file(folder / "GHSA-mjmj-j48q-9wg2.json")
    assert snakeyaml.affected[0].last_known_affected_version_range == "<= 1.33"


def test_corpus_yaml_with_an_unquoted_timestamp(corpus: Path) -> None:
    path = corpus / "osv" / "pypa__advisory-database" / "hyperledger" / "PYSEC-2022-43055.yaml"
    advisory = read_osv_file(path)
    assert advisory.withdrawn == datetime(2023, 8, 22, 6, 18, tzinfo=UTC)

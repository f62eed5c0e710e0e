"""The sbom engine's pure parser: an inventory and an advisory lookup in, observations out."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from autosec.domain.fingerprint import fingerprint
from autosec.domain.models import Location, Severity
from autosec.engines.sbom import parser
from autosec.intel.matching import AdvisoryIndex
from autosec.intel.osv import Advisory, parse_osv_record

PATH = "/srv/sboms/shop.cdx.json"


def advisory(advisory_id: str, name: str, *events: dict, **fields: Any) -> Advisory:
    ecosystem = fields.pop("ecosystem", "npm")
    range_type = fields.pop("range_type", "ECOSYSTEM")
    ranges = [{"type": range_type, "events": list(events)}]
    if range_type == "GIT":
        ranges[0]["repo"] = "https://example.org/x.git"
    record = {
        "id": advisory_id,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": ecosystem, "name": name}, "ranges": ranges}],
        **fields,
    }
    return parse_osv_record(record, advisory_id)


ADVISORIES = [
    advisory(
        "GHSA-semv", "semver", {"introduced": "0"}, {"fixed": "5.7.2"},
        {"introduced": "6.0.0"}, {"fixed": "6.3.1"}, aliases=["CVE-2022-25883"],
        summary="semver ReDoS",
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
        database_specific={"cwe_ids": ["CWE-1333"], "severity": "MODERATE"},
    ),
    advisory(
        "PYSEC-semv", "semver", {"introduced": "0"}, {"fixed": "5.7.2"},
        aliases=["CVE-2022-25883", "GHSA-semv"],
    ),
    advisory("GHSA-rated", "braces", {"introduced": "0"}, {"fixed": "3.0.3"},
             database_specific={"severity": "HIGH"}),
    advisory("OSV-git", "ws", {"introduced": "0"}, {"fixed": "abc"}, range_type="GIT"),
]  # fmt: skip


def inventory(*components: dict, path: str = PATH) -> bytes:
    document = {
        "path": path,
        "sha256": "0" * 64,
        "format": "cyclonedx-json",
        "spec_version": "1.5",
        "warnings": [],
        "components": [
            {"type": "library", "bom_ref": None, "release_date": None, **c} for c in components
        ],
    }
    return json.dumps({"autosec_sbom_inventory": 1, "documents": [document]}).encode()


def npm(name: str, version: str, **extra: Any) -> dict:
    return {"name": name, "version": version, "purl": f"pkg:npm/{name}@{version}", **extra}


LOOKUP = AdvisoryIndex(ADVISORIES).lookup


def parse(raw: bytes, **options: Any):
    return parser.parse_sbom_output(raw, {PATH: "shop"}, LOOKUP, **options)


def test_every_version_of_a_package_makes_one_observation_per_vulnerability() -> None:
    raw = inventory(npm("semver", "5.7.1"), npm("semver", "6.3.0"), npm("semver", "7.5.4"))
    (observation,) = parse(raw)
    assert observation.rule_id == "sbom.vulnerable-component:CVE-2022-25883"
    assert observation.title == "semver 5.7.1, 6.3.0: CVE-2022-25883 (GHSA-semv, PYSEC-semv)"
    assert observation.location == Location(file=PATH, purl="pkg:npm/semver")
    assert observation.cve_ids == ("CVE-2022-25883",)
    assert observation.cwe == "CWE-1333"
    assert (observation.severity, observation.cvss_score) == (Severity.LOW, 3.7)
    assert observation.description == "semver ReDoS Fixed in 5.7.2, 6.3.1."
    assert observation.evidence["fixed_versions"] == ["5.7.2", "6.3.1"]
    assert observation.evidence["advisory_ids"] == ["GHSA-semv", "PYSEC-semv"]
    assert observation.evidence["purls"] == ["pkg:npm/semver@5.7.1", "pkg:npm/semver@6.3.0"]
    assert observation.evidence["severity_source"] == "cvss"


def test_the_identity_survives_an_upgrade_that_stays_vulnerable() -> None:
    before = parse(inventory(npm("semver", "5.7.0")))
    after = parse(inventory(npm("semver", "5.7.1")))
    assert fingerprint(before[0]) == fingerprint(after[0])
    assert parse(inventory(npm("semver", "5.7.2"))) == []


def test_severity_from_cvss_then_the_ghsa_rating_then_a_stated_default() -> None:
    (rated,) = parse(inventory(npm("braces", "2.3.2")))
    assert (rated.severity, rated.cvss_vector, rated.evidence["severity_source"]) == (
        Severity.HIGH,
        None,
        "ghsa",
    )
    unrated = advisory("OSV-plain", "left-pad", {"introduced": "0"}, {"fixed": "2.0.0"})
    (plain,) = parser.parse_sbom_output(
        inventory(npm("left-pad", "1.0.0")), {PATH: "shop"}, AdvisoryIndex([unrated]).lookup
    )
    assert plain.severity is Severity.MEDIUM
    assert plain.evidence["severity_source"] == "default (the advisories state no severity)"


def test_an_unassessable_advisory_is_an_info_observation() -> None:
    (observation,) = parse(inventory(npm("ws", "7.0.0")))
    assert observation.rule_id == "sbom.unassessed-advisory:OSV-git"
    assert observation.severity is Severity.INFO
    assert observation.title == "ws 7.0.0: OSV-git could not be assessed"
    assert "only commit (GIT) ranges" in observation.description


def test_freshness_flags_dated_components_older_than_the_policy() -> None:
    raw = inventory(
        npm("old", "1.0.0", release_date="2020-01-01"),
        npm("new", "1.0.0", release_date="2025-12-01"),
        npm("undated", "1.0.0"),
    )
    (observation,) = parse(raw, max_age_days=365, today=date(2026, 1, 1))
    assert observation.rule_id == "sbom.outdated-component"
    assert observation.severity is Severity.LOW
    assert observation.title == "old 1.0.0 was released 2192 days ago"
    assert observation.evidence["max_age_days"] == 365
    assert parse(raw) == []  # no policy, no freshness findings
    (assessment,) = parser.assess(
        parser.read_inventory(raw), LOOKUP, max_age_days=365, today=date(2026, 1, 1)
    )
    assert assessment.counts()["undated"] == 1


def test_components_that_cannot_be_matched_are_counted() -> None:
    raw = inventory(
        {"name": "libc", "version": "2.31", "purl": None},
        {"name": "thing", "version": "1", "purl": "pkg:generic/thing@1"},
        npm("braces", "2.3.2"),
    )
    (assessment,) = parser.assess(parser.read_inventory(raw), LOOKUP)
    assert [(c.name, reason) for c, reason in assessment.unchecked] == [
        ("libc", "no package URL"),
        ("thing", "package URL 'pkg:generic/thing@1': no OSV ecosystem for purl type 'generic'"),
    ]
    assert assessment.counts() == {
        "components": 3,
        "vulnerable": 1,
        "vulnerabilities": 1,
        "unassessed": 0,
        "outdated": 0,
        "unchecked": 2,
        "undated": 0,
    }


def test_the_output_must_cover_exactly_the_runs_targets() -> None:
    with pytest.raises(parser.SbomParseError, match=r"missing \['/other.cdx.json'\]"):
        parser.parse_sbom_output(
            inventory(npm("braces", "2.3.2")),
            {PATH: "shop", "/other.cdx.json": "other"},
            LOOKUP,
        )
    with pytest.raises(parser.SbomParseError, match="unexpected"):
        parser.parse_sbom_output(inventory(npm("braces", "2.3.2")), {}, LOOKUP)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"documents": []}', "lacks 'autosec_sbom_inventory': 1"),
        (b'{"autosec_sbom_inventory": 1, "documents": [{"path": "x"}]}', "documents[0]: malformed"),
    ],
)
def test_reader_output_that_is_not_an_inventory_is_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(parser.SbomParseError, match=problem.replace("[", r"\[")):
        parser.read_inventory(raw)


def test_the_report_lists_each_vulnerable_component() -> None:
    raw = inventory(npm("semver", "6.3.0"), npm("braces", "3.0.3"))
    (assessment,) = parser.assess(parser.read_inventory(raw), LOOKUP)
    report = parser.assessment_report(assessment)
    (entry,) = report["vulnerable"]
    assert entry["purl"] == "pkg:npm/semver@6.3.0"
    assert entry["ids"] == ["CVE-2022-25883", "GHSA-semv", "PYSEC-semv"]  # the whole alias group
    assert entry["advisory_ids"] == ["GHSA-semv"]  # PYSEC-semv covers only [0, 5.7.2)
    assert entry["fixed_versions"] == ["6.3.1"]
    assert entry["severity"] == "low"
    assert json.loads(json.dumps(report)) == report

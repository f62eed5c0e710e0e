"""Frameworks as data: every YAML file is registered, validates, and cites evidence queries that
exist; a broken framework file is refused with its problem named."""

from __future__ import annotations

from datetime import date

import pytest

from autosec.domain.models import Severity
from autosec.reporting.framework import (
    FRAMEWORKS,
    KEV_TIER,
    FrameworkError,
    framework_files,
    load_framework,
    parse_framework,
)
from autosec.reporting.packs import PACK_EVIDENCE, framework_due
from autosec.stages.report import EVIDENCE_QUERIES, pack_framework, unknown_evidence

VALID = b"""
id: sample
name: Sample
version: 1
cadence: monthly
sla_tiers:
  - {name: High, severities: [critical, high], days: 30}
  - {name: Rest, severities: [medium, low]}
poam_controls: [C-1]
controls:
  - {id: C-1, title: One, requirement: Scan everything, evidence: [inventory, findings]}
"""


def test_every_file_in_the_folder_is_registered_and_every_registration_has_a_file() -> None:
    assert sorted(FRAMEWORKS.values()) == framework_files()


@pytest.mark.parametrize("framework_id", sorted(FRAMEWORKS))
def test_every_framework_validates_and_cites_registered_evidence(framework_id: str) -> None:
    loaded = pack_framework(framework_id)  # refuses unknown evidence ids
    framework = loaded.framework
    assert framework.id == framework_id and len(loaded.sha256) == 64
    assert unknown_evidence(framework) == []
    for control in framework.controls:
        assert control.evidence, control.id
        assert set(control.evidence) <= set(EVIDENCE_QUERIES), control.id
    assert set(framework.poam_controls) <= {c.id for c in framework.controls}


def test_the_evidence_registry_answers_exactly_what_the_pack_builder_reads() -> None:
    assert set(EVIDENCE_QUERIES) == set(PACK_EVIDENCE)
    assert all(callable(query) for query in EVIDENCE_QUERIES.values())


def test_the_frameworks_say_what_the_standards_say() -> None:
    fedramp = load_framework("fedramp").framework
    assert fedramp.cadence == "monthly" and fedramp.coverage_target == 1.0
    assert [(t.name, t.days) for t in fedramp.sla_tiers] == [
        ("High", 30),
        ("Moderate", 90),
        ("Low", 180),
    ]
    assert fedramp.tier_for(Severity.CRITICAL).name == "High"  # critical counts as high
    assert fedramp.tier_for(Severity.INFO) is None
    pci = load_framework("pci_dss").framework
    assert pci.cadence == "quarterly"
    assert set(pci.verified_fix_severities) == {Severity.HIGH, Severity.CRITICAL}
    assert "11.3.1" in {c.id for c in pci.controls}
    assert {c.id for c in load_framework("soc2").framework.controls} == {"CC7.1"}
    assert {c.id for c in load_framework("iso27001").framework.controls} == {"A.8.8"}


def test_a_registered_id_that_names_another_framework_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(FRAMEWORKS, "other", FRAMEWORKS["soc2"])
    load_framework.cache_clear()
    try:
        with pytest.raises(FrameworkError, match="does not match its registry key 'other'"):
            load_framework("other")
    finally:
        load_framework.cache_clear()
    with pytest.raises(KeyError, match="unknown framework 'nope'"):
        load_framework("nope")


def test_a_framework_citing_an_unknown_query_is_refused_by_the_stage(monkeypatch) -> None:
    loaded = parse_framework(VALID.replace(b"findings]", b"findings, crystal_ball]"), "x.yaml")
    assert unknown_evidence(loaded.framework) == ["crystal_ball"]
    monkeypatch.setattr("autosec.stages.report.load_framework", lambda _: loaded)
    with pytest.raises(FrameworkError, match=r"x\.yaml: .*\['crystal_ball'\]"):
        pack_framework("sample")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ((b"[medium, low]", b"[medium, high]"), "severity 'high' is in tier 'High' and"),
        ((b"poam_controls: [C-1]", b"poam_controls: [C-9]"), "['C-9'] are not controls"),
        ((b"[critical, high]", b"[critical, urgent]"), "unknown severity 'urgent'"),
        ((b"cadence: monthly", b"cadence: weekly"), "cadence"),
        ((b"days: 30", b"days: 0"), "sla_tiers.0.days"),
        ((b"[inventory, findings]", b"[inventory, inventory]"), "more than once"),
        ((b"[inventory, findings]", b"[inventory, 'drop table']"), "not a query id"),
        ((b"name: Sample", b"name: Sample\nname: Again"), "duplicate key 'name'"),
        ((b"name: Sample", b"name: Sample\nextra: 1"), "extra: Extra inputs"),
        ((b"- {name: Rest", b"- {name: KEV due date"), "tier names must be unique"),
    ],
)
def test_broken_framework_files_are_refused_with_the_problem_named(change, problem) -> None:
    raw = VALID.replace(*change)
    assert raw != VALID
    with pytest.raises(FrameworkError) as caught:
        parse_framework(raw, "broken.yaml")
    assert str(caught.value).startswith("framework file broken.yaml: ")
    assert problem in str(caught.value)


def test_not_a_mapping_and_not_utf8_are_refused() -> None:
    with pytest.raises(FrameworkError, match="expected a mapping"):
        parse_framework(b"- a\n- b\n", "list.yaml")
    with pytest.raises(FrameworkError, match="not UTF-8"):
        parse_framework(b"\xff\xfe", "binary.yaml")


def test_a_tier_without_days_keeps_the_policy_due_date_and_kev_wins_when_earlier() -> None:
    framework = parse_framework(VALID, "x.yaml").framework
    seen = date(2026, 3, 1)
    assert framework_due(framework, Severity.HIGH, seen, None, None) == ("High", date(2026, 3, 31))
    assert framework_due(framework, Severity.LOW, seen, date(2026, 9, 1), None) == (
        "Rest",
        date(2026, 9, 1),
    )
    assert framework_due(framework, Severity.HIGH, seen, None, date(2026, 3, 10)) == (
        KEV_TIER,
        date(2026, 3, 10),
    )
    # A later KEV date does not push the deadline back.
    assert framework_due(framework, Severity.HIGH, seen, None, date(2026, 5, 1)) == (
        "High",
        date(2026, 3, 31),
    )
    assert framework_due(framework, Severity.INFO, seen, None, None) == (None, None)
    no_kev = parse_framework(VALID + b"kev_due_date_wins: false\n", "x.yaml").framework
    assert framework_due(no_kev, Severity.HIGH, seen, None, date(2026, 3, 10))[0] == "High"

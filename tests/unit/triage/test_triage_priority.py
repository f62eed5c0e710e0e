"""The priority decision table: data, complete, CISA's outcomes, and every inference named."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import date

import pytest
import yaml

from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Severity
from autosec.triage.enrich import Enrichment, parse_cvss
from autosec.triage.priority import (
    POINTS,
    TABLE_PATH,
    PriorityTableError,
    load_table,
    mission_of,
    points_json,
    prioritise,
    table_from_data,
)

WORST = parse_cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
LOCAL = parse_cvss("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:L/A:N")


def _asset(environment="development", criticality="low", tags=()) -> Asset:
    return Asset(
        "a",
        "a",
        AssetKind.HOST,
        "cmdb",
        "team",
        Environment(environment),
        Criticality(criticality),
        (),
        tuple(tags),
    )


def _data() -> dict:
    return yaml.safe_load(TABLE_PATH.read_text())


# CISA's SSVC table: exploitation, automatable, technical impact, mission & well-being.
CISA = {
    ("none", "no", "partial", "low"): "track",
    ("none", "no", "total", "high"): "track*",
    ("none", "yes", "partial", "high"): "attend",
    ("poc", "no", "partial", "high"): "track*",
    ("poc", "no", "total", "medium"): "track*",
    ("poc", "yes", "total", "high"): "attend",
    ("active", "no", "partial", "high"): "attend",
    ("active", "no", "total", "medium"): "attend",
    ("active", "no", "total", "high"): "act",
    ("active", "yes", "partial", "low"): "attend",
    ("active", "yes", "total", "medium"): "act",
    ("active", "yes", "total", "high"): "act",
}


def test_the_shipped_table_decides_every_combination() -> None:
    table = load_table()
    assert table.unreachable() == []
    combinations = list(itertools.product(*POINTS.values()))
    assert len(combinations) == 72
    assert {table.decide(c)[0] for c in combinations} == set(table.outcomes)


@pytest.mark.parametrize(("points", "expected"), sorted(CISA.items()))
def test_controlled_exposure_follows_cisas_table(points, expected) -> None:
    assert load_table().decide((*points, "controlled"))[0] == expected


def test_immediate_is_only_for_the_worst_case_on_an_exposed_asset() -> None:
    table = load_table()
    assert table.decide(("active", "yes", "total", "high", "open")) == ("immediate", 1)
    immediate = [
        c for c in itertools.product(*POINTS.values()) if table.decide(c)[0] == "immediate"
    ]
    assert immediate == [("active", "yes", "total", "high", "open")]


def test_known_exploited_is_active_and_stated_not_inferred() -> None:
    decision = prioritise(Enrichment(known_exploited=True, cvss=WORST), Severity.HIGH, _asset())
    assert decision.points.exploitation == "active"
    assert "exploitation" not in decision.inferred


def test_epss_at_the_threshold_is_an_inferred_poc_and_below_it_is_none() -> None:
    threshold = load_table().epss_poc_threshold
    at = prioritise(Enrichment(epss_score=threshold, cvss=WORST), Severity.HIGH, _asset())
    below = prioritise(Enrichment(epss_score=threshold / 2, cvss=WORST), Severity.HIGH, _asset())
    assert at.points.exploitation == "poc"
    assert "EPSS" in dict(at.points.inferred)["exploitation"]
    assert below.points.exploitation == "none"


def test_points_from_the_vector_are_flagged_as_inferred_from_it() -> None:
    decision = prioritise(Enrichment(cvss=WORST), Severity.LOW, _asset())
    assert (decision.points.automatable, decision.points.technical_impact) == ("yes", "total")
    inferred = dict(decision.points.inferred)
    assert inferred["automatable"] == inferred["technical_impact"] == "from the CVSS 3.1 vector"
    local = prioritise(Enrichment(cvss=LOCAL), Severity.CRITICAL, _asset())
    assert (local.points.automatable, local.points.technical_impact) == ("no", "partial")


@pytest.mark.parametrize(
    ("severity", "impact"), [(Severity.CRITICAL, "total"), (Severity.HIGH, "partial")]
)
def test_without_a_usable_vector_the_assumptions_are_named(severity, impact) -> None:
    for enrichment in (Enrichment(), Enrichment(cvss=parse_cvss("CVSS:3.1/AV:N"))):
        decision = prioritise(enrichment, severity, _asset())
        inferred = dict(decision.points.inferred)
        assert decision.points.automatable == "no"
        assert inferred["automatable"].startswith("assumed no")
        assert decision.points.technical_impact == impact
        assert inferred["technical_impact"].startswith(f"from severity {severity.value}")


@pytest.mark.parametrize(
    ("environment", "criticality", "mission"),
    [
        ("development", "business_critical", "high"),
        ("production", "high", "high"),
        ("production", "low", "medium"),
        ("staging", "high", "medium"),
        ("staging", "medium", "low"),
    ],
)
def test_mission_from_the_asset(environment, criticality, mission) -> None:
    assert mission_of(_asset(environment, criticality)) == mission


def test_internet_exposure_raises_mission_and_wellbeing_one_step() -> None:
    exposed = Enrichment(cvss=WORST, internet_facing=True)
    low = prioritise(exposed, Severity.HIGH, _asset(tags=("internet-facing",)))
    assert (low.points.mission, low.points.exposure, low.points.mission_wellbeing) == (
        "low",
        "open",
        "medium",
    )
    top = prioritise(exposed, Severity.HIGH, _asset("production", "business_critical"))
    assert top.points.mission_wellbeing == "high"  # capped


def test_an_asset_missing_from_the_inventory_is_an_assumption() -> None:
    decision = prioritise(Enrichment(cvss=WORST), Severity.HIGH, None)
    assert decision.points.mission == "medium"
    assert "not in the inventory" in dict(decision.points.inferred)["mission"]


def test_the_stored_points_explain_the_outcome() -> None:
    decision = prioritise(
        Enrichment(known_exploited=True, cvss=WORST, internet_facing=True),
        Severity.CRITICAL,
        _asset("production", "business_critical", ("internet-facing",)),
    )
    stored = json.loads(points_json(decision))
    assert stored == {
        "priority": "immediate",
        "table": "autosec-ssvc-1",
        "row": 1,
        "exploitation": "active",
        "automatable": "yes",
        "technical_impact": "total",
        "mission": "high",
        "exposure": "open",
        "mission_wellbeing": "high",
        "inferred": {
            "automatable": "from the CVSS 3.1 vector",
            "technical_impact": "from the CVSS 3.1 vector",
        },
    }
    assert _data()["rows"][stored["row"] - 1][-1] == "immediate"


def test_a_table_with_a_gap_is_refused_naming_it() -> None:
    data = _data()
    data["rows"] = [r for r in data["rows"] if r[:4] != ["poc", "yes", "total", "medium"]]
    with pytest.raises(PriorityTableError, match=r"match no row.*'exploitation': 'poc'"):
        table_from_data(data, "t.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rows"].append(["sometimes", "yes", "total", "high", "*", "act"]), "row 38"),
        (lambda d: d["rows"].append(["none", "yes", "total", "high", "*", "panic"]), "'panic'"),
        (lambda d: d["rows"].append(["none", "yes"]), "has 2 values"),
        (lambda d: d.update(epss_poc_threshold=0), "epss_poc_threshold"),
        (lambda d: d.update(columns=["exploitation"]), "columns must be"),
        (lambda d: d.update(exposure_raises_mission={"open": 1}), "exposure_raises_mission"),
        (lambda d: d.pop("version"), "missing version"),
    ],
)
def test_a_broken_table_is_refused_with_a_clear_reason(change, message) -> None:
    data = _data()
    change(data)
    with pytest.raises(PriorityTableError, match=message):
        table_from_data(data, "t.yaml")


def test_an_unreadable_table_file_is_named(tmp_path) -> None:
    with pytest.raises(PriorityTableError, match="cannot read the priority table"):
        load_table(tmp_path / "missing.yaml")


def test_decisions_are_values_so_a_batch_encodes_each_once() -> None:
    a = prioritise(Enrichment(cvss=WORST), Severity.HIGH, _asset())
    b = prioritise(Enrichment(cvss=WORST, kev_due_date=date(2030, 1, 1)), Severity.HIGH, _asset())
    assert a == b and hash(a) == hash(b)
    assert dataclasses.replace(a, priority="act") != a

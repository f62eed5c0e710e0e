"""Black swan verdicts: every criterion on evidence, unknown facts never met, inferences named."""

from __future__ import annotations

import pytest

from autosec.config.policy import BlackSwanCriteria
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.black_swan import (
    CRITERIA,
    BlackSwanFacts,
    evaluate,
    parse_cvss_vector,
)
from autosec.policy.engine import FindingFacts

ALL = BlackSwanCriteria()
WORST = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def _asset(
    environment: str = "development", criticality: str = "low", tags: tuple[str, ...] = ()
) -> Asset:
    return Asset(
        id="edge",
        name="edge",
        kind=AssetKind.WEB_APP,
        source="test",
        owner="team-a",
        environment=Environment(environment),
        criticality=Criticality(criticality),
        tags=tags,
    )


EXPOSED = _asset(tags=("internet-facing",))
KNOWN = BlackSwanFacts(known_exploited=True, automatable=True, total_impact=True)


def _finding(kev: bool = True) -> FindingFacts:
    return FindingFacts(
        fingerprint="f" * 64, rule_id="r", engine="nmap", severity="critical", kev=kev
    )


def test_every_criterion_met_on_stated_facts_is_a_black_swan() -> None:
    verdict = evaluate(KNOWN, EXPOSED, ALL)

    assert verdict.is_black_swan
    assert verdict.met == dict.fromkeys(CRITERIA, True)
    assert verdict.missing == verdict.inferred == verdict.unknown == []


@pytest.mark.parametrize(
    ("asset", "expected"),
    [
        (_asset(tags=("internet-facing",)), True),
        (_asset("production", "business_critical"), True),
        (_asset("production", "high"), True),
        (_asset("production", "medium"), False),  # production, but not mission-critical
        (_asset("staging", "business_critical"), False),  # critical, but not production
        (_asset(tags=("internal",)), False),
    ],
)
def test_exposed_means_internet_facing_or_mission_critical_production(
    asset: Asset, expected: bool
) -> None:
    verdict = evaluate(KNOWN, asset, ALL)

    assert verdict.is_black_swan is expected
    assert verdict.met["exposed_or_mission_critical"] is expected
    if not expected:
        assert verdict.missing == [
            f"asset edge is neither tagged 'internet-facing' nor a production asset of high or "
            f"business_critical criticality ({asset.environment.value}, "
            f"{asset.criticality.value})"
        ]


@pytest.mark.parametrize("unknown", ["known_exploited", "automatable", "total_impact"])
def test_an_unknown_fact_is_not_met_and_is_named(unknown: str) -> None:
    facts = BlackSwanFacts(**{**dict.fromkeys(CRITERIA[:3], True), unknown: None})

    verdict = evaluate(facts, EXPOSED, ALL)

    assert not verdict.is_black_swan
    assert verdict.met[unknown] is False
    assert verdict.unknown == [unknown]
    assert verdict.missing == [f"{unknown} is unknown (an unknown fact is not met)"]


def test_a_criterion_the_policy_switches_off_is_not_required() -> None:
    facts = BlackSwanFacts(known_exploited=True, automatable=None, total_impact=True)
    criteria = BlackSwanCriteria(automatable=False)

    verdict = evaluate(facts, EXPOSED, criteria)

    assert verdict.is_black_swan
    assert "automatable" not in verdict.met
    assert verdict.unknown == []


def test_a_policy_requiring_nothing_declares_nothing() -> None:
    criteria = BlackSwanCriteria(**dict.fromkeys(CRITERIA, False))

    verdict = evaluate(KNOWN, EXPOSED, criteria)

    assert not verdict.is_black_swan
    assert verdict.met == {}
    assert "requires no criterion" in verdict.missing[0]


def test_finding_facts_alone_know_kev_but_not_automatable_or_impact() -> None:
    verdict = evaluate(_finding(kev=True), EXPOSED, ALL)

    assert not verdict.is_black_swan
    assert verdict.met["known_exploited"] is True
    assert verdict.unknown == ["automatable", "total_impact"]


def test_facts_inferred_from_the_cvss_vector_count_and_are_named() -> None:
    facts = BlackSwanFacts.from_finding(_finding(), cvss_vector=WORST)

    verdict = evaluate(facts, EXPOSED, ALL)

    assert verdict.is_black_swan
    assert verdict.inferred == ["automatable", "total_impact"]
    assert verdict.as_record()["inferred"] == ["automatable", "total_impact"]


def test_stated_facts_win_over_the_vector_and_are_not_called_inferred() -> None:
    facts = BlackSwanFacts.from_finding(_finding(), automatable=False, cvss_vector=WORST)

    verdict = evaluate(facts, EXPOSED, ALL)

    assert not verdict.is_black_swan
    assert verdict.inferred == ["total_impact"]
    assert verdict.missing == ["automatable is false"]


def test_not_in_kev_is_a_known_no() -> None:
    facts = BlackSwanFacts.from_finding(_finding(kev=False), cvss_vector=WORST)

    verdict = evaluate(facts, EXPOSED, ALL)

    assert not verdict.is_black_swan
    assert verdict.unknown == []
    assert verdict.missing == ["known_exploited is false"]


@pytest.mark.parametrize(
    ("vector", "automatable", "total_impact"),
    [
        (WORST, True, True),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", False, True),  # needs a user
        ("CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:L/A:N", False, False),  # local, partial
        ("CVSS:3.1/AV:N/AC:L", None, None),  # too little to tell
        ("CVSS:3.1/AV:A/C:H", False, None),  # one metric already says no
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", True, True),
        ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:H/SC:N/SI:N/SA:N", False, False),
        ("garbage", None, None),
        (None, None, None),
    ],
)
def test_inference_from_vectors(
    vector: str | None, automatable: bool | None, total_impact: bool | None
) -> None:
    facts = BlackSwanFacts.from_finding(_finding(), cvss_vector=vector)

    assert (facts.automatable, facts.total_impact) == (automatable, total_impact)
    named = [
        n
        for n, v in (("automatable", automatable), ("total_impact", total_impact))
        if v is not None
    ]
    assert list(facts.inferred) == named


def test_vector_parsing_is_tolerant() -> None:
    assert parse_cvss_vector(" CVSS:3.1/av:n/AC:L//bad/UI: ") == {"AV": "N", "AC": "L"}
    assert parse_cvss_vector("") == {}

"""Enrichment: KEV, EPSS, CVSS (v3.x and v4.0, with SSVC points inferred), asset context."""

from __future__ import annotations

import math
from datetime import date

import pytest

from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.triage.enrich import (
    EpssScore,
    Intel,
    KevEntry,
    cve_ids_of,
    enrich,
    parse_cvss,
)

V31_WORST = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V40_WORST = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"

EDGE = Asset(
    "edge",
    "edge",
    AssetKind.WEB_APP,
    "cmdb",
    "team-edge",
    Environment.PRODUCTION,
    Criticality.HIGH,
    ("192.0.2.10",),
    ("internet-facing", "pci"),
)


def _obs(cve_ids=(), vector=None, score=None) -> Observation:
    return Observation(
        "edge",
        "osv",
        "GHSA-xxxx",
        "vulnerable dependency",
        Severity.HIGH,
        Location(purl="pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"),
        cvss_vector=vector,
        cvss_score=score,
        cve_ids=tuple(cve_ids),
    )


@pytest.mark.parametrize(
    ("vector", "version", "score", "automatable", "total"),
    [
        (V31_WORST, "3.1", 9.8, True, True),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.0", 9.8, True, True),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N", "3.1", 4.3, False, False),
        ("CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 8.4, False, True),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:L", "3.1", 9.4, True, False),
        (V40_WORST, "4.0", 9.3, True, True),
        # Attack requirements present: an attacker cannot run it end to end unattended.
        (
            "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "4.0",
            9.2,
            False,
            True,
        ),
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N",
            "4.0",
            None,
            True,
            False,
        ),
    ],
)
def test_cvss_vectors_give_score_and_inferred_ssvc_points(
    vector, version, score, automatable, total
) -> None:
    facts = parse_cvss(vector)
    assert facts.problem is None
    assert facts.version == version
    if score is not None:
        assert facts.base_score == score
    assert 0 <= facts.base_score <= 10
    assert (facts.automatable, facts.total_impact) == (automatable, total)


@pytest.mark.parametrize(
    ("vector", "problem"),
    [
        ("CVSS:3.1/AV:N", "malformed CVSS vector"),
        ("CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "malformed CVSS vector"),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", "not a CVSS v3.0, v3.1 or v4.0 vector"),
        ("garbage", "not a CVSS v3.0, v3.1 or v4.0 vector"),
    ],
)
def test_a_bad_vector_is_a_recorded_problem_never_an_exception(vector, problem) -> None:
    facts = parse_cvss(vector)
    assert facts.problem is not None and facts.problem.startswith(problem)
    assert (facts.base_score, facts.automatable, facts.total_impact) == (None, None, None)


def test_kev_and_epss_for_several_cves_take_the_worst_of_each() -> None:
    intel = Intel(
        kev={
            "CVE-2021-44228": KevEntry("CVE-2021-44228", date(2021, 12, 24), ransomware=True),
            "CVE-2021-45046": KevEntry("CVE-2021-45046", date(2023, 5, 22)),
        },
        epss={
            "CVE-2021-44228": EpssScore("CVE-2021-44228", 0.94358, 0.99957),
            "CVE-2021-45105": EpssScore("CVE-2021-45105", 0.5, 0.97),
        },
    )
    facts = enrich(
        _obs(["cve-2021-44228", "CVE-2021-45046 ", "CVE-2021-45105"], V31_WORST), EDGE, intel
    )
    assert facts.known_exploited and facts.kev_ransomware
    assert facts.kev_due_date == date(2021, 12, 24)
    assert (facts.epss_score, facts.epss_percentile) == (0.94358, 0.99957)
    assert facts.cvss_score == 9.8  # from the vector: the engine gave no score


def test_nothing_known_is_said_plainly() -> None:
    facts = enrich(_obs(["CVE-2099-0001"]), EDGE, Intel())
    assert not facts.known_exploited and not facts.kev_ransomware
    assert facts.kev_due_date is facts.epss_score is facts.epss_percentile is None
    assert facts.cvss is None and facts.cvss_score is None


def test_the_engines_score_wins_and_a_broken_one_stays_visible() -> None:
    assert enrich(_obs(vector=V31_WORST, score=7.5), EDGE).cvss_score == 7.5
    assert math.isnan(enrich(_obs(score="not a number"), EDGE).cvss_score)  # type: ignore[arg-type]


def test_asset_context_criticality_environment_and_exposure() -> None:
    facts = enrich(_obs(), EDGE)
    assert (facts.environment, facts.criticality, facts.internet_facing) == (
        "production",
        "high",
        True,
    )
    unknown = enrich(_obs(), None)
    assert (unknown.environment, unknown.criticality, unknown.internet_facing) == (
        None,
        None,
        False,
    )
    record = facts.as_dict()
    assert record["internet_facing"] is True and record["cvss_version"] is None


def test_a_runs_cve_ids_are_collected_once_upper_case() -> None:
    observations = [_obs(["cve-2021-44228", ""]), _obs(["CVE-2021-44228", "CVE-2022-1471"]), _obs()]
    assert cve_ids_of(observations) == {"CVE-2021-44228", "CVE-2022-1471"}

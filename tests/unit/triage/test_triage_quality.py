"""The triage data contract (Great Expectations): a good batch passes, each breach is named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from autosec.domain.models import Location, Observation, Severity
from autosec.triage.normalise import triage_observations
from autosec.triage.quality import suite_definition, validate_batch

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}


def _obs(port: int, severity=Severity.HIGH, score=None, vector=None) -> Observation:
    return Observation(
        "web",
        "nmap",
        "nmap.open-port",
        f"port {port}",
        severity,
        Location(host="127.0.0.11", port=port, protocol="tcp"),
        cvss_score=score,
        cvss_vector=vector,
    )


def _batch(*observations: Observation):
    return triage_observations(observations, {}, DAYS, NOW)


@pytest.fixture(scope="module")
def good():
    return _batch(
        _obs(22, Severity.CRITICAL, score=9.8),
        _obs(80, Severity.INFO),  # no deadline for info: no due date needed
        _obs(443, Severity.MEDIUM, vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N"),
        _obs(8080, Severity.LOW, score=0.0),
    )


def test_a_good_batch_passes_and_an_empty_one_needs_nothing(good) -> None:
    result = validate_batch(good, DAYS)
    assert result.passed, result.failed_expectations
    assert (result.rows, result.failed_expectations) == (4, [])
    assert validate_batch([], DAYS).passed


@pytest.mark.parametrize("score", [12.5, -0.1, float("nan"), float("inf")])
def test_a_cvss_score_outside_0_to_10_fails_the_batch(good, score) -> None:
    result = validate_batch([*good, *_batch(_obs(9000, score=score))], DAYS)
    assert not result.passed
    [failure] = result.failed_expectations
    assert failure.startswith("cvss_score must be between 0 and 10")
    assert "1 of 5 rows fail" in failure
    assert "nmap nmap.open-port on web" in failure


def test_a_duplicate_fingerprint_fails_the_batch(good) -> None:
    result = validate_batch([*good, good[0]], DAYS)
    assert [f.split(" (")[0] for f in result.failed_expectations] == [
        "fingerprint must be unique in the batch"
    ]


def test_an_open_finding_with_a_deadline_needs_a_due_date(good) -> None:
    undated = dataclasses.replace(good[0], due_date=None)
    result = validate_batch([undated, *good[1:]], DAYS)
    [failure] = result.failed_expectations
    assert failure.startswith("due_date must be set for an open finding")
    # The same finding passes when the policy sets no deadline for its severity.
    assert validate_batch([undated, *good[1:]], {**DAYS, "critical": None}).passed


def test_unknown_severity_priority_and_malformed_fingerprints_fail(good) -> None:
    wrong = dataclasses.replace(
        good[0],
        observation=dataclasses.replace(good[0].observation, severity="urgent"),
        priority="whenever",
        fingerprint="XYZ",
    )
    failed = validate_batch([wrong, *good[1:]], DAYS).failed_expectations
    assert [f.split(" (")[0] for f in failed] == [
        "severity must be one of info, low, medium, high, critical",
        "fingerprint must be 64 lower-case hex digits",
        "priority must be an outcome of the priority table",
    ]
    assert "'urgent'" in failed[0] and "'whenever'" in failed[2]


def test_the_suite_covers_what_engineers_rely_on() -> None:
    covered = {(e.column, e.type) for e in suite_definition()}
    assert {
        ("severity", "ExpectColumnValuesToBeInSet"),
        ("fingerprint", "ExpectColumnValuesToBeUnique"),
        ("cvss_score", "ExpectColumnValuesToBeBetween"),
        ("due_date", "ExpectColumnValuesToNotBeNull"),
    } <= covered

from __future__ import annotations

from datetime import date

from autosec.domain.due_dates import due_date
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Severity
from autosec.triage.priority import prioritise

DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}


def test_due_date_by_severity_and_kev_when_earlier() -> None:
    detected = date(2026, 11, 1)
    assert due_date(Severity.CRITICAL, detected, DAYS) == date(2026, 11, 8)
    assert due_date(Severity.LOW, detected, DAYS) == date(2027, 4, 30)
    assert due_date(Severity.INFO, detected, DAYS) is None
    assert due_date(Severity.HIGH, detected, DAYS, kev_due=date(2026, 11, 15)) == date(2026, 11, 15)
    assert due_date(Severity.HIGH, detected, DAYS, kev_due=date(2027, 1, 1)) == date(2026, 12, 1)


def _asset(environment: Environment, criticality: Criticality, tags=()) -> Asset:
    return Asset("a", "a", AssetKind.HOST, "file", "team", environment, criticality, (), tags)


def test_priority_depends_on_the_asset_and_exploitation() -> None:
    prod = _asset(Environment.PRODUCTION, Criticality.HIGH)
    dev = _asset(Environment.DEVELOPMENT, Criticality.LOW)
    assert prioritise(Severity.HIGH, prod, known_exploited=False).priority == "act"
    assert prioritise(Severity.HIGH, dev, known_exploited=False).priority == "attend"
    assert prioritise(Severity.LOW, dev, known_exploited=True).priority == "act"
    assert prioritise(Severity.LOW, prod, known_exploited=True).priority == "immediate"
    decision = prioritise(Severity.MEDIUM, dev, known_exploited=False)
    assert decision.priority == "track*"
    assert "technical_impact from severity" in decision.inferred

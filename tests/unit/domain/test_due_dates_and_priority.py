from __future__ import annotations

import dataclasses
from datetime import date

from autosec.domain.due_dates import due_date
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Severity
from autosec.triage.enrich import Enrichment, parse_cvss
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
    """The asset's mission and known exploitation move the SSVC outcome (CISA's table)."""
    prod = _asset(Environment.PRODUCTION, Criticality.HIGH)
    dev = _asset(Environment.DEVELOPMENT, Criticality.LOW)
    exposed_prod = _asset(Environment.PRODUCTION, Criticality.HIGH, ("internet-facing",))
    worst = Enrichment(cvss=parse_cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"))
    kev = dataclasses.replace(worst, known_exploited=True)

    assert prioritise(worst, Severity.CRITICAL, prod).priority == "attend"
    assert prioritise(worst, Severity.CRITICAL, dev).priority == "track"
    assert prioritise(kev, Severity.CRITICAL, dev).priority == "attend"
    assert prioritise(kev, Severity.CRITICAL, prod).priority == "act"
    assert (
        prioritise(
            dataclasses.replace(kev, internet_facing=True), Severity.CRITICAL, exposed_prod
        ).priority
        == "immediate"
    )
    decision = prioritise(Enrichment(), Severity.MEDIUM, dev)
    assert decision.priority == "track"
    assert "technical_impact" in decision.inferred

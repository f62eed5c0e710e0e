"""The adaptive scan cadence: exposure and criticality shorten it, a long quiet lengthens it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.domain.cadence import CadencePolicy, cadence_for, is_due
from autosec.domain.models import Asset, AssetKind, Criticality, Environment

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
POLICY = CadencePolicy(
    default_days=7,
    internet_facing_days=1,
    critical_days=3,
    quiet_after_days=90,
    quiet_factor=4,
    max_days=30,
)


def asset(env=Environment.STAGING, crit=Criticality.MEDIUM, tags=()) -> Asset:
    return Asset("a1", "a1", AssetKind.HOST, "file", "team", env, crit, ("10.0.0.1",), tuple(tags))


@pytest.mark.parametrize(
    ("subject", "days", "reason"),
    [
        (asset(), 7, "default"),
        (asset(env=Environment.PRODUCTION), 3, "production or critical"),
        (asset(crit=Criticality.BUSINESS_CRITICAL), 3, "production or critical"),
        (asset(tags=["internet-facing"]), 1, "internet-facing"),
    ],
)
def test_exposure_and_criticality_set_the_base_cadence(subject, days, reason) -> None:
    cadence = cadence_for(subject, NOW - timedelta(days=5), False, NOW, POLICY)
    assert cadence.interval == timedelta(days=days)
    assert cadence.reason == reason


def test_a_quiet_asset_with_nothing_open_is_scanned_less_often_up_to_the_ceiling() -> None:
    quiet = NOW - timedelta(days=200)
    assert cadence_for(asset(), quiet, False, NOW, POLICY).interval == timedelta(days=28)
    production = cadence_for(asset(env=Environment.PRODUCTION), quiet, False, NOW, POLICY)
    assert production.interval == timedelta(days=12)
    ceiling = CadencePolicy(default_days=14, max_days=30)
    assert cadence_for(asset(), quiet, False, NOW, ceiling).interval == timedelta(days=30)


def test_open_findings_recent_changes_or_exposure_keep_the_normal_cadence() -> None:
    quiet = NOW - timedelta(days=200)
    assert cadence_for(asset(), quiet, True, NOW, POLICY).interval == timedelta(days=7)
    recent = NOW - timedelta(days=10)
    assert cadence_for(asset(), recent, False, NOW, POLICY).interval == timedelta(days=7)
    exposed = asset(tags=["internet-facing"])
    assert cadence_for(exposed, quiet, False, NOW, POLICY).interval == timedelta(days=1)


def test_never_scanned_is_due_and_a_recent_success_is_not() -> None:
    cadence = cadence_for(asset(), None, False, NOW, POLICY)
    assert is_due(None, cadence, NOW)
    assert not is_due(NOW - timedelta(days=6), cadence, NOW)
    assert is_due(NOW - timedelta(days=7), cadence, NOW)

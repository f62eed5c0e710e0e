"""How often an asset is rescanned: adaptive, so the scanning effort goes where risk changes.

Internet-facing assets are scanned most often, production and critical ones more often than
the default, and an asset that has not changed for a long while (and has nothing open) less
often, up to a ceiling, so a forgotten box is never forgotten entirely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from autosec.domain.models import Asset, Criticality, Environment


@dataclass(frozen=True)
class CadencePolicy:
    default_days: int = 7
    internet_facing_days: int = 1
    critical_days: int = 3
    quiet_after_days: int = 90
    quiet_factor: int = 4
    max_days: int = 30


@dataclass(frozen=True)
class Cadence:
    interval: timedelta
    reason: str


def cadence_for(
    asset: Asset,
    last_changed_at: datetime | None,
    has_open_findings: bool,
    now: datetime,
    policy: CadencePolicy,
) -> Cadence:
    """The rescan interval for ``asset`` and the reason for it, in words for the planner log."""
    if "internet-facing" in asset.tags:
        return Cadence(timedelta(days=policy.internet_facing_days), "internet-facing")
    if asset.environment is Environment.PRODUCTION or asset.criticality in (
        Criticality.HIGH,
        Criticality.BUSINESS_CRITICAL,
    ):
        days, reason = min(policy.critical_days, policy.default_days), "production or critical"
    else:
        days, reason = policy.default_days, "default"
    quiet_since = now - timedelta(days=policy.quiet_after_days)
    if not has_open_findings and last_changed_at is not None and last_changed_at < quiet_since:
        days = min(days * policy.quiet_factor, max(policy.max_days, days))
        reason += f", unchanged for over {policy.quiet_after_days} days"
    return Cadence(timedelta(days=days), reason)


def is_due(last_success_at: datetime | None, cadence: Cadence, now: datetime) -> bool:
    """Never scanned successfully, or the last success is older than the cadence."""
    return last_success_at is None or last_success_at <= now - cadence.interval

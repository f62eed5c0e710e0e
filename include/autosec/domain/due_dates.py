"""Due dates from the patching policy: days by severity, the KEV date when it is earlier."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from autosec.domain.models import Severity


def due_date(
    severity: Severity,
    detected_on: date,
    days_by_severity: Mapping[str, int | None],
    kev_due: date | None = None,
) -> date | None:
    days = days_by_severity.get(severity.value)
    policy_due = detected_on + timedelta(days=days) if days is not None else None
    if kev_due is not None and (policy_due is None or kev_due < policy_due):
        return kev_due
    return policy_due

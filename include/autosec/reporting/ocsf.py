"""A pack's findings as OCSF Vulnerability Finding events (class 2002, category Findings).

One event per finding, as it stood at the period's end: open and reopened findings are "New",
accepted and false positive ones "Suppressed", findings fixed in the period "Resolved" (activity
Close). Times are epoch milliseconds, as OCSF wants. The file is a JSON array with one event per
line and sorted keys, so two builds of the same pack are byte-identical and diff line by line.
What OCSF has no field for (due date, tier, priority, location) is under ``unmapped.autosec``.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

from autosec.domain.models import FindingStatus, Severity
from autosec.reporting.packs import Pack, PackFinding

OCSF_VERSION = "1.1.0"
CLASS_UID = 2002
CLASS_NAME = "Vulnerability Finding"
CATEGORY_UID = 2
CATEGORY_NAME = "Findings"

ACTIVITY_CREATE, ACTIVITY_CLOSE = 1, 3
ACTIVITY_NAMES = {ACTIVITY_CREATE: "Create", ACTIVITY_CLOSE: "Close"}
SEVERITY_IDS: dict[Severity, tuple[int, str]] = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
# status_id, status caption, detail
STATUS_IDS: dict[FindingStatus, tuple[int, str, str]] = {
    FindingStatus.OPEN: (1, "New", "open"),
    FindingStatus.REOPENED: (1, "New", "reopened after a fix"),
    FindingStatus.ACCEPTED: (3, "Suppressed", "risk accepted"),
    FindingStatus.FALSE_POSITIVE: (3, "Suppressed", "false positive"),
    FindingStatus.FIXED: (4, "Resolved", "fixed: absent from a covering rescan"),
}


def epoch_ms(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, "", [], {})}


def _vulnerabilities(f: PackFinding, severity: str) -> list[dict[str, Any]]:
    common = _drop_empty(
        {
            "severity": severity,
            "title": f.title,
            "desc": f.description,
            "first_seen_time": epoch_ms(f.first_seen),
            "last_seen_time": epoch_ms(f.last_seen),
            "is_exploit_available": True if f.known_exploited else None,
            "cwe": {"uid": f.cwe} if f.cwe else None,
        }
    )
    cvss = (
        [
            _drop_empty(
                {
                    "base_score": f.cvss_score,
                    "version": f.cvss_version,
                    "vector_string": f.cvss_vector,
                }
            )
        ]
        if f.cvss_score is not None and f.cvss_version
        else None
    )
    if not f.cve_ids:
        return [common]
    return [{**common, "cve": _drop_empty({"uid": cve, "cvss": cvss})} for cve in f.cve_ids]


def finding_event(f: PackFinding, pack: Pack, product_version: str) -> dict[str, Any]:
    """One OCSF Vulnerability Finding for one finding at the period's end."""
    activity = ACTIVITY_CLOSE if f.status is FindingStatus.FIXED else ACTIVITY_CREATE
    severity_id, severity = SEVERITY_IDS[f.severity]
    status_id, status, detail = STATUS_IDS[f.status]
    when = f.fixed_at if f.fixed_at is not None else f.last_seen
    return _drop_empty(
        {
            "activity_id": activity,
            "activity_name": ACTIVITY_NAMES[activity],
            "category_uid": CATEGORY_UID,
            "category_name": CATEGORY_NAME,
            "class_uid": CLASS_UID,
            "class_name": CLASS_NAME,
            "type_uid": CLASS_UID * 100 + activity,
            "type_name": f"{CLASS_NAME}: {ACTIVITY_NAMES[activity]}",
            "severity_id": severity_id,
            "severity": severity,
            "status_id": status_id,
            "status": status,
            "status_detail": detail,
            "time": epoch_ms(when),
            "message": f"{f.title} on {f.asset_name}",
            "finding_info": _drop_empty(
                {
                    "uid": f.fingerprint,
                    "title": f.title,
                    "desc": f.description,
                    "first_seen_time": epoch_ms(f.first_seen),
                    "last_seen_time": epoch_ms(f.last_seen),
                    "product_uid": f.engine,
                    "types": [f.rule_id] if f.rule_id else None,
                    "analytic": {"uid": f.rule_id, "name": f.rule_id, "type_id": 1, "type": "Rule"}
                    if f.rule_id
                    else None,
                }
            ),
            "vulnerabilities": _vulnerabilities(f, severity),
            "resources": [
                _drop_empty(
                    {
                        "uid": f.asset_id,
                        "name": f.asset_name,
                        "type": f.asset_kind,
                        "owner": {"name": f.owner} if f.owner else None,
                        "data": {"location": dict(sorted(f.location_fields.items()))}
                        if f.location_fields
                        else None,
                    }
                )
            ],
            "metadata": {
                "version": OCSF_VERSION,
                "product": {
                    "name": "autosec",
                    "vendor_name": "autosec",
                    "version": product_version,
                },
                "labels": [f"framework:{pack.framework.id}", f"period:{pack.period.label}"],
            },
            "unmapped": {
                "autosec": _drop_empty(
                    {
                        "due_date": f.due_date.isoformat() if f.due_date else None,
                        "tier": f.tier,
                        "kev_due_date": f.kev_due_date.isoformat() if f.kev_due_date else None,
                        "policy_due_date": f.policy_due_date.isoformat()
                        if f.policy_due_date
                        else None,
                        "priority": f.priority,
                        "location": f.location,
                        "evidence_sha256": f.evidence_sha256,
                        "fix_scan_run_id": f.fix_scan_run_id,
                        "fix_confirmed": f.fix_confirmed if f.fixed_at else None,
                    }
                )
            },
        }
    )


def render_ocsf(pack: Pack, product_version: str) -> bytes:
    """Every finding of the pack as an OCSF JSON array, one event per line (UTF-8)."""
    if not pack.findings:
        return b"[]\n"
    out = io.BytesIO()  # written as it goes: a pack can hold hundreds of thousands of events
    out.write(b"[\n")
    for index, f in enumerate(pack.findings):
        if index:
            out.write(b",\n")
        event = finding_event(f, pack, product_version)
        out.write(json.dumps(event, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    out.write(b"\n]\n")
    return out.getvalue()


__all__ = [
    "CLASS_UID",
    "OCSF_VERSION",
    "SEVERITY_IDS",
    "STATUS_IDS",
    "finding_event",
    "render_ocsf",
]

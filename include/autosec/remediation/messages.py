"""Texts people receive about remediation: pure, so every channel says the same thing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def approval_request_text(approval: Mapping[str, Any], page_url: str) -> str:
    """Who must decide what, by when, and where: the link opens the Approvals page."""
    approvers = ", ".join(approval.get("approvers") or ()) or "(none)"
    expires = approval.get("expires_at")
    expires_text = expires.strftime("%Y-%m-%d %H:%M %Z") if hasattr(expires, "strftime") else "?"
    return (
        f"Approval #{approval['id']} needed: {_one_line(approval.get('summary'))}\n"
        f"Rule {approval.get('rule_id') or '(none)'}; approvers {approvers}; "
        f"quorum {approval.get('quorum', 1)}; expires {expires_text} "
        "(then it is rejected and escalated).\n"
        f"Decide: {page_url}#approval-{approval['id']}"
    )


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())[:300]


def event_digest(events: Sequence[Mapping[str, Any]], max_lines_per_event: int = 10) -> str:
    """One message for many events: a count per event name and the first few subjects.

    A sweep that raises thousands of events sends one digest, not thousands of messages.
    """
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["name"], []).append(event)
    lines = [f"autosec: {len(events)} event(s)"]
    for name in sorted(by_name):
        group = by_name[name]
        lines.append(f"{name}: {len(group)}")
        for event in group[:max_lines_per_event]:
            lines.append(f"  - {_one_line(event['subject'])}{_detail(event.get('payload'))}")
        if len(group) > max_lines_per_event:
            lines.append(f"  … and {len(group) - max_lines_per_event} more")
    return "\n".join(lines)


def _detail(payload: object) -> str:
    if not isinstance(payload, Mapping):
        return ""
    for key in ("error", "reason", "summary", "outcome"):
        if payload.get(key):
            return f": {_one_line(payload[key])[:200]}"
    return ""

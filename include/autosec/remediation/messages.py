"""Texts people receive about remediation: pure, so every channel says the same thing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autosec.notifications.digest import NameCount, Sample, digest_text


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

    A sweep that raises thousands of events sends one digest, not thousands of messages. The
    delivery runs render from counts in the store (``autosec.notifications.digest``); this is the
    same text for events already in memory.
    """
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_name.setdefault(event["name"], []).append(event)
    groups = [
        NameCount(
            name,
            len(group),
            tuple(
                Sample(e["subject"], e.get("payload") or {}) for e in group[:max_lines_per_event]
            ),
        )
        for name, group in by_name.items()
    ]
    return digest_text(None, groups, max_lines_per_event)

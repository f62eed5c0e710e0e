"""Texts people receive about remediation: pure, so every channel says the same thing."""

from __future__ import annotations

from collections.abc import Mapping
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

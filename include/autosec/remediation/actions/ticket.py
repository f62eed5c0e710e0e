"""Open a ticket for a finding in a JSON ticketing REST API; close it to roll back.

The API (Jira-like, kept simple; ``autosec.demo.ticketing`` implements it):

- ``POST {base}/api/tickets`` with {title, description, priority, assignee, labels,
  external_id, due_date} answers 201 with {"id", "key"}; a second create with the same
  ``external_id`` answers 409.
- ``GET {base}/api/tickets?external_id=KEY`` lists the tickets with that external id.
- ``POST {base}/api/tickets/{id}/close`` with {"comment"} closes one.

The idempotency key is the ticket's ``external_id``: when a retried task meets a 409 it looks
the existing ticket up and reports it, so a retry never opens a second ticket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from autosec.domain.models import Severity
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    Action,
    ActionRequest,
    ActionResult,
    idempotency_key,
)

TITLE_MAX = 255
DESCRIPTION_MAX = 30_000
BODY_EXCERPT = 500
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
ROLLBACK_COMMENT = "Closed by autosec: the remediation action was rolled back."

# SSVC outcome (triage.priority) -> ticket priority; the severity decides when it is absent.
PRIORITY_BY_SSVC = {
    "immediate": "highest",
    "act": "high",
    "attend": "medium",
    "track*": "low",
    "track": "low",
}
PRIORITY_BY_SEVERITY = {
    Severity.CRITICAL: "highest",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.INFO: "lowest",
}


@dataclass(frozen=True)
class TicketEndpoint:
    """Where the ticketing API is and how to authenticate (from an Airflow connection)."""

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"ticketing base_url {self.base_url!r} must be an http(s) URL with a host"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"ticketing base_url {self.base_url!r} must not have a query")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "autosec"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


class TicketEndpointMissing(ValueError):
    """A ticket must be sent but no endpoint was configured."""


def _due_date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"finding due_date {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _label(value: str) -> str:
    return "-".join(str(value).split())


def _excerpt(response: Any) -> str:
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - an unreadable body must not hide the status
        return ""
    text = text or ""
    return text[:BODY_EXCERPT] + ("…" if len(text) > BODY_EXCERPT else "")


def _describe(finding: Mapping[str, Any], decision: Decision, severity: Severity) -> str:
    lines = [
        str(finding.get("description") or "").strip(),
        "",
        f"Asset: {finding['asset_id']}",
        f"Severity: {severity.value}"
        + (f" (CVSS {finding['cvss_score']})" if finding.get("cvss_score") is not None else ""),
    ]
    if finding.get("engine") or finding.get("rule_id"):
        lines.append(
            f"Detected by: {finding.get('engine', '?')} rule {finding.get('rule_id', '?')}"
        )
    if finding.get("cve_ids"):
        lines.append(f"CVE: {', '.join(finding['cve_ids'])}")
    if finding.get("cwe"):
        lines.append(f"CWE: {finding['cwe']}")
    location = finding.get("location")
    if isinstance(location, Mapping) and location:
        lines.append("Location: " + ", ".join(f"{k}={v}" for k, v in sorted(location.items()) if v))
    if finding.get("due_date"):
        lines.append(f"Due: {_due_date(finding['due_date'])}")
    lines += [
        f"Finding fingerprint: {str(finding['fingerprint']).strip()}",
        "",
        f"Policy {decision.policy_version or '?'} (sha256 {decision.policy_hash}), "
        f"rule {decision.rule_id or '(none)'}, mode {decision.mode}:",
        *(f"- {reason}" for reason in decision.reasons),
    ]
    text = "\n".join(lines).strip()
    return text[:DESCRIPTION_MAX]


class TicketAction(Action):
    """Files one ticket per finding, assigned to the finding's owner."""

    name = "ticket"

    def __init__(self, endpoint: TicketEndpoint | None = None) -> None:
        self.endpoint = endpoint

    # --- plan (pure) --------------------------------------------------------------------------

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        missing = [
            k for k in ("fingerprint", "asset_id", "title", "severity") if not finding.get(k)
        ]
        if missing:
            raise ValueError(f"ticket action: finding is missing {', '.join(missing)}")
        self._check_plan_inputs(finding, decision)
        fingerprint = str(finding["fingerprint"]).strip()
        severity = Severity.parse(finding["severity"])
        key = idempotency_key(fingerprint, self.name, decision.policy_hash)
        title = f"[{severity.value}] {str(finding['title']).strip()} on {finding['asset_id']}"
        if len(title) > TITLE_MAX:
            title = title[: TITLE_MAX - 1] + "…"
        priority = PRIORITY_BY_SSVC.get(
            str(finding.get("priority") or ""), PRIORITY_BY_SEVERITY[severity]
        )
        labels = ["autosec", f"severity-{severity.value}"]
        if finding.get("engine"):
            labels.append(_label(f"engine-{finding['engine']}"))
        if decision.rule_id:
            labels.append(_label(f"policy-{decision.rule_id}"))
        payload = {
            "title": title,
            "description": _describe(finding, decision, severity),
            "priority": priority,
            "assignee": (str(finding.get("owner") or "").strip() or None),
            "labels": labels,
            "external_id": key,
            "due_date": _due_date(finding.get("due_date")),
        }
        return ActionRequest(
            idempotency_key=key,
            action=self.name,
            finding_fingerprint=fingerprint,
            asset_id=str(finding["asset_id"]),
            payload=payload,
            dry_run=decision.dry_run,
        )

    # --- apply / rollback ---------------------------------------------------------------------

    def _endpoint(self) -> TicketEndpoint:
        if self.endpoint is None:
            raise TicketEndpointMissing(
                "ticket action: no ticketing endpoint configured (base URL and token)"
            )
        return self.endpoint

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        if request.action != self.name:
            raise ValueError(f"ticket action cannot apply a {request.action!r} request")
        body = dict(request.payload)
        if body.get("external_id") != request.idempotency_key:
            raise ValueError(
                "ticket request payload external_id must be the request's idempotency key"
            )
        if request.dry_run:
            return ActionResult(
                request.idempotency_key,
                "dry_run",
                detail={"would_send": "POST /api/tickets", "title": body.get("title")},
            )
        endpoint = self._endpoint()
        path = "/api/tickets"
        try:
            response = session.post(
                endpoint.url(path), json=body, headers=endpoint.headers(), timeout=endpoint.timeout
            )
        except (requests.RequestException, OSError) as exc:
            return _transport_failure(request.idempotency_key, "POST", path, exc)
        if 200 <= response.status_code < 300:
            return _ticket_result(request.idempotency_key, response, "POST", path, created=True)
        if response.status_code == 409:
            return self._existing(request.idempotency_key, session, endpoint)
        return _http_failure(request.idempotency_key, response, "POST", path)

    def _existing(self, key: str, session: Any, endpoint: TicketEndpoint) -> ActionResult:
        """The ticket a 409 says exists: a retry reports it instead of opening another."""
        path = "/api/tickets"
        try:
            response = session.get(
                endpoint.url(path),
                params={"external_id": key},
                headers=endpoint.headers(),
                timeout=endpoint.timeout,
            )
        except (requests.RequestException, OSError) as exc:
            return _transport_failure(key, "GET", path, exc)
        if response.status_code != 200:
            return _http_failure(key, response, "GET", path)
        try:
            tickets = response.json()
        except ValueError:
            tickets = None
        found = (
            [t for t in tickets if isinstance(t, dict) and t.get("external_id") == key]
            if isinstance(tickets, list)
            else []
        )
        if not found or found[0].get("id") in (None, ""):
            return ActionResult(
                key,
                "failed",
                detail={
                    "error": "the API reported a duplicate external_id (409) but lists no "
                    "ticket with it",
                    "http_status": 409,
                    "body": _excerpt(response),
                },
            )
        ticket = found[0]
        return ActionResult(
            key,
            "applied",
            external_ref=str(ticket.get("key") or ticket["id"]),
            detail={
                "ticket_id": str(ticket["id"]),
                "ticket_key": ticket.get("key"),
                "created": False,
                "duplicate": True,
                "http_status": 409,
            },
        )

    def rollback(
        self, result: ActionResult, session: Any, *, comment: str = ROLLBACK_COMMENT
    ) -> ActionResult:
        """Close the ticket ``result`` opened; a dry-run result is rolled back in dry run."""
        if result.status == "dry_run":
            return ActionResult(
                result.idempotency_key,
                "dry_run",
                detail={"would_send": "POST /api/tickets/{id}/close"},
            )
        ticket_id = result.detail.get("ticket_id")
        if result.status != "applied" or not ticket_id:
            raise ValueError(
                f"ticket action: nothing to roll back for result {result.idempotency_key} "
                f"(status {result.status}, ticket id {ticket_id!r})"
            )
        endpoint = self._endpoint()
        path = f"/api/tickets/{quote(str(ticket_id), safe='')}/close"
        try:
            response = session.post(
                endpoint.url(path),
                json={"comment": comment},
                headers=endpoint.headers(),
                timeout=endpoint.timeout,
            )
        except (requests.RequestException, OSError) as exc:
            return _transport_failure(result.idempotency_key, "POST", path, exc)
        if not 200 <= response.status_code < 300:
            return _http_failure(result.idempotency_key, response, "POST", path)
        return ActionResult(
            result.idempotency_key,
            "rolled_back",
            external_ref=result.external_ref,
            detail={
                "ticket_id": str(ticket_id),
                "ticket_key": result.detail.get("ticket_key"),
                "closed": True,
                "http_status": response.status_code,
            },
        )


def _ticket_result(key: str, response: Any, method: str, path: str, created: bool) -> ActionResult:
    try:
        ticket = response.json()
    except ValueError:
        ticket = None
    if not isinstance(ticket, dict) or ticket.get("id") in (None, ""):
        return ActionResult(
            key,
            "failed",
            detail={
                "error": f"{method} {path} answered {response.status_code} without a ticket id",
                "http_status": response.status_code,
                "body": _excerpt(response),
            },
        )
    return ActionResult(
        key,
        "applied",
        external_ref=str(ticket.get("key") or ticket["id"]),
        detail={
            "ticket_id": str(ticket["id"]),
            "ticket_key": ticket.get("key"),
            "created": created,
            "http_status": response.status_code,
        },
    )


def _http_failure(key: str, response: Any, method: str, path: str) -> ActionResult:
    return ActionResult(
        key,
        "failed",
        detail={
            "error": f"ticketing API answered {response.status_code} to {method} {path}",
            "http_status": response.status_code,
            "body": _excerpt(response),
        },
    )


def _transport_failure(key: str, method: str, path: str, exc: BaseException) -> ActionResult:
    return ActionResult(
        key,
        "failed",
        detail={
            "error": f"{method} {path} did not complete: {type(exc).__name__}: {exc}",
            "http_status": None,
        },
    )

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
from typing import Any, ClassVar
from urllib.parse import quote

from autosec.domain.models import Severity
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    ActionRequest,
    ActionResult,
    finding_due_date,
    idempotency_key,
)
from autosec.remediation.actions.http import (
    DEFAULT_TIMEOUT,
    ApiAction,
    ApiEndpoint,
    answer_failure,
    applied,
    http_failure,
    listed_by_external_id,
    read_json,
    send,
)

TITLE_MAX = 255
DESCRIPTION_MAX = 30_000
API = "ticketing API"
COLLECTION = "/api/tickets"
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
class TicketEndpoint(ApiEndpoint):
    """Where the ticketing API is and how to authenticate (from an Airflow connection)."""

    what: ClassVar[str] = "ticketing"

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT


class TicketEndpointMissing(ValueError):
    """A ticket must be sent but no endpoint was configured."""


def _label(value: str) -> str:
    return "-".join(str(value).split())


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
        lines.append(f"Due: {finding_due_date(finding['due_date'])}")
    lines += [
        f"Finding fingerprint: {str(finding['fingerprint']).strip()}",
        "",
        f"Policy {decision.policy_version or '?'} (sha256 {decision.policy_hash}), "
        f"rule {decision.rule_id or '(none)'}, mode {decision.mode}:",
        *(f"- {reason}" for reason in decision.reasons),
    ]
    text = "\n".join(lines).strip()
    return text[:DESCRIPTION_MAX]


class TicketAction(ApiAction[TicketEndpoint]):
    """Files one ticket per finding, assigned to the finding's owner."""

    name = "ticket"
    endpoint_type = TicketEndpoint
    endpoint_missing = TicketEndpointMissing

    # --- plan (pure) --------------------------------------------------------------------------

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        fingerprint = self._checked_fingerprint(finding, decision)
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
            "due_date": finding_due_date(finding.get("due_date")),
        }
        return self._request(key, fingerprint, finding, payload, decision)

    # --- apply / rollback ---------------------------------------------------------------------

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        self._check_apply_inputs(request, "external_id")
        body = dict(request.payload)
        key = request.idempotency_key
        if request.dry_run:
            return ActionResult(
                key,
                "dry_run",
                detail={"would_send": f"POST {COLLECTION}", "title": body.get("title")},
            )
        endpoint = self._endpoint()
        response = send(session, endpoint, "POST", COLLECTION, key, json=body)
        if isinstance(response, ActionResult):
            return response
        if 200 <= response.status_code < 300:
            return _ticket_result(key, response, "POST", COLLECTION, created=True)
        if response.status_code == 409:
            return self._existing(key, session, endpoint)
        return http_failure(key, response, "POST", COLLECTION, API)

    def _existing(self, key: str, session: Any, endpoint: TicketEndpoint) -> ActionResult:
        """The ticket a 409 says exists: a retry reports it instead of opening another."""
        response = send(session, endpoint, "GET", COLLECTION, key, params={"external_id": key})
        if isinstance(response, ActionResult):
            return response
        if response.status_code != 200:
            return http_failure(key, response, "GET", COLLECTION, API)
        ticket = listed_by_external_id(read_json(response), key)
        if ticket is None:
            return answer_failure(
                key,
                response,
                "the API reported a duplicate external_id (409) but lists no ticket with it",
                http_status=409,
            )
        return _applied(key, ticket, created=False, http_status=409)

    def rollback(
        self, result: ActionResult, session: Any, *, comment: str = ROLLBACK_COMMENT
    ) -> ActionResult:
        """Close the ticket ``result`` opened; a dry-run result is rolled back in dry run."""
        if result.status == "dry_run":
            return ActionResult(
                result.idempotency_key,
                "dry_run",
                detail={"would_send": f"POST {COLLECTION}/{{id}}/close"},
            )
        ticket_id = result.detail.get("ticket_id")
        if result.status != "applied" or not ticket_id:
            raise ValueError(
                f"ticket action: nothing to roll back for result {result.idempotency_key} "
                f"(status {result.status}, ticket id {ticket_id!r})"
            )
        endpoint = self._endpoint()
        key = result.idempotency_key
        path = f"{COLLECTION}/{quote(str(ticket_id), safe='')}/close"
        response = send(session, endpoint, "POST", path, key, json={"comment": comment})
        if isinstance(response, ActionResult):
            return response
        if not 200 <= response.status_code < 300:
            return http_failure(key, response, "POST", path, API)
        return ActionResult(
            key,
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
    ticket = read_json(response)
    if not isinstance(ticket, dict) or ticket.get("id") in (None, ""):
        error = f"{method} {path} answered {response.status_code} without a ticket id"
        return answer_failure(key, response, error)
    return _applied(key, ticket, created=created, http_status=response.status_code)


def _applied(key: str, ticket: dict[str, Any], *, created: bool, http_status: int) -> ActionResult:
    ref = str(ticket.get("key") or ticket["id"])
    detail = {"ticket_id": str(ticket["id"]), "ticket_key": ticket.get("key")}
    return applied(key, ref, detail, created=created, http_status=http_status)

"""Open a ticket for a finding in a JSON ticketing REST API; follow it up; close it.

The API (Jira-like, kept simple; ``autosec.demo.ticketing`` implements it):

- ``POST {base}/api/tickets`` with {title, description, priority, assignee, labels,
  external_id, due_date} answers 201 with {"id", "key"}; a second create with the same
  ``external_id`` answers 409.
- ``GET {base}/api/tickets?external_id=KEY`` lists the tickets with that external id.
- ``GET {base}/api/tickets/{id}`` answers one ticket with its ``status`` (open, resolved:
  someone says the work is done, closed) and ``resolved_at``.
- ``POST {base}/api/tickets/{id}/comments`` with {"body"} adds a comment.
- ``POST {base}/api/tickets/{id}/close`` with {"comment"} closes one.

The idempotency key is the ticket's ``external_id``: when a retried task meets a 409 it looks
the existing ticket up and reports it, so a retry never opens a second ticket.

After the ticket is filed the finding's story goes on: ``comment``, ``close`` and ``read`` take
the applied result (or a bare ticket id) and report a remote failure as a "failed" result, like
``apply``. Rolling back is closing with a rollback comment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
class TicketState:
    """A ticket as the API last answered: what follow-up needs to decide what to do next.

    ``resolved_at`` says when someone last marked the work done (None: never); it tells one
    resolution from the next, so each asks for one verification.
    """

    ticket_id: str
    ticket_key: str | None
    status: str
    resolved_at: str | None
    updated_at: str | None
    http_status: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        closed = self.close(result, session, comment)
        if closed.status != "applied":
            return closed
        return ActionResult(
            result.idempotency_key,
            "rolled_back",
            external_ref=result.external_ref,
            detail={
                "ticket_id": str(ticket_id),
                "ticket_key": result.detail.get("ticket_key"),
                "closed": True,
                "http_status": closed.detail["http_status"],
            },
        )

    # --- follow-up ----------------------------------------------------------------------------

    def comment(self, result_or_ref: ActionResult | str, session: Any, text: str) -> ActionResult:
        """Add a comment to the ticket; "applied" once the API took it.

        A closed ticket can still be commented on: that is how a finding seen again after its
        ticket was closed is told (the API has no reopen).
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("ticket action: a comment needs a non-empty text")
        ref = self._ref(result_or_ref, "comment on")
        if isinstance(ref, ActionResult):
            return ActionResult(
                ref.idempotency_key,
                "dry_run",
                detail={"would_send": f"POST {COLLECTION}/{{id}}/comments", "body": text},
            )
        key, ticket_id, ticket_key = ref
        path = f"{_ticket_path(ticket_id)}/comments"
        response = send(session, self._endpoint(), "POST", path, key, json={"body": text})
        if isinstance(response, ActionResult):
            return response
        if not 200 <= response.status_code < 300:
            return http_failure(key, response, "POST", path, API)
        return _followed_up(key, ticket_id, ticket_key, response, commented=True)

    def close(self, result_or_ref: ActionResult | str, session: Any, comment: str) -> ActionResult:
        """Close the ticket with ``comment``; "applied" once the API says it is closed.

        Closing a ticket that is already closed changes nothing on the API's side and is
        reported the same way, so a retry after a lost answer is safe.
        """
        ref = self._ref(result_or_ref, "close")
        if isinstance(ref, ActionResult):
            return ActionResult(
                ref.idempotency_key,
                "dry_run",
                detail={"would_send": f"POST {COLLECTION}/{{id}}/close", "comment": comment},
            )
        key, ticket_id, ticket_key = ref
        path = f"{_ticket_path(ticket_id)}/close"
        response = send(session, self._endpoint(), "POST", path, key, json={"comment": comment})
        if isinstance(response, ActionResult):
            return response
        if not 200 <= response.status_code < 300:
            return http_failure(key, response, "POST", path, API)
        ticket = read_json(response)
        status = ticket.get("status") if isinstance(ticket, dict) else None
        if status is not None and status != "closed":
            error = f"POST {path} answered {response.status_code} but the ticket is {status!r}"
            return answer_failure(key, response, error)
        return _followed_up(key, ticket_id, ticket_key, response, closed=True)

    def read(self, result_or_ref: ActionResult | str, session: Any) -> TicketState | ActionResult:
        """The ticket's state as the API answers it now, or a "failed" result saying why not."""
        ref = self._ref(result_or_ref, "read")
        if isinstance(ref, ActionResult):
            raise ValueError(
                f"ticket action: result {ref.idempotency_key} is a dry run: it filed no ticket"
            )
        key, ticket_id, _ = ref
        path = _ticket_path(ticket_id)
        response = send(session, self._endpoint(), "GET", path, key)
        if isinstance(response, ActionResult):
            return response
        if response.status_code != 200:
            return http_failure(key, response, "GET", path, API)
        ticket = read_json(response)
        if not isinstance(ticket, dict) or not isinstance(ticket.get("status"), str):
            return answer_failure(key, response, f"GET {path} answered without a ticket status")
        return TicketState(
            ticket_id=ticket_id,
            ticket_key=ticket.get("key"),
            status=ticket["status"],
            resolved_at=ticket.get("resolved_at"),
            updated_at=ticket.get("updated_at"),
            http_status=response.status_code,
        )

    def _ref(
        self, result_or_ref: ActionResult | str, verb: str
    ) -> tuple[str, str, str | None] | ActionResult:
        """(key, ticket id, ticket key) to send to, or the dry-run result itself.

        A bare reference is the ticket's id as the API names it (``"12"``, not ``"SEC-12"``);
        results about it carry that id as their key.
        """
        if isinstance(result_or_ref, str):
            ticket_id = result_or_ref.strip()
            if not ticket_id:
                raise ValueError(f"ticket action: cannot {verb} a ticket without an id")
            return ticket_id, ticket_id, None
        result = result_or_ref
        if result.status == "dry_run":
            return result
        ticket_id = result.detail.get("ticket_id")
        if result.status != "applied" or not ticket_id:
            raise ValueError(
                f"ticket action: no ticket to {verb} for result {result.idempotency_key} "
                f"(status {result.status}, ticket id {ticket_id!r})"
            )
        return result.idempotency_key, str(ticket_id), result.detail.get("ticket_key")


def _ticket_path(ticket_id: str) -> str:
    return f"{COLLECTION}/{quote(str(ticket_id), safe='')}"


def _followed_up(
    key: str,
    ticket_id: str,
    ticket_key: str | None,
    response: Any,
    **done: bool,
) -> ActionResult:
    """An "applied" follow-up (``commented`` or ``closed``) with the ticket's status after it."""
    ticket = read_json(response)
    ticket = ticket if isinstance(ticket, dict) else {}
    ticket_key = ticket_key or ticket.get("key")
    return ActionResult(
        key,
        "applied",
        external_ref=ticket_key or ticket_id,
        detail={
            "ticket_id": ticket_id,
            "ticket_key": ticket_key,
            **done,
            "status": ticket.get("status"),
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

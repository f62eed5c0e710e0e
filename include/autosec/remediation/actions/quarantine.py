"""Quarantine an asset at an enforcement REST API (firewall / NAC); release it to roll back.

The API (``autosec.demo.enforcement`` implements it):

- ``POST {base}/api/quarantine`` with {asset_id, addresses, reason, finding_fingerprint,
  external_id, expires_at} answers 201 with the block {"id", "state": "blocked", ...}; a second
  create with the same ``external_id`` answers 409 with the existing block.
- ``GET {base}/api/quarantine?external_id=KEY`` lists the blocks with that external id.
- ``DELETE {base}/api/quarantine/{id}`` releases a block: 200 with {"state": "released"}.

The idempotency key is the block's ``external_id``: a retried task that meets a 409 reports the
existing block, so an asset is never blocked twice for one decision. A block found released is
reported as failed, never re-created: someone undid it, and blocking again needs a new decision.

Addresses come from the finding row's ``asset_addresses`` (the asset's inventory addresses). They
are untrusted: each must pass ``validate_target``; a hostile one stops the plan with an error
naming it, so it never reaches the enforcement point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from autosec.domain.models import Severity
from autosec.domain.targets import InvalidTarget, TargetKind, host_of, validate_target
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    ActionRequest,
    ActionResult,
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

REASON_MAX = 500
MAX_ADDRESSES = 64
API = "enforcement API"
COLLECTION = "/api/quarantine"


@dataclass(frozen=True)
class QuarantineEndpoint(ApiEndpoint):
    """Where the enforcement API is and how to authenticate (from an Airflow connection)."""

    what: ClassVar[str] = "enforcement"

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT


class QuarantineEndpointMissing(ValueError):
    """A block must be sent but no endpoint was configured."""


def quarantine_addresses(value: Any) -> list[str]:
    """The canonical addresses to block, or ValueError naming the value that is refused.

    IPs, CIDR ranges and host names are kept; a URL contributes its host; a path is skipped. A
    hostile or malformed value is refused, never passed on.
    """
    if value is None or value == "":
        items: list[Any] = []
    elif isinstance(value, str):
        items = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError(
            f"quarantine action: asset_addresses must be a list of addresses, got {value!r}"
        )
    addresses: list[str] = []
    for item in items:
        try:
            target = validate_target(item)
        except InvalidTarget as exc:
            raise ValueError(f"quarantine action: refusing asset address: {exc}") from None
        if target.kind is TargetKind.PATH:
            continue  # a folder on disk (a repository checkout) is nothing a firewall can block
        if target.kind is TargetKind.URL:
            target = validate_target(host_of(target))
        addresses.append(target.value)
    addresses = list(dict.fromkeys(addresses))
    if not addresses:
        raise ValueError(
            "quarantine action: the finding row has no asset_addresses; there is nothing to block"
        )
    if len(addresses) > MAX_ADDRESSES:
        raise ValueError(
            f"quarantine action: {len(addresses)} addresses is more than {MAX_ADDRESSES}; "
            "quarantine that asset by hand"
        )
    return addresses


def _expires_at(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"quarantine action: quarantine_expires_at {value!r} is not an ISO date-time"
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"quarantine action: quarantine_expires_at {value!r} has no time zone")
    return moment.isoformat()


class QuarantineAction(ApiAction[QuarantineEndpoint]):
    """Blocks an asset's addresses at the enforcement point; releases them on rollback."""

    name = "quarantine"
    endpoint_type = QuarantineEndpoint
    endpoint_missing = QuarantineEndpointMissing

    # --- plan (pure) --------------------------------------------------------------------------

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        fingerprint = self._checked_fingerprint(finding, decision)
        addresses = quarantine_addresses(finding.get("asset_addresses"))
        severity = Severity.parse(finding["severity"])
        key = idempotency_key(fingerprint, self.name, decision.policy_hash)
        title = " ".join(str(finding["title"]).split())
        reason = (
            f"autosec: [{severity.value}] {title} (finding {fingerprint[:12]}, "
            f"policy rule {decision.rule_id or '(none)'}, mode {decision.mode})"
        )
        if len(reason) > REASON_MAX:
            reason = reason[: REASON_MAX - 1] + "…"
        payload = {
            "asset_id": str(finding["asset_id"]),
            "addresses": addresses,
            "reason": reason,
            "finding_fingerprint": fingerprint,
            "external_id": key,
            "expires_at": _expires_at(finding.get("quarantine_expires_at")),
        }
        return self._request(key, fingerprint, finding, payload, decision)

    # --- apply / rollback ---------------------------------------------------------------------

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        self._check_apply_inputs(request, "external_id")
        body = dict(request.payload)
        # Re-check what was recorded: a ledger row edited since planning is refused too.
        if quarantine_addresses(body.get("addresses")) != body.get("addresses"):
            raise ValueError("quarantine request addresses are not in canonical form")
        key = request.idempotency_key
        if request.dry_run:
            return ActionResult(
                key, "dry_run", detail={"would_send": f"POST {COLLECTION}", "body": body}
            )
        endpoint = self._endpoint()
        response = send(session, endpoint, "POST", COLLECTION, key, json=body)
        if isinstance(response, ActionResult):
            return response
        if 200 <= response.status_code < 300:
            return _block_result(key, response, "POST", COLLECTION, created=True)
        if response.status_code == 409:
            return self._existing(key, response, session, endpoint)
        return http_failure(key, response, "POST", COLLECTION, API)

    def _existing(
        self, key: str, conflict: Any, session: Any, endpoint: QuarantineEndpoint
    ) -> ActionResult:
        """The block a 409 says exists: from the 409's body, else looked up by external_id."""
        block = read_json(conflict)
        if isinstance(block, dict) and isinstance(block.get("block"), dict):
            block = block["block"]
        if not (isinstance(block, dict) and block.get("id") not in (None, "")):
            response = send(session, endpoint, "GET", COLLECTION, key, params={"external_id": key})
            if isinstance(response, ActionResult):
                return response
            if response.status_code != 200:
                return http_failure(key, response, "GET", COLLECTION, API)
            block = listed_by_external_id(read_json(response), key)
            if block is None:
                return answer_failure(
                    key,
                    conflict,
                    "the enforcement API reported a duplicate external_id (409) but lists no "
                    "block with it",
                    http_status=409,
                )
        state = str(block.get("state") or "")
        if state == "released":
            return ActionResult(
                key,
                "failed",
                detail={
                    "error": f"block {block['id']} for this request was released; autosec "
                    "does not block again under the same decision",
                    "http_status": 409,
                    "block_id": str(block["id"]),
                    "state": state,
                },
            )
        detail = {"block_id": str(block["id"]), "state": state or None}
        return applied(key, str(block["id"]), detail, created=False, http_status=409)

    def rollback(self, result: ActionResult, session: Any) -> ActionResult:
        """Release the block ``result`` made; a dry-run result is rolled back in dry run."""
        if result.status == "dry_run":
            return ActionResult(
                result.idempotency_key,
                "dry_run",
                detail={"would_send": f"DELETE {COLLECTION}/{{id}}"},
            )
        block_id = result.detail.get("block_id")
        if result.status != "applied" or not block_id:
            raise ValueError(
                f"quarantine action: nothing to roll back for result {result.idempotency_key} "
                f"(status {result.status}, block id {block_id!r})"
            )
        endpoint = self._endpoint()
        key = result.idempotency_key
        path = f"{COLLECTION}/{quote(str(block_id), safe='')}"
        response = send(session, endpoint, "DELETE", path, key)
        if isinstance(response, ActionResult):
            return response
        if not 200 <= response.status_code < 300:
            return http_failure(key, response, "DELETE", path, API)
        answer = read_json(response)
        state = answer.get("state") if isinstance(answer, dict) else None
        if response.status_code != 204 and state != "released":
            error = (
                f"DELETE {path} answered {response.status_code} but the block "
                f"is in state {state!r}, not released"
            )
            return answer_failure(key, response, error)
        return ActionResult(
            key,
            "rolled_back",
            external_ref=result.external_ref,
            detail={
                "block_id": str(block_id),
                "state": "released",
                "http_status": response.status_code,
            },
        )


def _block_result(key: str, response: Any, method: str, path: str, created: bool) -> ActionResult:
    block = read_json(response)
    if not isinstance(block, dict) or block.get("id") in (None, ""):
        error = f"{method} {path} answered {response.status_code} without a block id"
        return answer_failure(key, response, error)
    detail = {"block_id": str(block["id"]), "state": block.get("state")}
    return applied(key, str(block["id"]), detail, created=created, http_status=response.status_code)

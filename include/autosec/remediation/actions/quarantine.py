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

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from autosec.domain.models import Severity
from autosec.domain.targets import InvalidTarget, TargetKind, host_of, validate_target
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    Action,
    ActionRequest,
    ActionResult,
    idempotency_key,
)

BODY_EXCERPT = 500
REASON_MAX = 500
MAX_ADDRESSES = 64
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
COLLECTION = "/api/quarantine"


@dataclass(frozen=True)
class QuarantineEndpoint:
    """Where the enforcement API is and how to authenticate (from an Airflow connection)."""

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"enforcement base_url {self.base_url!r} must be an http(s) URL with a host"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"enforcement base_url {self.base_url!r} must not have a query")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @classmethod
    def from_connection(cls, connection: Any) -> QuarantineEndpoint:
        """host (a name, or a URL with a base path), port, password = bearer token.

        The scheme is ``http`` only when the connection type is ``http``; ``schema`` (if set) is
        a base path; ``extra.timeout`` (seconds) overrides the read timeout.
        """
        return cls(*_base_and_token(connection, "enforcement"), timeout=_timeout(connection))

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "autosec"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


class QuarantineEndpointMissing(ValueError):
    """A block must be sent but no endpoint was configured."""


def _extra(connection: Any) -> dict[str, Any]:
    extra = getattr(connection, "extra_dejson", None)
    if isinstance(extra, Mapping):
        return dict(extra)
    raw = getattr(connection, "extra", None)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError("connection extra is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("connection extra must be a JSON object")
    return data


def _timeout(connection: Any) -> float | tuple[float, float]:
    value = _extra(connection).get("timeout")
    return DEFAULT_TIMEOUT if value is None else (DEFAULT_TIMEOUT[0], float(value))


def _base_and_token(connection: Any, what: str) -> tuple[str, str | None]:
    host = str(getattr(connection, "host", None) or "").strip().rstrip("/")
    if not host:
        raise ValueError(f"{what} connection has no host")
    if "://" in host:
        scheme, _, host = host.partition("://")
    else:
        conn_type = str(getattr(connection, "conn_type", None) or "").lower()
        scheme = "http" if conn_type == "http" else "https"
    netloc, slash, path = host.partition("/")
    port = getattr(connection, "port", None)
    if port:
        netloc = f"{netloc}:{int(port)}"
    schema = str(getattr(connection, "schema", None) or "").strip("/")
    base = "/".join(p for p in (path if slash else "", schema) if p)
    token = getattr(connection, "password", None) or None
    return f"{scheme}://{netloc}" + (f"/{base}" if base else ""), token


def quarantine_addresses(value: Any) -> list[str]:
    """The canonical addresses to block, or ValueError naming the value that is refused.

    IPs, CIDR ranges and host names are kept; a URL contributes its host. A hostile or
    malformed value is refused, never passed on.
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


def _excerpt(response: Any) -> str:
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - an unreadable body must not hide the status
        return ""
    text = text or ""
    return text[:BODY_EXCERPT] + ("…" if len(text) > BODY_EXCERPT else "")


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class QuarantineAction(Action):
    """Blocks an asset's addresses at the enforcement point; releases them on rollback."""

    name = "quarantine"

    def __init__(self, endpoint: QuarantineEndpoint | None = None) -> None:
        self.endpoint = endpoint

    # --- plan (pure) --------------------------------------------------------------------------

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        missing = [
            k for k in ("fingerprint", "asset_id", "title", "severity") if not finding.get(k)
        ]
        if missing:
            raise ValueError(f"quarantine action: finding is missing {', '.join(missing)}")
        self._check_plan_inputs(finding, decision)
        addresses = quarantine_addresses(finding.get("asset_addresses"))
        fingerprint = str(finding["fingerprint"]).strip()
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
        return ActionRequest(
            idempotency_key=key,
            action=self.name,
            finding_fingerprint=fingerprint,
            asset_id=str(finding["asset_id"]),
            payload=payload,
            dry_run=decision.dry_run,
        )

    # --- apply / rollback ---------------------------------------------------------------------

    def _endpoint(self) -> QuarantineEndpoint:
        if self.endpoint is None:
            raise QuarantineEndpointMissing(
                "quarantine action: no enforcement endpoint configured (base URL and token)"
            )
        return self.endpoint

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        if request.action != self.name:
            raise ValueError(f"quarantine action cannot apply a {request.action!r} request")
        body = dict(request.payload)
        if body.get("external_id") != request.idempotency_key:
            raise ValueError(
                "quarantine request payload external_id must be the request's idempotency key"
            )
        # Re-check what was recorded: a ledger row edited since planning is refused too.
        if quarantine_addresses(body.get("addresses")) != body.get("addresses"):
            raise ValueError("quarantine request addresses are not in canonical form")
        if request.dry_run:
            return ActionResult(
                request.idempotency_key,
                "dry_run",
                detail={"would_send": f"POST {COLLECTION}", "body": body},
            )
        endpoint = self._endpoint()
        key = request.idempotency_key
        try:
            response = session.post(
                endpoint.url(COLLECTION),
                json=body,
                headers=endpoint.headers(),
                timeout=endpoint.timeout,
            )
        except (requests.RequestException, OSError) as exc:
            return _transport_failure(key, "POST", COLLECTION, exc)
        if 200 <= response.status_code < 300:
            return _block_result(key, response, "POST", COLLECTION, created=True)
        if response.status_code == 409:
            return self._existing(key, response, session, endpoint)
        return _http_failure(key, response, "POST", COLLECTION)

    def _existing(
        self, key: str, conflict: Any, session: Any, endpoint: QuarantineEndpoint
    ) -> ActionResult:
        """The block a 409 says exists: from the 409's body, else looked up by external_id."""
        block = _json(conflict)
        if isinstance(block, dict) and isinstance(block.get("block"), dict):
            block = block["block"]
        if not (isinstance(block, dict) and block.get("id") not in (None, "")):
            try:
                response = session.get(
                    endpoint.url(COLLECTION),
                    params={"external_id": key},
                    headers=endpoint.headers(),
                    timeout=endpoint.timeout,
                )
            except (requests.RequestException, OSError) as exc:
                return _transport_failure(key, "GET", COLLECTION, exc)
            if response.status_code != 200:
                return _http_failure(key, response, "GET", COLLECTION)
            listed = _json(response)
            found = (
                [b for b in listed if isinstance(b, dict) and b.get("external_id") == key]
                if isinstance(listed, list)
                else []
            )
            if not found or found[0].get("id") in (None, ""):
                return ActionResult(
                    key,
                    "failed",
                    detail={
                        "error": "the enforcement API reported a duplicate external_id (409) "
                        "but lists no block with it",
                        "http_status": 409,
                        "body": _excerpt(conflict),
                    },
                )
            block = found[0]
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
        return ActionResult(
            key,
            "applied",
            external_ref=str(block["id"]),
            detail={
                "block_id": str(block["id"]),
                "state": state or None,
                "created": False,
                "duplicate": True,
                "http_status": 409,
            },
        )

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
        try:
            response = session.delete(
                endpoint.url(path), headers=endpoint.headers(), timeout=endpoint.timeout
            )
        except (requests.RequestException, OSError) as exc:
            return _transport_failure(key, "DELETE", path, exc)
        if not 200 <= response.status_code < 300:
            return _http_failure(key, response, "DELETE", path)
        answer = _json(response)
        state = answer.get("state") if isinstance(answer, dict) else None
        if response.status_code != 204 and state != "released":
            return ActionResult(
                key,
                "failed",
                detail={
                    "error": f"DELETE {path} answered {response.status_code} but the block "
                    f"is in state {state!r}, not released",
                    "http_status": response.status_code,
                    "body": _excerpt(response),
                },
            )
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
    block = _json(response)
    if not isinstance(block, dict) or block.get("id") in (None, ""):
        return ActionResult(
            key,
            "failed",
            detail={
                "error": f"{method} {path} answered {response.status_code} without a block id",
                "http_status": response.status_code,
                "body": _excerpt(response),
            },
        )
    return ActionResult(
        key,
        "applied",
        external_ref=str(block["id"]),
        detail={
            "block_id": str(block["id"]),
            "state": block.get("state"),
            "created": created,
            "http_status": response.status_code,
        },
    )


def _http_failure(key: str, response: Any, method: str, path: str) -> ActionResult:
    return ActionResult(
        key,
        "failed",
        detail={
            "error": f"enforcement API answered {response.status_code} to {method} {path}",
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

"""The Action contract: plan (pure), apply and rollback (through an injected session).

``plan`` turns a finding and its policy decision into an ``ActionRequest`` carrying an
idempotency key built from the finding, the action and the policy hash: the same finding under
the same policy always yields the same key, so a retried task can be recognised and never acts
twice. ``apply`` and ``rollback`` talk to a real system through the session they are given and
report remote failures as a "failed" result instead of raising, so the ledger records them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Literal, get_args

from autosec.policy.engine import Decision

ResultStatus = Literal["applied", "dry_run", "failed", "rolled_back"]
RESULT_STATUSES: tuple[str, ...] = get_args(ResultStatus)


def idempotency_key(fingerprint: str, action: str, policy_hash: str) -> str:
    """sha256 hex of the three identity parts; refuses blanks so two findings never share one."""
    parts = {"fingerprint": fingerprint, "action": action, "policy_hash": policy_hash}
    blank = [name for name, value in parts.items() if not str(value or "").strip()]
    if blank:
        raise ValueError(f"idempotency key needs a non-empty {', '.join(blank)}")
    # A separator that cannot occur in the parts keeps ("ab", "c") and ("a", "bc") apart.
    joined = "\x1f".join(str(v).strip() for v in (fingerprint, action, policy_hash))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def finding_due_date(value: Any) -> str | None:
    """A finding's due date as ``YYYY-MM-DD`` (None when unset), or ValueError naming it."""
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


@dataclass(frozen=True)
class ActionRequest:
    """What an action will do, fully planned before anything is applied."""

    idempotency_key: str
    action: str
    finding_fingerprint: str
    asset_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionRequest:
        return cls(
            idempotency_key=data["idempotency_key"],
            action=data["action"],
            finding_fingerprint=data["finding_fingerprint"],
            asset_id=data["asset_id"],
            payload=dict(data.get("payload") or {}),
            dry_run=bool(data.get("dry_run", False)),
        )


@dataclass(frozen=True)
class ActionResult:
    """What happened when a request was applied or rolled back."""

    idempotency_key: str
    status: ResultStatus
    external_ref: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in RESULT_STATUSES:
            raise ValueError(
                f"action result status {self.status!r}: "
                f"expected one of {', '.join(RESULT_STATUSES)}"
            )

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionResult:
        return cls(
            idempotency_key=data["idempotency_key"],
            status=data["status"],
            external_ref=data.get("external_ref"),
            detail=dict(data.get("detail") or {}),
        )


class RollbackUnsupported(NotImplementedError):
    """The action cannot be undone; an "on the loop" reviewer must fix it by hand."""


class Action(ABC):
    """One kind of remediation. ``name`` is its registry key and what the policy file names."""

    name: ClassVar[str]

    @abstractmethod
    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        """Build the request from a finding (a store row) and its decision. Pure."""

    @abstractmethod
    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        """Carry the request out (or only record it when ``request.dry_run``)."""

    def rollback(self, result: ActionResult, session: Any) -> ActionResult:
        """Undo an applied result; actions that cannot be undone raise RollbackUnsupported."""
        raise RollbackUnsupported(f"action {self.name!r} cannot be rolled back")

    def _checked_fingerprint(
        self,
        finding: Mapping[str, Any],
        decision: Decision,
        required: tuple[str, ...] = ("fingerprint", "asset_id", "title", "severity"),
    ) -> str:
        """The finding's fingerprint, once it has the ``required`` fields and fits the decision."""
        missing = [k for k in required if not finding.get(k)]
        if missing:
            raise ValueError(f"{self.name} action: finding is missing {', '.join(missing)}")
        self._check_plan_inputs(finding, decision)
        return str(finding["fingerprint"]).strip()

    def _request(
        self,
        key: str,
        fingerprint: str,
        finding: Mapping[str, Any],
        payload: dict[str, Any],
        decision: Decision,
    ) -> ActionRequest:
        """The planned request for ``finding``, in dry run when the decision says so."""
        return ActionRequest(
            idempotency_key=key,
            action=self.name,
            finding_fingerprint=fingerprint,
            asset_id=str(finding["asset_id"]),
            payload=payload,
            dry_run=decision.dry_run,
        )

    def _check_apply_inputs(
        self, request: ActionRequest, key_field: str, subject: str | None = None
    ) -> None:
        """Refuse another action's request, or a payload whose ``key_field`` is not its key.

        The key travels in the payload to the remote system, which recognises a repeat by it.
        """
        if request.action != self.name:
            raise ValueError(f"{self.name} action cannot apply a {request.action!r} request")
        if request.payload.get(key_field) != request.idempotency_key:
            raise ValueError(
                f"{subject or f'{self.name} request'} payload {key_field} must be the "
                "request's idempotency key"
            )

    def _check_plan_inputs(self, finding: Mapping[str, Any], decision: Decision) -> None:
        """Refuse to plan for another action, or for a finding the decision was not about."""
        if decision.action != self.name:
            raise ValueError(
                f"{self.name} action cannot plan a decision for action {decision.action!r}"
            )
        decided = decision.inputs.get("finding", {}).get("fingerprint")
        if decided is not None and decided != str(finding.get("fingerprint", "")).strip():
            raise ValueError(
                f"decision is about finding {decided}, not {finding.get('fingerprint')!r}"
            )

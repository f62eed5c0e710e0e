"""What a real approval needs, as pure rules: the store records, these decide.

A request is approved when distinct allowed approvers, none of them the requester, reach the
quorum before it expires; one reasoned rejection rejects it; an expired request can no longer
be decided and is recorded as expired (fail safe: expired means not approved).

Identity comparisons that *refuse* (self-approval, deciding twice) ignore case, so "Alice"
cannot approve what "alice" requested; the comparison that *allows* (is this person an
approver) is exact, so a differently-cased name never borrows someone else's right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]
DecisionKind = Literal["approve", "reject"]
STATUSES: tuple[str, ...] = get_args(ApprovalStatus)
DECISIONS: tuple[str, ...] = get_args(DecisionKind)
GROUP_PREFIX = "group:"


class ApprovalRefused(Exception):
    """A decision the rules do not allow; ``status_to_record`` is set when the refusal
    means the request itself must change status (it has expired)."""

    def __init__(self, reason: str, status_to_record: ApprovalStatus | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_to_record = status_to_record


@dataclass(frozen=True)
class ApprovalDecision:
    """One line of the append-only decision log."""

    approver: str
    decision: str  # "approve" | "reject" (the store also logs "expire" for the system)
    reason: str | None
    decided_at: datetime
    policy_hash: str


@dataclass(frozen=True)
class ApprovalRequest:
    """An approval gate's state as the store holds it."""

    id: int
    requester: str
    approvers: tuple[str, ...]
    quorum: int
    status: str
    expires_at: datetime
    decisions: list[ApprovalDecision] = field(default_factory=list)
    policy_hash: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "approvers", tuple(self.approvers))
        if self.status not in STATUSES:
            raise ValueError(
                f"approval {self.id}: unknown status {self.status!r} "
                f"(expected one of {', '.join(STATUSES)})"
            )
        if self.quorum < 1:
            raise ValueError(f"approval {self.id}: quorum must be at least 1, got {self.quorum}")

    def approvals(self) -> set[str]:
        """Distinct approvers who approved (case-folded)."""
        return {d.approver.casefold() for d in self.decisions if d.decision == "approve"}


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value


def is_expired(request: ApprovalRequest, now: datetime) -> bool:
    """True once ``now`` has reached the expiry (expiry is inclusive: fail safe)."""
    return _aware(now, "now") >= _aware(request.expires_at, f"approval {request.id} expires_at")


def is_allowed(
    approver: str, approvers: Sequence[str], approver_groups: Sequence[str] = ()
) -> bool:
    """Whether ``approver`` is listed by name, or belongs to a listed ``group:NAME``."""
    groups = set(approver_groups)
    for entry in approvers:
        if entry.startswith(GROUP_PREFIX):
            if entry[len(GROUP_PREFIX) :] in groups:
                return True
        elif entry == approver:
            return True
    return False


def apply_decision(
    request: ApprovalRequest,
    approver: str,
    decision: str,
    reason: str | None,
    now: datetime,
    *,
    approver_groups: Sequence[str] = (),
) -> tuple[ApprovalStatus, ApprovalDecision]:
    """Check one decision against the rules; return the request's new status and the log line.

    Raises ``ApprovalRefused`` naming the rule that refuses it. ``request`` is not modified.
    """
    approver = (approver or "").strip()
    reason = (reason or "").strip() or None
    if decision not in DECISIONS:
        raise ApprovalRefused(
            f"unknown decision {decision!r}: expected one of {', '.join(DECISIONS)}"
        )
    if not approver:
        raise ApprovalRefused("an approver name is required")
    if request.status != "pending":
        raise ApprovalRefused(f"approval {request.id} is already {request.status}")
    if is_expired(request, now):
        raise ApprovalRefused(
            f"approval {request.id} expired at {request.expires_at.isoformat()}",
            status_to_record="expired",
        )
    if approver.casefold() == request.requester.strip().casefold():
        raise ApprovalRefused(f"{approver} requested approval {request.id} and cannot decide on it")
    if not is_allowed(approver, request.approvers, approver_groups):
        raise ApprovalRefused(
            f"{approver} is not an approver of approval {request.id} "
            f"(approvers: {', '.join(request.approvers) or 'none'})"
        )
    if any(d.approver.casefold() == approver.casefold() for d in request.decisions):
        raise ApprovalRefused(f"{approver} has already decided on approval {request.id}")
    if decision == "reject" and reason is None:
        raise ApprovalRefused("a rejection needs a reason")

    recorded = ApprovalDecision(
        approver=approver,
        decision=decision,
        reason=reason,
        decided_at=now,
        policy_hash=request.policy_hash,
    )
    if decision == "reject":
        return "rejected", recorded
    approved_by = request.approvals() | {approver.casefold()}
    return ("approved" if len(approved_by) >= request.quorum else "pending"), recorded

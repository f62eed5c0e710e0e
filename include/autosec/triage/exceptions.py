"""Exceptions to triage, as pure rules: risk acceptance and false positive.

An exception is asked for by one person with a reason and an expiry, and approved by another:
nobody approves their own (compared ignoring case and blanks, like approvals; the store's CHECK
refuses it too). It is scoped to exactly one of

- ``finding``: one finding, by fingerprint;
- ``cve``: one CVE, on every asset (findings whose CVE ids include it);
- ``asset``: every finding on one asset.

While an exception is approved and unexpired, the open findings it matches are ``accepted``
(risk acceptance) or ``false_positive``, and new findings that match are set so at once. When it
expires (or is revoked) they are open again and their owners are told: an accepted risk is
looked at again, never forgotten. When several exceptions match one finding the narrowest scope
wins (finding, then CVE, then asset), then the one that lasts longest, then the oldest.

No exception lasts more than ``MAX_DAYS``: a risk accepted "for ever" is a risk nobody reviews.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

KINDS: tuple[str, ...] = ("risk_acceptance", "false_positive")
SCOPES: tuple[str, ...] = ("finding", "cve", "asset")
STATUSES: tuple[str, ...] = ("requested", "approved", "rejected", "revoked", "expired")
STATUS_FOR_KIND = {"risk_acceptance": "accepted", "false_positive": "false_positive"}
MAX_DAYS = 366
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class ExceptionRefused(ValueError):
    """A request or decision the rules do not allow; the message says which rule and why."""


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ExceptionRefused(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value


def same_person(a: str, b: str) -> bool:
    """Identity comparison that refuses: case and surrounding blanks do not make a new person."""
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class ExceptionRequest:
    """What someone asks for; :meth:`checked` returns it normalised or refuses it."""

    kind: str
    scope: str
    target: str
    reason: str
    requested_by: str
    expires_at: datetime

    def checked(self, now: datetime) -> ExceptionRequest:
        """The request normalised (CVE upper-case, fingerprint lower-case), or a refusal."""
        _aware(now, "now")
        if self.kind not in KINDS:
            raise ExceptionRefused(f"exception kind {self.kind!r}: expected one of {list(KINDS)}")
        if self.scope not in SCOPES:
            raise ExceptionRefused(
                f"exception scope {self.scope!r}: expected one of {list(SCOPES)}"
            )
        if not self.reason.strip():
            raise ExceptionRefused("an exception needs a reason: say why the risk is acceptable")
        if not self.requested_by.strip():
            raise ExceptionRefused("an exception needs the name of who asks for it")
        target = self.target.strip()
        if self.scope == "cve":
            target = target.upper()
            if not _CVE.match(target):
                raise ExceptionRefused(f"CVE scope: {self.target!r} is not a CVE id (CVE-YYYY-N)")
        elif self.scope == "finding":
            target = target.lower()
            if not _FINGERPRINT.match(target):
                raise ExceptionRefused(
                    f"finding scope: {self.target!r} is not a finding fingerprint (64 hex digits)"
                )
        elif not target:
            raise ExceptionRefused("asset scope: the asset id is empty")
        expires_at = _aware(self.expires_at, "expires_at")
        if expires_at <= now:
            raise ExceptionRefused(
                f"expiry {expires_at.isoformat()} is not in the future (now {now.isoformat()})"
            )
        if expires_at - now > timedelta(days=MAX_DAYS):
            raise ExceptionRefused(
                f"expiry {expires_at.date().isoformat()} is more than {MAX_DAYS} days away: "
                "ask again when it ends, so the risk is looked at again"
            )
        return replace(
            self,
            target=target,
            reason=self.reason.strip(),
            requested_by=self.requested_by.strip(),
        )


def check_approval(
    exception_id: int,
    status: str,
    requested_by: str,
    expires_at: datetime,
    approver: str,
    now: datetime,
) -> None:
    """Refuse an approval the rules do not allow (self-approval, not pending, expired)."""
    if not approver.strip():
        raise ExceptionRefused("an approval needs the approver's name")
    if status != "requested":
        raise ExceptionRefused(
            f"exception {exception_id} is {status}: only a requested exception can be approved"
        )
    if _aware(expires_at, "expires_at") <= _aware(now, "now"):
        raise ExceptionRefused(f"exception {exception_id} expired at {expires_at.isoformat()}")
    if same_person(approver, requested_by):
        raise ExceptionRefused(
            f"exception {exception_id}: {approver.strip()!r} asked for it and cannot approve it "
            "(an exception needs a second person)"
        )


def check_revocation(exception_id: int, status: str, actor: str, reason: str) -> None:
    """Only a requested or approved exception can be revoked, by a named person, with a reason."""
    if not actor.strip():
        raise ExceptionRefused("a revocation needs the name of who revokes")
    if not reason.strip():
        raise ExceptionRefused("a revocation needs a reason")
    if status not in ("requested", "approved"):
        raise ExceptionRefused(
            f"exception {exception_id} is {status}: only a requested or approved exception "
            "can be revoked"
        )


@dataclass(frozen=True)
class ActiveException:
    """An approved exception, as matching needs it."""

    id: int
    kind: str
    scope: str
    target: str
    expires_at: datetime

    @property
    def status_for_findings(self) -> str:
        return STATUS_FOR_KIND[self.kind]

    def matches(self, fingerprint: str, asset_id: str, cve_ids: Iterable[str]) -> bool:
        if self.scope == "finding":
            return fingerprint.lower() == self.target
        if self.scope == "asset":
            return asset_id == self.target
        return self.target in {c.strip().upper() for c in cve_ids}


_SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


def precedence(exception: ActiveException) -> tuple[int, float, int]:
    """Sort key: narrowest scope first, then the one that lasts longest, then the oldest.

    The store orders the same way in SQL (``store.exceptions``); a test holds them together.
    """
    return (_SCOPE_RANK[exception.scope], -exception.expires_at.timestamp(), exception.id)


def choose(
    exceptions: Sequence[ActiveException],
    fingerprint: str,
    asset_id: str,
    cve_ids: Iterable[str],
    now: datetime,
) -> ActiveException | None:
    """The exception that applies to a finding now, or None."""
    cves = tuple(cve_ids)
    matching = [
        e for e in exceptions if e.expires_at > now and e.matches(fingerprint, asset_id, cves)
    ]
    return min(matching, key=precedence) if matching else None

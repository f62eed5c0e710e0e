"""The named lifecycle events stages emit, and the glob patterns routes subscribe with."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

EVENT_NAMES = frozenset(
    {
        "scan.failed",
        "finding.new",
        "finding.black_swan",
        "approval.requested",
        "approval.expired",
        "sla.breached",
        "report.ready",
        "blind_spot.found",
        "blind_spot.assigned",
        "blind_spot.dismissed",
        "blind_spot.adopted",
        "input.rejected",
        "inventory.quarantined",
        "action.rolled_back",
        "action.rollback_refused",
        "action.unplannable",
        "break_glass.opened",
        "break_glass.closed",
        "break_glass.used",
        "break_glass.refused",
        "verification.requested",
        "verification.settled",
        "ticket.commented",
        "ticket.closed",
        "drill.completed",
        "import.finished",
        "intel.feed_stale",
        "exception.requested",
        "exception.approved",
        "exception.revoked",
        "exception.expired",
        "triage.rejected",
    }
)

_GLOB_CHARS = frozenset("*?[")


def is_pattern(text: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in text)


def matching_names(pattern: str, names: Iterable[str] = EVENT_NAMES) -> frozenset[str]:
    """The known event names ``pattern`` (a name or a shell-style glob) selects."""
    return frozenset(n for n in names if fnmatchcase(n, pattern))


def expand(patterns: Iterable[str]) -> frozenset[str]:
    """Every known event name any of ``patterns`` selects.

    Raises ValueError naming the pattern when one selects nothing: a typo in a route would
    otherwise silence it without a word.
    """
    selected: set[str] = set()
    for pattern in patterns:
        names = matching_names(pattern)
        if not names:
            hint = "no known event matches the glob" if is_pattern(pattern) else "unknown event"
            raise ValueError(
                f"{pattern!r}: {hint} (known events: {', '.join(sorted(EVENT_NAMES))})"
            )
        selected |= names
    return frozenset(selected)

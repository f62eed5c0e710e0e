"""The texts of digests and rate-limit summaries: bounded whatever the number of events.

A digest says how many events of each name there were and shows the first few subjects of each;
a summary says what the rate limit held back, by event name and by team. Event subjects and
details come from inventories, scanners and people, so every line is folded to one line and
capped, and chat markup (``<!channel>``, ``<url|text>``) is escaped before it reaches a channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SUBJECT_MAX = 150
LINE_MAX = 300
DETAIL_MAX = 200
TEAMS_LISTED = 20
DETAIL_KEYS = ("error", "reason", "summary", "outcome")
EVENT_TYPE = "autosec_digest"


def one_line(value: object, limit: int = LINE_MAX) -> str:
    """Every run of whitespace folded to one space, control characters dropped, capped."""
    text = " ".join(str(value if value is not None else "").split())
    text = "".join(ch for ch in text if ord(ch) >= 32 and ch != "\x7f")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def detail(payload: object) -> str:
    """The one field of a payload that says what happened (an error, a reason, a summary)."""
    if not isinstance(payload, Mapping):
        return ""
    for key in DETAIL_KEYS:
        if payload.get(key):
            return f": {one_line(payload[key])[:DETAIL_MAX]}"
    return ""


@dataclass(frozen=True)
class Sample:
    subject: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NameCount:
    """How many events of one name a digest holds, and the first few of them."""

    name: str
    count: int
    samples: tuple[Sample, ...] = ()


def team_label(team: str | None) -> str:
    return f"team {one_line(team, 100)}" if team else "no owning team"


def digest_text(team: str | None, groups: Sequence[NameCount], max_lines_per_event: int) -> str:
    """One message for many events. ``team`` None: not grouped by team (no team line)."""
    total = sum(g.count for g in groups)
    header = f"autosec: {total} event(s)"
    if team is not None:
        header += f" for {team_label(team)}"
    lines = [header]
    for group in sorted(groups, key=lambda g: g.name):
        lines.append(f"{group.name}: {group.count}")
        shown = group.samples[:max_lines_per_event]
        for sample in shown:
            lines.append(f"  - {one_line(sample.subject)}{detail(sample.payload)}")
        if group.count > len(shown):
            lines.append(f"  … and {group.count - len(shown)} more")
    return "\n".join(lines)


def digest_subject(team: str | None, groups: Sequence[NameCount]) -> str:
    counts = ", ".join(
        f"{g.count} {g.name}" for g in sorted(groups, key=lambda g: (-g.count, g.name))
    )
    prefix = f"[autosec] {team_label(team)}: " if team is not None else "[autosec] "
    return one_line(prefix + counts, SUBJECT_MAX)


@dataclass(frozen=True)
class HeldBack:
    """What a rate-limit summary stands for: the digests it replaces, by name and by team."""

    digests: int
    by_name: Sequence[tuple[str, int]]
    by_team: Sequence[tuple[str, int]]

    @property
    def events(self) -> int:
        return sum(count for _, count in self.by_name)


def overflow_text(channel: str, messages: int, per_minutes: int, held: HeldBack) -> str:
    lines = [
        f"autosec: {held.events} more events in {held.digests} more digest(s): channel "
        f"{channel} reached its rate limit ({messages} messages per {per_minutes} min), so "
        "they arrive as this one summary",
    ]
    lines += [f"{name}: {count}" for name, count in sorted(held.by_name)]
    teams = sorted(held.by_team, key=lambda tc: (-tc[1], tc[0]))
    listed = ", ".join(f"{team_label(t)} ({c})" for t, c in teams[:TEAMS_LISTED])
    lines.append(f"Teams: {listed}")
    if len(teams) > TEAMS_LISTED:
        lines.append(f"  … and {len(teams) - TEAMS_LISTED} more team(s)")
    return "\n".join(lines)


def overflow_subject(held: HeldBack) -> str:
    return one_line(
        f"[autosec] {held.events} more events from {held.digests} team digest(s) "
        "(rate limit reached)",
        SUBJECT_MAX,
    )


def escape_chat(text: str) -> str:
    """Slack mrkdwn control characters, escaped: a subject cannot mention @channel or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_body(text: str, key: str, about: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook JSON: the escaped text, and the key in the message metadata."""
    return {
        "text": escape_chat(text),
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"autosec_key": key, **about}},
    }

"""Notification routes: which events go to which channel, for which teams, and how often.

A route subscribes to event names or globs (``sla.*``), optionally only for some teams, and
names one channel: a chat webhook (an Airflow connection holding the webhook URL) or e-mail
through the SMTP provider's connection to fixed recipients (per team where configured). Events
reach people only as digests: one message per (route, team) per delivery, at most one per
``digest_minutes`` window, and every channel has a rate limit; what exceeds it arrives as one
summary ("N more events"), so a sweep over 100,000 findings cannot send 100,000 messages.

```yaml
notifications:
  - name: sla-to-chat
    events: ["sla.breached", "finding.black_swan"]
    channel: {kind: chat, conn_id: autosec_notify, rate_limit: {messages: 20, per_minutes: 60}}
    digest_minutes: 60
  - name: payments-mail
    events: ["sla.*", "approval.expired"]
    teams: ["team-payments", "team-pay-*"]
    channel:
      kind: email
      conn_id: smtp_default
      to: [secops@example.org]
      team_to: {team-payments: [payments-oncall@example.org]}
```
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosec.notifications.events import expand

CONN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$"
ROUTE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"

DEFAULT_NOTIFY_EVENTS = (
    "scan.failed",
    "finding.black_swan",
    "approval.expired",
    "sla.breached",
    "blind_spot.found",
    "action.rolled_back",
    "action.rollback_refused",
    "action.unplannable",
    "break_glass.opened",
    "break_glass.closed",
    "break_glass.used",
    "break_glass.refused",
    "verification.settled",
    "ticket.closed",
    "blind_spot.assigned",
    "exception.expired",
    "triage.rejected",
    "intel.feed_stale",
    "inventory.quarantined",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    """At most ``messages`` messages on a channel per ``per_minutes`` window (clock-aligned)."""

    messages: int = Field(20, ge=1, le=10_000)
    per_minutes: int = Field(60, ge=1, le=7 * 24 * 60)


class ChatChannel(_Strict):
    """A Slack-compatible incoming webhook; the connection's password holds its URL."""

    kind: Literal["chat"] = "chat"
    conn_id: str = Field("autosec_notify", pattern=CONN_ID_PATTERN)
    rate_limit: RateLimit = RateLimit()

    @property
    def key(self) -> str:
        return f"chat:{self.conn_id}"

    def recipients_for(self, team: str | None) -> tuple[str, ...]:
        return ()


def _addresses(values: Iterable[Any], what: str) -> list[str]:
    from autosec.remediation.actions.notify import check_address

    return list(dict.fromkeys(check_address(v, what) for v in values))


class EmailChannel(_Strict):
    """E-mail through the SMTP provider's connection (host, port, TLS, login, ``from_email``).

    A team's digest goes to ``team_to[team]`` when the team is listed, else to ``to``; the
    rate-limit summary goes to ``to``.
    """

    kind: Literal["email"]
    conn_id: str = Field("smtp_default", pattern=CONN_ID_PATTERN)
    to: list[str] = Field(min_length=1)
    team_to: dict[str, list[str]] = {}
    from_email: str | None = None
    rate_limit: RateLimit = RateLimit()

    @field_validator("to")
    @classmethod
    def _plain_addresses(cls, value: list[str]) -> list[str]:
        return _addresses(value, "recipient")

    @field_validator("team_to")
    @classmethod
    def _team_addresses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        checked = {}
        for team, addresses in value.items():
            if not addresses:
                raise ValueError(f"team {team!r}: no recipient listed")
            checked[team] = _addresses(addresses, f"recipient for team {team!r}")
        return checked

    @field_validator("from_email")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _addresses([value], "sender")[0]

    @property
    def key(self) -> str:
        return f"email:{self.conn_id}"

    def recipients_for(self, team: str | None) -> tuple[str, ...]:
        """Who receives ``team``'s digest (``None``: the rate-limit summary)."""
        if team is not None and team in self.team_to:
            return tuple(self.team_to[team])
        return tuple(self.to)


Channel = Annotated[ChatChannel | EmailChannel, Field(discriminator="kind")]


class NotificationRoute(_Strict):
    """Events (names or globs) for some teams (globs; ``""`` is "no team") to one channel.

    ``conn_id`` alone, the older form, means a chat channel on that connection.
    """

    name: str = Field(pattern=ROUTE_NAME_PATTERN)
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_EVENTS), min_length=1)
    channel: Channel = ChatChannel()
    teams: list[str] | None = Field(None, min_length=1)
    digest_minutes: int = Field(
        0, ge=0, le=7 * 24 * 60, description="at most one digest per team per window; 0: per run"
    )
    max_lines_per_event: int = Field(10, ge=1, le=100)

    @model_validator(mode="before")
    @classmethod
    def _older_form_and_default_name(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "conn_id" in data:
            if "channel" in data:
                raise ValueError("give either channel or conn_id (a chat connection), not both")
            data["channel"] = {"kind": "chat", "conn_id": data.pop("conn_id")}
        channel = data.get("channel")
        if isinstance(channel, dict) and "kind" not in channel:
            data["channel"] = {"kind": "chat", **channel}
        if not data.get("name"):
            channel = data.get("channel") or ChatChannel()
            kind, conn_id = (
                (channel.get("kind"), channel.get("conn_id"))
                if isinstance(channel, dict)
                else (channel.kind, channel.conn_id)
            )
            default_conn = "smtp_default" if kind == "email" else "autosec_notify"
            data["name"] = f"{kind or 'chat'}-{conn_id or default_conn}"
        return data

    @field_validator("events")
    @classmethod
    def _known_events(cls, patterns: list[str]) -> list[str]:
        expand(patterns)
        return patterns

    @property
    def event_names(self) -> frozenset[str]:
        return expand(self.events)

    def wants(self, event_name: str, team: str) -> bool:
        """Whether an event of this name, about this team ('' for none), takes this route."""
        if event_name not in self.event_names:
            return False
        return self.teams is None or any(fnmatchcase(team, p) for p in self.teams)


def check_routes(routes: Sequence[NotificationRoute]) -> Sequence[NotificationRoute]:
    """Route names are unique (deliveries are recorded by name) and routes sharing a channel
    agree on its rate limit (the limit belongs to the channel)."""
    seen: dict[str, int] = {}
    limits: dict[str, tuple[str, RateLimit]] = {}
    for index, route in enumerate(routes):
        if route.name in seen:
            raise ValueError(
                f"routes {seen[route.name]} and {index} are both named {route.name!r}: "
                "give each route its own name"
            )
        seen[route.name] = index
        key = route.channel.key
        first = limits.setdefault(key, (route.name, route.channel.rate_limit))
        if first[1] != route.channel.rate_limit:
            raise ValueError(
                f"routes {first[0]!r} and {route.name!r} share channel {key} with different "
                "rate limits: give both the same rate_limit"
            )
    return routes

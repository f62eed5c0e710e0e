"""Routes, digest windows, rate limits and digest texts, with plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.config.estate import EstateConfig
from autosec.notifications import digest, planning
from autosec.notifications.events import EVENT_NAMES, expand
from autosec.notifications.routes import (
    DEFAULT_NOTIFY_EVENTS,
    ChatChannel,
    EmailChannel,
    NotificationRoute,
    RateLimit,
    check_routes,
)

NOW = datetime(2026, 11, 23, 10, 17, 42, tzinfo=UTC)


# --- routes -------------------------------------------------------------------------------


def test_globs_select_known_events_and_a_typo_is_named() -> None:
    assert expand(["sla.*", "approval.requested"]) == {"sla.breached", "approval.requested"}
    assert expand(["*"]) == EVENT_NAMES
    with pytest.raises(ValueError, match=r"'sla\.breach': unknown event"):
        expand(["sla.breach"])
    with pytest.raises(ValueError, match=r"'scan\.\*x': no known event matches the glob"):
        expand(["scan.*x"])
    with pytest.raises(ValidationError, match=r"finding\.nwe"):
        NotificationRoute(events=["finding.nwe"])


def test_the_older_form_is_a_chat_route_named_after_its_connection() -> None:
    route = NotificationRoute.model_validate({"conn_id": "ops_chat", "events": ["scan.failed"]})
    assert route.channel == ChatChannel(conn_id="ops_chat")
    assert route.name == "chat-ops_chat"
    assert NotificationRoute().name == "chat-autosec_notify"
    assert set(NotificationRoute().events) == set(DEFAULT_NOTIFY_EVENTS)
    assert "sla.breached" in NotificationRoute().event_names
    with pytest.raises(ValidationError, match="either channel or conn_id"):
        NotificationRoute.model_validate({"conn_id": "a", "channel": {"conn_id": "b"}})


def test_a_route_wants_its_events_for_its_teams_only() -> None:
    route = NotificationRoute(
        name="payments", events=["sla.*", "scan.failed"], teams=["team-pay*", ""]
    )
    assert route.wants("sla.breached", "team-payments")
    assert route.wants("scan.failed", "")  # "" is the events nobody owns
    assert not route.wants("sla.breached", "team-web")
    assert not route.wants("finding.new", "team-payments")
    everyone = NotificationRoute(name="all", events=["sla.breached"])
    assert everyone.wants("sla.breached", "") and everyone.wants("sla.breached", "x")


def test_email_channels_take_plain_addresses_per_team() -> None:
    channel = EmailChannel(
        kind="email",
        to=["secops@example.org"],
        team_to={"team-web": ["web@example.org", "web@example.org"]},
    )
    assert channel.key == "email:smtp_default"
    assert channel.recipients_for("team-web") == ("web@example.org",)
    assert channel.recipients_for("team-db") == ("secops@example.org",)
    assert channel.recipients_for(None) == ("secops@example.org",)
    with pytest.raises(ValidationError, match="not a plain e-mail address"):
        EmailChannel(kind="email", to=["secops@example.org\nBcc: x@evil.example"])
    with pytest.raises(ValidationError, match="team 'team-web': no recipient"):
        EmailChannel(kind="email", to=["a@example.org"], team_to={"team-web": []})
    with pytest.raises(ValidationError, match="to"):
        EmailChannel(kind="email", to=[])


def test_route_names_are_unique_and_a_shared_channel_has_one_rate_limit() -> None:
    a = NotificationRoute(name="a", events=["sla.breached"])
    b = NotificationRoute(name="a", events=["scan.failed"])
    with pytest.raises(ValueError, match="both named 'a'"):
        check_routes([a, b])
    slow = NotificationRoute(
        name="slow", events=["scan.failed"], channel=ChatChannel(rate_limit=RateLimit(messages=2))
    )
    with pytest.raises(ValueError, match="share channel chat:autosec_notify"):
        check_routes([a, slow])
    with pytest.raises(ValidationError, match="share channel"):
        EstateConfig(
            inventory=[],
            policy=Path("p.yaml"),
            notifications=[a.model_dump(), slow.model_dump()],
        )


# --- assignment and windows ----------------------------------------------------------------


def test_each_group_goes_to_every_route_that_wants_it() -> None:
    chat = NotificationRoute(name="chat", events=["sla.breached", "scan.failed"])
    mail = NotificationRoute(
        name="mail",
        events=["sla.*"],
        teams=["team-a"],
        channel=EmailChannel(kind="email", to=["a@example.org"]),
    )
    groups = [
        planning.EventGroup("sla.breached", "team-a", 3),
        planning.EventGroup("sla.breached", "team-b", 2),
        planning.EventGroup("finding.new", "team-a", 9),
    ]
    assert planning.assign([chat, mail], groups) == [
        planning.Assignment("chat", "sla.breached", "team-a"),
        planning.Assignment("mail", "sla.breached", "team-a"),
        planning.Assignment("chat", "sla.breached", "team-b"),
    ]


def test_windows_are_aligned_to_the_clock() -> None:
    assert planning.window_start(NOW, 60) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert planning.window_start(NOW, 15) == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert planning.window_start(NOW, 24 * 60) == datetime(2026, 11, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="positive length"):
        planning.window_start(NOW, 0)


def test_a_team_gets_at_most_one_digest_per_window() -> None:
    hour = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert planning.digest_not_before(NOW, 60, None) == NOW
    assert planning.digest_not_before(NOW, 0, NOW - timedelta(seconds=5)) == NOW
    # One already went out this hour: the next waits for 11:00.
    assert planning.digest_not_before(NOW, 60, hour + timedelta(minutes=5)) == hour + timedelta(
        hours=1
    )
    # The last one went out in the previous hour (a run that drifted by seconds): now.
    assert planning.digest_not_before(NOW, 60, hour - timedelta(seconds=2)) == NOW


def _due(count: int) -> list[planning.DueDigest]:
    return [planning.DueDigest(100 - i, "r", f"team-{i}", 10) for i in range(count)]


def test_digests_that_fit_the_rate_limit_are_all_sent_oldest_first() -> None:
    allocation = planning.allocate(_due(3), RateLimit(messages=5), sent_in_window=2)
    assert [d.delivery_id for d in allocation.send] == [98, 99, 100]
    assert not allocation.summarise and not allocation.held
    assert allocation.messages == 3


def test_beyond_the_rate_limit_the_rest_arrive_as_one_summary() -> None:
    allocation = planning.allocate(_due(10), RateLimit(messages=4), sent_in_window=0)
    assert [d.delivery_id for d in allocation.send] == [91, 92, 93]
    assert [d.delivery_id for d in allocation.summarise] == list(range(94, 101))
    assert allocation.messages == 4
    # One slot left: everything is in the one summary.
    last_slot = planning.allocate(_due(3), RateLimit(messages=4), sent_in_window=3)
    assert not last_slot.send and len(last_slot.summarise) == 3 and last_slot.messages == 1
    # No slot left: everything waits for the next window.
    full = planning.allocate(_due(3), RateLimit(messages=4), sent_in_window=4)
    assert full.messages == 0 and len(full.held) == 3


def test_the_idempotency_key_names_one_delivery() -> None:
    key = planning.delivery_key("chat:x", "r", "team-a", 7, NOW)
    assert key == planning.delivery_key("chat:x", "r", "team-a", 7, NOW)
    assert len(key) == 64
    assert key != planning.delivery_key("chat:x", "r", "team-a", 8, NOW)
    assert key != planning.delivery_key("chat:x", "r", "team-b", 7, NOW)


# --- texts ---------------------------------------------------------------------------------


def test_a_digest_of_100000_events_stays_a_few_lines() -> None:
    groups = [
        digest.NameCount(
            "sla.breached",
            100_000,
            tuple(
                digest.Sample(f"finding:{i}", {"summary": f"high TLS 1.0 on web-{i}"})
                for i in range(5)
            ),
        ),
        digest.NameCount("scan.failed", 1, (digest.Sample("scan_run:4", {"error": "exit 1"}),)),
    ]
    text = digest.digest_text("team-web", groups, max_lines_per_event=3)
    lines = text.splitlines()
    assert lines[0] == "autosec: 100001 event(s) for team team-web"
    assert lines[1:3] == ["scan.failed: 1", "  - scan_run:4: exit 1"]
    assert "sla.breached: 100000" in lines
    assert "  - finding:0: high TLS 1.0 on web-0" in lines
    assert "  … and 99997 more" in lines
    assert len(lines) == 8
    assert digest.digest_subject("team-web", groups) == (
        "[autosec] team team-web: 100000 sla.breached, 1 scan.failed"
    )
    assert digest.digest_text("", groups[1:], 3).startswith(
        "autosec: 1 event(s) for no owning team"
    )


def test_untrusted_subjects_are_one_line_and_cannot_mention_or_link() -> None:
    groups = [
        digest.NameCount(
            "blind_spot.found",
            1,
            (digest.Sample("evil\nhost <!channel> <https://x.example|click>", {}),),
        )
    ]
    text = digest.digest_text("t", groups, 5)
    assert "\n  - evil host <!channel>" in text
    body = digest.chat_body(text, "k" * 64, {"team": "t"})
    assert "<!channel>" not in body["text"] and "&lt;!channel&gt;" in body["text"]
    assert "&lt;https://x.example|click&gt;" in body["text"]
    assert body["metadata"]["event_payload"] == {"autosec_key": "k" * 64, "team": "t"}
    assert digest.one_line("x" * 400).endswith("…") and len(digest.one_line("x" * 400)) == 300


def test_the_rate_limit_summary_counts_what_it_holds_back() -> None:
    held = digest.HeldBack(
        digests=30,
        by_name=[("sla.breached", 9000), ("scan.failed", 12)],
        by_team=[(f"team-{i:02d}", 300 + i) for i in range(30)],
    )
    assert held.events == 9012
    text = digest.overflow_text("chat:autosec_notify", 20, 60, held)
    lines = text.splitlines()
    assert lines[0].startswith("autosec: 9012 more events in 30 more digest(s): channel ")
    assert "(20 messages per 60 min)" in lines[0]
    assert lines[1:3] == ["scan.failed: 12", "sla.breached: 9000"]
    assert lines[3].startswith("Teams: team team-29 (329), team team-28 (328)")
    assert lines[3].count("team team-") == digest.TEAMS_LISTED
    assert lines[4] == "  … and 10 more team(s)"
    assert digest.overflow_subject(held) == (
        "[autosec] 9012 more events from 30 team digest(s) (rate limit reached)"
    )

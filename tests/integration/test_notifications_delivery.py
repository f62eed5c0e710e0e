"""Notifications end to end: events in the real store routed into per-team digests, sent by the
Airflow notifiers to the chat webhook stand-in and to a real SMTP server (aiosmtpd) on loopback,
through Airflow connections defined as AIRFLOW_CONN_* environment variables.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import secrets
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from autosec.demo.chat import ChatServer
from autosec.notifications.routes import ChatChannel, EmailChannel, NotificationRoute, RateLimit
from autosec.stages import notifications as stage
from autosec.store import db, events
from autosec.store import notifications as deliveries
from conftest import ADMIN_URL
from support.http import RecordingServer, serving

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
CHAT_CONN = "autosec_test_chat"
SMTP_CONN = "autosec_test_smtp"
HEADER = re.compile(r"^autosec: (\d+) event\(s\) for (team (\S+)|no owning team)$")


# --- real servers on loopback, reached through Airflow connections --------------------------


def _connection_env(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    with ChatServer() as server:
        monkeypatch.setenv(
            _connection_env(CHAT_CONN), json.dumps({"conn_type": "http", "password": server.url})
        )
        yield server


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "rcpt_tos": sorted(envelope.rcpt_tos),
                "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
            }
        )
        return "250 2.0.0 accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), ready_timeout=5)
    controller.start()
    monkeypatch.setenv(
        _connection_env(SMTP_CONN),
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": controller.port,
                "extra": {
                    "disable_ssl": True,
                    "disable_tls": True,
                    "from_email": "autosec@example.org",
                    "retry_limit": 0,
                    "timeout": 5,
                },
            }
        ),
    )
    try:
        yield inbox
    finally:
        controller.stop()


def chat_route(name: str = "ops", events_: list[str] | None = None, **kwargs) -> NotificationRoute:
    channel = ChatChannel(conn_id=CHAT_CONN, rate_limit=kwargs.pop("rate_limit", RateLimit()))
    return NotificationRoute(
        name=name, events=events_ or ["sla.breached", "scan.failed"], channel=channel, **kwargs
    )


def mail_route(name: str = "mail", events_: list[str] | None = None, **kwargs):
    channel = EmailChannel(
        kind="email",
        conn_id=SMTP_CONN,
        to=kwargs.pop("to", ["secops@example.org"]),
        team_to=kwargs.pop("team_to", {}),
    )
    return NotificationRoute(
        name=name, events=events_ or ["scan.failed"], channel=channel, **kwargs
    )


def deliver(conn, routes, now: datetime = NOW, send=None, **kwargs) -> stage.DeliveryOutcome:
    from autosec.airflow.notifiers import channel_configured, deliver_message

    return stage.deliver_notifications(
        conn, routes, send or deliver_message, now, configured=channel_configured, **kwargs
    )


def emit(conn, name: str, team: str | None, count: int, start: int = 0, **payload) -> None:
    extra = {"team": team} if team is not None else {}
    events.emit_many(
        conn,
        name,
        [(f"{name}:{start + i}", {**extra, **payload}) for i in range(count)],
    )
    conn.commit()


def by_team(texts: list[str]) -> dict[str, tuple[int, str]]:
    """team ('' for none) -> (event count in the header, the whole text)."""
    found: dict[str, tuple[int, str]] = {}
    for text in texts:
        match = HEADER.match(text.splitlines()[0])
        assert match, text
        team = match.group(3) or ""
        assert team not in found, f"two digests for {team!r}"
        found[team] = (int(match.group(1)), text)
    return found


def chat_texts(server: ChatServer) -> list[str]:
    return [m["text"] for m in server.messages()]


# --- digests per team -----------------------------------------------------------------------


def test_one_digest_per_team_and_no_event_told_twice(conn, chat) -> None:
    emit(conn, "sla.breached", "team-a", 30, summary="high: TLS 1.0")
    emit(conn, "sla.breached", "team-b", 5, start=100)
    emit(conn, "scan.failed", None, 2, error="nmap exited 1")
    emit(conn, "finding.new", "team-a", 4)  # no route wants it

    outcome = deliver(conn, [chat_route()])

    assert (outcome.routed, outcome.skipped, outcome.sent, outcome.failures) == (37, 4, 3, [])
    digests = by_team(chat_texts(chat))
    assert sorted(digests) == ["", "team-a", "team-b"]
    count, text = digests["team-a"]
    assert count == 30
    assert "sla.breached: 30" in text.splitlines()
    assert "  - sla.breached:0: high: TLS 1.0" in text.splitlines()
    assert "  … and 20 more" in text.splitlines()  # ten subjects shown per event name
    assert digests[""][0] == 2 and "  - scan.failed:1: nmap exited 1" in digests[""][1]
    keys = [m["metadata"]["event_payload"]["autosec_key"] for m in chat.messages()]
    assert len(set(keys)) == 3 and all(re.fullmatch("[0-9a-f]{64}", k) for k in keys)

    again = deliver(conn, [chat_route()], NOW + timedelta(hours=1))
    assert (again.routed, again.sent) == (0, 0)
    assert len(chat.messages()) == 3
    delivered = dict(
        conn.execute(
            "SELECT name, count(delivered_at) FROM events WHERE routed_at IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    assert delivered == {"sla.breached": 35, "scan.failed": 2, "finding.new": 0}


def test_events_are_routed_by_name_and_team_to_chat_and_email(conn, chat, smtp) -> None:
    routes = [
        chat_route("web-chat", ["sla.*"], teams=["team-web*"]),
        mail_route(
            "mail",
            ["scan.failed", "finding.black_swan"],
            team_to={"team-db": ["db-oncall@example.org"]},
        ),
    ]
    emit(conn, "sla.breached", "team-web", 3)
    emit(conn, "sla.breached", "team-web-api", 1, start=10)
    emit(conn, "sla.breached", "team-db", 2, start=20)  # no route for team-db's breaches
    emit(conn, "scan.failed", "team-db", 1, error="timeout <after> 900 s")
    emit(conn, "finding.black_swan", "team-web", 1, summary="CVE-2026-0001 on web")

    outcome = deliver(conn, routes)

    assert outcome.sent == 4 and outcome.failures == []
    assert {t: c for t, (c, _) in by_team(chat_texts(chat)).items()} == {
        "team-web": 3,
        "team-web-api": 1,
    }
    mails = {tuple(m["rcpt_tos"]): m["message"] for m in smtp.messages}
    assert set(mails) == {("db-oncall@example.org",), ("secops@example.org",)}
    db_mail = mails[("db-oncall@example.org",)]
    assert db_mail["Subject"] == "[autosec] team team-db: 1 scan.failed"
    assert db_mail["From"] == "autosec@example.org"
    body = db_mail.get_body(("html",)).get_content()
    assert "scan.failed:0: timeout &lt;after&gt; 900 s" in body  # escaped, not markup
    key = db_mail["X-Autosec-Key"]
    assert re.fullmatch("[0-9a-f]{64}", key) and db_mail["Message-ID"] == f"<{key}@example.org>"
    assert (
        "finding.black_swan: 1" in mails[("secops@example.org",)].get_body(("html",)).get_content()
    )
    undelivered = conn.execute(
        "SELECT count(*) FROM events WHERE delivered_at IS NULL AND payload->>'team' = 'team-db' "
        "AND name = 'sla.breached'"
    ).fetchone()[0]
    assert undelivered == 2


def test_event_text_is_data_not_markup_nor_a_template(conn, chat, smtp) -> None:
    hostile = "{{ 7 * 7 }} <!channel> <https://evil.example|login>\nBcc: x@evil.example"
    events.emit(conn, "scan.failed", hostile, {"team": "team-x", "error": "<b>{% raw %}"})
    conn.commit()

    deliver(conn, [chat_route(), mail_route()])

    [posted] = chat_texts(chat)
    assert "{{ 7 * 7 }} &lt;!channel&gt; &lt;https://evil.example|login&gt; Bcc:" in posted
    assert "<!channel>" not in posted and "49" not in posted
    [mail] = smtp.messages
    assert mail["rcpt_tos"] == ["secops@example.org"]
    assert mail["message"]["Bcc"] is None
    body = mail["message"].get_body(("html",)).get_content()
    assert "{{ 7 * 7 }} &lt;!channel&gt;" in body and ": &lt;b&gt;{% raw %}" in body


def test_events_find_their_team_from_what_they_are_about(conn, chat) -> None:
    seed_assets(conn, {"asset-a": "team-assets"})
    f1, f2 = seed_findings(conn, [("asset-a", "team-findings"), ("asset-a", None)])
    spot = conn.execute(
        "INSERT INTO blind_spots (address, port, source, first_seen, last_seen, owner) "
        "VALUES ('10.0.0.9', 22, 'tcp_sweep', %s, %s, 'team-net') RETURNING id",
        (NOW, NOW),
    ).fetchone()[0]
    events.emit(conn, "sla.breached", f"finding:{f1}")
    events.emit(conn, "action.unplannable", f"finding:{f2}", {"error": "no ticket project"})
    events.emit(conn, "verification.settled", "verification:1", {"asset_id": "asset-a"})
    events.emit(conn, "blind_spot.found", "10.0.0.9:22", {"id": spot})
    events.emit(conn, "scan.failed", "scan_run:1", {"error": "exit 1"})
    events.emit(conn, "break_glass.opened", "break_glass:1", {"team": "team-x", "finding_id": f1})
    conn.commit()
    route = chat_route(
        events_=[
            "sla.breached",
            "action.unplannable",
            "verification.settled",
            "blind_spot.found",
            "scan.failed",
            "break_glass.opened",
        ]
    )

    deliver(conn, [route])

    digests = by_team(chat_texts(chat))
    assert {t: c for t, (c, _) in digests.items()} == {
        "team-findings": 1,  # the finding's owner
        "team-assets": 2,  # no finding owner: the asset's; and an event naming the asset
        "team-net": 1,  # the blind spot's owner
        "team-x": 1,  # the event names its team
        "": 1,
    }
    assert "action.unplannable: 1" in digests["team-assets"][1]


# --- windows and rate limits ----------------------------------------------------------------


def test_beyond_the_rate_limit_one_summary_tells_the_rest(conn, chat) -> None:
    route = chat_route(rate_limit=RateLimit(messages=4, per_minutes=60))
    for i in range(9):
        emit(conn, "sla.breached", f"team-{i}", 10 + i, start=i * 100)

    outcome = deliver(conn, [route])

    assert (outcome.sealed, outcome.summarised, outcome.summaries, outcome.sent) == (3, 6, 1, 4)
    texts = chat_texts(chat)
    assert len(texts) == 4
    digests = by_team(texts[:3])
    assert {t: c for t, (c, _) in digests.items()} == {"team-0": 10, "team-1": 11, "team-2": 12}
    summary = texts[3]
    held = sum(10 + i for i in range(3, 9))
    assert summary.startswith(f"autosec: {held} more events in 6 more digest(s): channel ")
    assert "(4 messages per 60 min)" in summary and f"sla.breached: {held}" in summary
    assert "team team-8 (18)" in summary and "team team-3 (13)" in summary
    undelivered = conn.execute("SELECT count(*) FROM events WHERE delivered_at IS NULL")
    assert undelivered.fetchone()[0] == 0

    # The window is full: new events wait, collecting, whatever their team.
    emit(conn, "sla.breached", "team-0", 2, start=5000)
    emit(conn, "sla.breached", "team-9", 1, start=6000)
    full = deliver(conn, [route], NOW + timedelta(minutes=20))
    assert (full.sent, full.waiting) == (0, 2) and len(chat.messages()) == 4
    emit(conn, "sla.breached", "team-0", 1, start=7000)
    deliver(conn, [route], NOW + timedelta(minutes=40))
    assert len(chat.messages()) == 4

    # The next window has room: both digests go, team-0's with all three events.
    later = deliver(conn, [route], NOW + timedelta(minutes=60))
    assert later.sent == 2
    assert {t: c for t, (c, _) in by_team(chat_texts(chat)[4:]).items()} == {
        "team-0": 3,
        "team-9": 1,
    }


def test_a_team_gets_at_most_one_digest_per_window(conn, chat) -> None:
    route = chat_route(digest_minutes=60)
    emit(conn, "scan.failed", "team-a", 2)
    assert deliver(conn, [route], NOW).sent == 1  # 10:05

    emit(conn, "scan.failed", "team-a", 3, start=10)
    emit(conn, "scan.failed", "team-b", 1, start=20)
    assert deliver(conn, [route], NOW + timedelta(minutes=15)).sent == 1  # team-b only
    emit(conn, "scan.failed", "team-a", 1, start=30)
    assert deliver(conn, [route], NOW + timedelta(minutes=45)).sent == 0

    at_eleven = deliver(conn, [route], datetime(2026, 11, 23, 11, 1, tzinfo=UTC))
    assert at_eleven.sent == 1
    told = [{t: c for t, (c, _) in by_team([text]).items()} for text in chat_texts(chat)]
    assert told == [{"team-a": 2}, {"team-b": 1}, {"team-a": 4}]


# --- at least once, idempotent per event -----------------------------------------------------


class Crash(BaseException):
    """The worker dies: nothing after it runs, nothing uncommitted is kept."""


def crash_after_first_send():
    from autosec.airflow.notifiers import deliver_message

    calls = []

    def send(message) -> None:
        deliver_message(message)
        calls.append(message["key"])
        if len(calls) == 1:
            raise Crash

    return send


def test_a_crash_between_send_and_mark_repeats_the_same_chat_message(conn, chat) -> None:
    emit(conn, "scan.failed", "team-x", 3, error="exit 1")
    with pytest.raises(Crash):
        deliver(conn, [chat_route()], send=crash_after_first_send())
    assert len(chat.messages()) == 1
    [sealed] = deliveries.sealed(conn)
    emit(conn, "scan.failed", "team-x", 1, start=10)  # arrives before the next run

    outcome = deliver(conn, [chat_route()], NOW + timedelta(minutes=5))

    first, repeat, new = chat.messages()
    assert repeat == first  # the same text and key: the receiver can tell a repeat
    assert repeat["metadata"]["event_payload"]["autosec_key"] == sealed["idempotency_key"]
    assert by_team([first["text"]])["team-x"][0] == 3
    assert by_team([new["text"]])["team-x"][0] == 1  # the new event went into a new digest
    assert new["metadata"]["event_payload"]["autosec_key"] != sealed["idempotency_key"]
    assert outcome.sent == 2
    assert deliver(conn, [chat_route()], NOW + timedelta(minutes=10)).sent == 0
    assert len(chat.messages()) == 3
    per_event = conn.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM notification_items"
    ).fetchone()
    assert per_event == (4, 4)


def test_a_crash_between_send_and_mark_repeats_the_same_mail(conn, smtp) -> None:
    emit(conn, "scan.failed", "team-x", 2)
    with pytest.raises(Crash):
        deliver(conn, [mail_route()], send=crash_after_first_send())

    deliver(conn, [mail_route()], NOW + timedelta(minutes=5))
    deliver(conn, [mail_route()], NOW + timedelta(minutes=10))

    assert len(smtp.messages) == 2
    first, repeat = (m["message"] for m in smtp.messages)
    assert first["Message-ID"] == repeat["Message-ID"]
    assert first["X-Autosec-Key"] == repeat["X-Autosec-Key"]
    assert first.get_body(("html",)).get_content() == repeat.get_body(("html",)).get_content()
    assert [d["status"] for d in deliveries.deliveries(conn)] == ["sent"]


def test_a_failed_send_stays_sealed_and_goes_out_next_run(conn, monkeypatch) -> None:
    answers = [(500, {"error": "upstream down"})]

    def respond(method, path, query, body):
        return answers[-1]

    with serving(RecordingServer(respond)) as webhook:
        secret_path = "/services/T000/B000/s3cr3t"
        monkeypatch.setenv(
            _connection_env(CHAT_CONN),
            json.dumps({"conn_type": "http", "password": webhook.url + secret_path}),
        )
        emit(conn, "scan.failed", "team-x", 1)
        failed = deliver(conn, [chat_route()])
        assert failed.sent == 0 and len(failed.failures) == 1
        assert "answered 500" in failed.failures[0] and "s3cr3t" not in failed.failures[0]
        [row] = deliveries.deliveries(conn)
        assert (row["status"], row["attempts"]) == ("sealed", 1)

        answers.append((200, "ok"))
        assert deliver(conn, [chat_route()], NOW + timedelta(minutes=5)).sent == 1
        keys = [r["headers"]["Idempotency-Key"] for r in webhook.requests]
        assert len(keys) == 2 and keys[0] == keys[1] == row["idempotency_key"]
        assert webhook.requests[0]["body"] == webhook.requests[1]["body"]

        answers.append((503, "busy"))
        emit(conn, "scan.failed", "team-y", 1, start=5)
        for minutes in (10, 15):
            gave_up = deliver(
                conn, [chat_route()], NOW + timedelta(minutes=minutes), max_attempts=2
            )
        assert gave_up.given_up == 1
        assert [d["status"] for d in deliveries.deliveries(conn)] == ["sent", "failed"]


def test_a_webhook_that_cannot_be_reached_is_named_without_its_secret(conn, monkeypatch) -> None:
    monkeypatch.setenv(
        _connection_env(CHAT_CONN),
        json.dumps(
            {
                "conn_type": "http",
                "password": f"http://127.0.0.1:{_free_port()}/services/T000/B000/s3cr3t",
            }
        ),
    )
    emit(conn, "scan.failed", "team-x", 1)
    [failure] = deliver(conn, [chat_route()]).failures
    assert "ConnectionError" in failure and "<webhook>" in failure
    assert "s3cr3t" not in failure
    assert "s3cr3t" not in deliveries.deliveries(conn)[0]["last_error"]


def test_a_channel_without_a_connection_keeps_its_digests_waiting(conn) -> None:
    route = NotificationRoute(
        name="nowhere", events=["scan.failed"], channel=ChatChannel(conn_id="autosec_undefined")
    )
    emit(conn, "scan.failed", "team-x", 2)
    outcome = deliver(conn, [route])
    assert outcome.unconfigured == ["chat:autosec_undefined"]
    assert (outcome.routed, outcome.sealed, outcome.waiting) == (2, 0, 1)
    assert [d["status"] for d in deliveries.deliveries(conn)] == ["open"]


def test_a_second_delivery_run_does_nothing_while_one_runs(conn, store_url, chat) -> None:
    emit(conn, "scan.failed", "team-x", 1)
    with db.connect(store_url) as other:
        assert deliveries.try_lock(other)
        try:
            assert deliver(conn, [chat_route()]).busy
        finally:
            deliveries.unlock(other)
    assert chat.messages() == []
    assert deliver(conn, [chat_route()]).sent == 1


# --- the SLA sweep --------------------------------------------------------------------------


def seed_assets(conn, owners: dict[str, str]) -> None:
    with conn.cursor().copy(
        "COPY assets (id, name, kind, source, owner, environment, criticality, first_seen, "
        "last_seen) FROM STDIN"
    ) as copy:
        for asset_id, owner in owners.items():
            copy.write_row(
                (asset_id, asset_id, "host", "cmdb", owner, "production", "high", NOW, NOW)
            )
    conn.commit()


def seed_findings(
    conn, rows: list[tuple], due: date | None = None, status: str = "open"
) -> list[int]:
    """Findings by COPY: (asset_id, owner[, due_date[, status]]) each; their ids in order."""
    start = conn.execute("SELECT coalesce(max(id), 0) FROM findings").fetchone()[0]
    with conn.cursor().copy(
        "COPY findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, title, "
        "severity, status, priority, location, owner, due_date, first_seen, last_seen) FROM STDIN"
    ) as copy:
        for i, (asset_id, owner, *rest) in enumerate(rows, start=start + 1):
            due_date = rest[0] if rest else (due or date(2026, 11, 1))
            copy.write_row(
                (
                    f"{i:064x}",
                    2,
                    asset_id,
                    "nmap",
                    f"rule-{i % 7}",
                    f"Weak TLS on port {i % 1000}",
                    "high",
                    rest[1] if len(rest) > 1 else status,
                    "act",
                    '{"host": "10.0.0.1"}',
                    owner,
                    due_date,
                    NOW - timedelta(days=60),
                    NOW,
                )
            )
    conn.commit()
    return [
        r[0] for r in conn.execute("SELECT id FROM findings WHERE id > %s ORDER BY id", (start,))
    ]


def breach_events(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute("SELECT subject FROM events WHERE name = 'sla.breached' ORDER BY id")
    ]


def test_the_sla_sweep_raises_each_breach_once(conn) -> None:
    seed_assets(conn, {"web": "team-web"})
    today = NOW.date()
    late, late_unowned, _fixed, due_today, reopened = seed_findings(
        conn,
        [
            ("web", "team-a", today - timedelta(days=3), "open"),
            ("web", None, today - timedelta(days=1), "open"),
            ("web", "team-a", today - timedelta(days=9), "fixed"),
            ("web", "team-a", today, "open"),  # due today: late from tomorrow
            ("web", "team-a", today - timedelta(days=40), "reopened"),
        ],
    )

    assert stage.sweep_sla_breaches(conn, NOW).as_dict() == {"breached": 3, "ended": 0}
    assert breach_events(conn) == [
        f"finding:{late}",
        f"finding:{late_unowned}",
        f"finding:{reopened}",
    ]
    payloads = {
        r[0]: r[1]
        for r in conn.execute("SELECT subject, payload FROM events WHERE name = 'sla.breached'")
    }
    assert payloads[f"finding:{late}"]["team"] == "team-a"
    assert payloads[f"finding:{late_unowned}"]["team"] == "team-web"  # the asset's owner
    assert payloads[f"finding:{late}"]["days_overdue"] == 3
    assert payloads[f"finding:{late}"]["summary"] == (
        f"high Weak TLS on port {late % 1000} on web, due {today - timedelta(days=3)} "
        "(3 days overdue)"
    )
    # Again, an hour later and the next day: the same breaches are not raised again; the
    # finding due today is late now.
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(hours=1)).breached == 0
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(days=1)).breached == 1
    assert breach_events(conn)[-1] == f"finding:{due_today}"

    # Closed, or given a new due date: the breach is over.
    conn.execute("UPDATE findings SET status = 'fixed' WHERE id = %s", (late,))
    conn.execute(
        "UPDATE findings SET due_date = %s WHERE id = %s",
        (today + timedelta(days=5), late_unowned),
    )
    conn.commit()
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(days=2)).as_dict() == {
        "breached": 0,
        "ended": 2,
    }
    # Reopened (``late``), or fixed and reopened between two sweeps (``reopened``): a new
    # breach each. The new due date passes: a new breach.
    later = NOW + timedelta(days=2, hours=1)
    conn.execute("UPDATE findings SET status = 'reopened' WHERE id = %s", (late,))
    conn.execute(
        "INSERT INTO finding_history (finding_id, from_status, to_status, reason, at) "
        "VALUES (%s, 'fixed', 'reopened', 'seen again', %s), (%s, 'fixed', 'reopened', "
        "'seen again', %s)",
        (late, later, reopened, later),
    )
    conn.commit()
    assert stage.sweep_sla_breaches(conn, later + timedelta(hours=1)).as_dict() == {
        "breached": 2,
        "ended": 1,
    }
    assert breach_events(conn)[-2:] == [f"finding:{late}", f"finding:{reopened}"]
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(days=8)).breached == 1
    assert breach_events(conn)[-1] == f"finding:{late_unowned}"
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(days=9)).breached == 0
    assert deliveries_count(conn) == 0


def deliveries_count(conn) -> int:
    return conn.execute("SELECT count(*) FROM notification_deliveries").fetchone()[0]


def test_an_sla_sweep_over_100000_findings_sends_one_digest_per_team(conn, chat) -> None:
    teams = [f"team-{i:02d}" for i in range(37)]
    seed_assets(conn, {f"host-{team}": team for team in teams})
    rows: list[tuple] = []
    for i in range(100_000):
        team = teams[i % len(teams)]
        # One in ten has no owner of its own: its asset's team is told.
        rows.append((f"host-{team}", None if i % 10 == 0 else team))
    rows += [(f"host-{teams[0]}", teams[0], NOW.date() + timedelta(days=3), "open")] * 1000
    rows += [(f"host-{teams[1]}", teams[1], date(2026, 10, 1), "fixed")] * 500
    seed_findings(conn, rows)
    expected = Counter(teams[i % len(teams)] for i in range(100_000))
    route = chat_route("sla", ["sla.breached"], rate_limit=RateLimit(messages=50, per_minutes=60))

    swept = stage.sweep_sla_breaches(conn, NOW)
    outcome = deliver(conn, [route], NOW + timedelta(minutes=1))

    assert swept.breached == 100_000
    assert (outcome.routed, outcome.items, outcome.sent) == (100_000, 100_000, len(teams))
    digests = by_team(chat_texts(chat))
    assert {team: count for team, (count, _) in digests.items()} == dict(expected)
    for count, text in digests.values():
        assert f"sla.breached: {count}" in text
        assert f"  … and {count - 10} more" in text
        assert len(text.splitlines()) == 13  # header, count, ten subjects, the rest counted
    assert stage.sweep_sla_breaches(conn, NOW + timedelta(hours=1)).breached == 0
    assert deliver(conn, [route], NOW + timedelta(hours=1)).sent == 0
    assert len(chat.messages()) == len(teams)
    assert (
        conn.execute(
            "SELECT count(*) FROM events WHERE name = 'sla.breached' AND delivered_at IS NOT NULL"
        ).fetchone()[0]
        == 100_000
    )


# --- the migration --------------------------------------------------------------------------


def test_events_delivered_before_the_migration_are_not_routed_again(postgres_available) -> None:
    name = f"autosec_notify_mig_{os.getpid()}_{secrets.token_hex(3)}"
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    db.create_database(ADMIN_URL, name)
    tables = (
        "SELECT count(*) FROM pg_tables WHERE tablename IN "
        "('notification_deliveries', 'notification_items', 'sla_breaches')"
    )
    try:
        db.upgrade(url, "0008")
        with db.connect(url) as before:
            events.emit(before, "scan.failed", "scan_run:1", {"error": "told already"})
            events.emit(before, "scan.failed", "scan_run:2", {"error": "not told yet"})
            before.execute(
                "UPDATE events SET delivered_at = %s WHERE subject = 'scan_run:1'", (NOW,)
            )
            before.commit()
        db.upgrade(url, "0009")
        with db.connect(url) as after:
            assert after.execute(tables).fetchone()[0] == 3
            routed = dict(after.execute("SELECT subject, routed_at FROM events").fetchall())
            assert routed == {"scan_run:1": NOW, "scan_run:2": None}
        db.downgrade(url, "0008")
        with db.connect(url) as down:
            assert down.execute(tables).fetchone()[0] == 0
            assert db.current_revision(down) == "0008"
        db.upgrade(url, "0009")
    finally:
        db.drop_database(ADMIN_URL, name)

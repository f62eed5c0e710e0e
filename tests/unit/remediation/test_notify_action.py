"""NotifyAction against a real webhook receiver and a real SMTP server on loopback: what each
received, hostile finding text, at-least-once retries, dry runs, failures, and no rollback."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from autosec.config.policy import LoadedPolicy, Policy
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.policy.engine import Decision, FindingFacts, decide
from autosec.remediation.actions.base import RollbackUnsupported, idempotency_key
from autosec.remediation.actions.notify import (
    NotifyAction,
    NotifyEndpointMissing,
    SmtpEndpoint,
    SmtpMailer,
    WebhookEndpoint,
    notify_endpoint_from_connection,
    webhook_body,
)
from support.http import LoopbackServer, QuietHandler, serving

FP = "c" * 64
POLICY_HASH = "ab" * 32
SECRET_PATH = "/services/T000/B000/s3cretW3bhook"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
HOSTILE_TITLE = 'MySQL\r\nBcc: evil@attacker.example\r\n\r\n<script>alert("x")</script> "}'


# --- a recording chat webhook ---------------------------------------------------------------------


class _Webhook(LoopbackServer):
    """Accepts POSTs on SECRET_PATH (401 elsewhere, like a revoked webhook) and records them."""

    def __init__(self) -> None:
        super().__init__(_WebhookHandler)
        self.received: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.delay = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return super().url + SECRET_PATH


class _WebhookHandler(QuietHandler):
    server: _Webhook

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(
                {"path": self.path, "headers": dict(self.headers.items()), "raw": raw}
            )
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.path != SECRET_PATH:
            self._send(401, b"invalid_token", "text/plain")
        elif self.server.fail_with:
            self._send(self.server.fail_with, b"internal_error " + b"x" * 2000, "text/plain")
        else:
            self._send(200, b"ok", "text/plain")


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    with serving(_Webhook()) as server:
        yield server


# --- a real SMTP server ---------------------------------------------------------------------------


class _Inbox:
    """aiosmtpd handler: keeps every accepted message; refuses the addresses in ``refuse``."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refuse: set[str] = set()
        self.logins: list[tuple[str, str, str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
                "tls": session.ssl is not None,
            }
        )
        return "250 2.0.0 accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _smtp_server(inbox: _Inbox, **kwargs: Any):
    """A real SMTP server (aiosmtpd, a test dependency) on a loopback port."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), ready_timeout=5, **kwargs
    )
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    controller = _smtp_server(inbox)
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


# --- inputs ---------------------------------------------------------------------------------------


def _finding(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "fingerprint": FP,
        "asset_id": "web-frontend",
        "engine": "nmap",
        "rule_id": "open-port/3306",
        "title": "MySQL reachable",
        "severity": "high",
        "owner": "team-web",
        "owner_email": "web-team@example.org",
        "due_date": date(2026, 4, 1),
        "cve_ids": ["CVE-2024-1111"],
        "link": "https://autosec.example/findings/7",
    }
    row.update(overrides)
    return row


def _decision(dry_run: bool = False, fingerprint: str = FP, action: str = "notify") -> Decision:
    policy = Policy.model_validate(
        {
            "version": "t-1",
            "enforcement": {
                "dry_run": dry_run,
                "rules": [
                    {
                        "id": "tell-owner",
                        "action": action,
                        "mode": "out_of_loop",
                        "requires": {"environments": ["staging"]},
                        "approvers": ["secops"],
                    }
                ],
            },
        }
    )
    loaded = LoadedPolicy(policy, POLICY_HASH, Path("p.yaml"))
    asset = Asset(
        "web-frontend",
        "web",
        AssetKind.WEB_APP,
        "file",
        "team-web",
        Environment.STAGING,
        Criticality.MEDIUM,
    )
    return decide(FindingFacts(fingerprint, "open-port/3306", "nmap", "high"), asset, loaded)


def _smtp_endpoint(port: int, **kw: Any) -> SmtpEndpoint:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "autosec@sec.example.org",
        "starttls": False,
        "timeout": 5.0,
    }
    settings.update(kw)
    return SmtpEndpoint(**settings)


# --- plan -----------------------------------------------------------------------------------------


def test_plan_carries_the_facts_the_decision_and_the_key():
    request = NotifyAction().plan(_finding(), _decision())
    key = idempotency_key(FP, "notify", POLICY_HASH)
    assert (request.idempotency_key, request.action, request.asset_id) == (
        key,
        "notify",
        "web-frontend",
    )
    payload = request.payload
    assert payload["autosec_key"] == key
    assert payload["subject"] == "[autosec] [high] MySQL reachable on web-frontend"
    assert payload["finding"]["due_date"] == "2026-04-01"
    assert payload["finding"]["advisories"] == ["CVE-2024-1111"]
    assert payload["decision"]["rule_id"] == "tell-owner"
    assert payload["decision"]["reasons"][0].startswith("rule tell-owner matched")
    assert payload["owner"] == "team-web"
    assert payload["recipients"] == ["web-team@example.org"]
    assert payload["link"] == "https://autosec.example/findings/7"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "finding is missing title"),
        ({"link": "javascript:alert(1)"}, "link 'javascript:alert"),
        ({"link": "https://x.example/a|<!channel>"}, "must be an http"),
        ({"owner_email": "a@b.example\r\nBcc: c@d.example"}, "is not a plain e-mail address"),
        ({"owner_email": "Team <t@x.example>"}, "is not a plain e-mail address"),
        ({"due_date": "soon"}, "due_date 'soon' is not an ISO date"),
    ],
)
def test_plan_refuses_bad_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        NotifyAction().plan(_finding(**overrides), _decision())


def test_plan_refuses_a_decision_for_another_action_or_finding():
    with pytest.raises(ValueError, match="cannot plan a decision for action 'ticket'"):
        NotifyAction().plan(_finding(), _decision(action="ticket"))
    with pytest.raises(ValueError, match="decision is about finding dddd"):
        NotifyAction().plan(_finding(), _decision(fingerprint="d" * 64))


# --- the chat webhook -----------------------------------------------------------------------------


def test_webhook_receives_the_message_with_the_key(webhook):
    action = NotifyAction(WebhookEndpoint(webhook.url, timeout=5.0))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        result = action.apply(request, session)
    assert result.status == "applied"
    assert result.detail == {"channel": "webhook", "http_status": 200, "delivery": "at_least_once"}
    [sent] = webhook.received
    assert sent["path"] == SECRET_PATH
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["Idempotency-Key"] == request.idempotency_key
    body = json.loads(sent["raw"])
    assert body == webhook_body(request)
    assert set(body) == {"text", "blocks", "metadata"}
    assert body["metadata"]["event_payload"]["autosec_key"] == request.idempotency_key
    text = body["text"]
    for part in (
        "MySQL reachable",
        "web-frontend",
        "Severity: high",
        "Due: 2026-04-01",
        "Owner: team-web",
        "CVE-2024-1111",
        "Policy rule *tell-owner*",
        "• rule tell-owner matched",
        "<https://autosec.example/findings/7|Open the finding in autosec>",
    ):
        assert part in text
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "MySQL reachable"},
    }
    assert [b["type"] for b in body["blocks"]] == [
        "header",
        "section",
        "section",
        "section",
        "section",
        "context",
    ]


def test_hostile_title_is_escaped_and_the_json_stays_valid(webhook):
    action = NotifyAction(WebhookEndpoint(webhook.url, timeout=5.0))
    request = action.plan(_finding(title=HOSTILE_TITLE, link=None), _decision())
    with requests.Session() as session:
        assert action.apply(request, session).status == "applied"
    body = json.loads(webhook.received[0]["raw"])
    text = body["text"]
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Bcc: evil@attacker.example" in text.splitlines()[0]  # folded into the title line
    header = body["blocks"][0]["text"]["text"]
    assert "\n" not in header and "\r" not in header
    assert "<" not in text.replace("<https", "")  # no markup but escaped text
    assert "Open the finding" not in text


def test_a_retry_sends_again_with_the_same_key(webhook):
    """At least once: the action cannot know a message went out; the ledger stops re-runs."""
    action = NotifyAction(WebhookEndpoint(webhook.url, timeout=5.0))
    request = action.plan(_finding(), _decision())
    with requests.Session() as session:
        first = action.apply(request, session)
        again = action.apply(request, session)
    assert first.status == again.status == "applied"
    bodies = [json.loads(r["raw"]) for r in webhook.received]
    assert len(bodies) == 2
    assert {b["metadata"]["event_payload"]["autosec_key"] for b in bodies} == {
        request.idempotency_key
    }
    assert {r["headers"]["Idempotency-Key"] for r in webhook.received} == {request.idempotency_key}


def test_dry_run_sends_nothing_and_needs_no_channel(webhook, smtp):
    inbox, port = smtp
    request = NotifyAction().plan(_finding(), _decision(dry_run=True))
    with requests.Session() as session:
        hook = NotifyAction(WebhookEndpoint(webhook.url)).apply(request, session)
        mail = NotifyAction(_smtp_endpoint(port)).apply(request, session)
        offline = NotifyAction().apply(request, session)
    assert hook.status == mail.status == offline.status == "dry_run"
    assert hook.detail["would_send"] == "POST chat webhook"
    assert "MySQL reachable" in hook.detail["text"]
    assert mail.detail["would_send"] == "e-mail"
    assert mail.detail["recipients"] == ["web-team@example.org"]
    assert webhook.received == [] and inbox.messages == []


def test_a_webhook_error_is_a_failed_result_without_the_secret_url(webhook):
    webhook.fail_with = 500
    action = NotifyAction(WebhookEndpoint(webhook.url, timeout=5.0))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert result.detail["http_status"] == 500
    assert result.detail["error"] == "chat webhook answered 500 to POST"
    assert result.detail["body"].startswith("internal_error")
    assert len(result.detail["body"]) <= 501
    assert "s3cretW3bhook" not in json.dumps(result.as_dict())


def test_a_revoked_webhook_401_fails(webhook):
    host, port = webhook.server_address[:2]
    action = NotifyAction(WebhookEndpoint(f"http://{host}:{port}/services/T000/B000/revoked"))
    with requests.Session() as session:
        result = action.apply(action.plan(_finding(), _decision()), session)
    assert result.status == "failed"
    assert (result.detail["http_status"], result.detail["body"]) == (401, "invalid_token")
    assert "revoked" not in json.dumps(result.as_dict())


def test_webhook_timeout_and_unreachable_fail_without_the_secret_url(webhook):
    webhook.delay = 0.5
    action = NotifyAction(WebhookEndpoint(webhook.url, timeout=(2.0, 0.1)))
    request = action.plan(_finding(), _decision())
    started = time.monotonic()
    with requests.Session() as session:
        slow = action.apply(request, session)
        port = _free_port()
        gone = NotifyAction(WebhookEndpoint(f"http://127.0.0.1:{port}{SECRET_PATH}", timeout=1.0))
        refused = gone.apply(request, session)
    assert time.monotonic() - started < 2.5
    assert slow.status == "failed" and "ReadTimeout" in slow.detail["error"]
    assert refused.status == "failed" and refused.detail["http_status"] is None
    assert "ConnectionError" in refused.detail["error"]
    assert "<webhook>" in refused.detail["error"]
    assert "s3cretW3bhook" not in json.dumps([slow.as_dict(), refused.as_dict()])


# --- e-mail ---------------------------------------------------------------------------------------


def test_mail_is_delivered_with_the_key_in_its_headers(smtp):
    inbox, port = smtp
    action = NotifyAction(_smtp_endpoint(port), clock=lambda: NOW)
    request = action.plan(_finding(), _decision())
    result = action.apply(request, None)
    key = request.idempotency_key
    assert result.status == "applied"
    assert result.external_ref == f"<{key}@sec.example.org>"
    assert result.detail["recipients"] == ["web-team@example.org"]
    assert result.detail["refused"] == {}
    [got] = inbox.messages
    assert got["mail_from"] == "autosec@sec.example.org"
    assert got["rcpt_tos"] == ["web-team@example.org"]
    message = got["message"]
    assert message["From"] == "autosec@sec.example.org"
    assert message["To"] == "web-team@example.org"
    assert message["Subject"] == "[autosec] [high] MySQL reachable on web-frontend"
    assert message["Message-ID"] == f"<{key}@sec.example.org>"
    assert message["X-Autosec-Key"] == key
    assert message["X-Autosec-Finding"] == FP
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] == "Sun, 01 Mar 2026 09:30:00 +0000"
    body = message.get_content()
    for part in (
        "Asset: web-frontend",
        "Due: 2026-04-01",
        "Advisories: CVE-2024-1111",
        "rule tell-owner, mode out_of_loop:",
        "- rule tell-owner matched",
        "Link: https://autosec.example/findings/7",
        key,
    ):
        assert part in body


def test_hostile_title_cannot_add_a_mail_header_or_recipient(smtp):
    inbox, port = smtp
    action = NotifyAction(_smtp_endpoint(port), clock=lambda: NOW)
    result = action.apply(action.plan(_finding(title=HOSTILE_TITLE), _decision()), None)
    assert result.status == "applied"
    [got] = inbox.messages
    assert got["rcpt_tos"] == ["web-team@example.org"]
    message = got["message"]
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert message["Subject"].startswith("[autosec] [high] MySQL Bcc: evil@attacker.example")
    assert message.get_content_type() == "text/plain"
    assert '<script>alert("x")</script>' in message.get_content()  # plain text, shown as is


def test_recipients_fall_back_to_the_owner_map_then_the_default(smtp):
    inbox, port = smtp
    endpoint = _smtp_endpoint(
        port,
        recipients={"team-web": ["a@web.example", "b@web.example"]},
        default_to=("secops@example.org",),
    )
    action = NotifyAction(endpoint, clock=lambda: NOW)
    by_owner = action.apply(action.plan(_finding(owner_email=None), _decision()), None)
    other = _finding(owner_email=None, owner="team-db", fingerprint="e" * 64)
    by_default = action.apply(action.plan(other, _decision(fingerprint="e" * 64)), None)
    assert by_owner.detail["recipients"] == ["a@web.example", "b@web.example"]
    assert by_default.detail["recipients"] == ["secops@example.org"]
    assert [m["rcpt_tos"] for m in inbox.messages] == [
        ["a@web.example", "b@web.example"],
        ["secops@example.org"],
    ]
    nobody = NotifyAction(_smtp_endpoint(port))
    result = nobody.apply(nobody.plan(_finding(owner_email=None), _decision()), None)
    assert result.status == "failed"
    assert "no e-mail address for owner 'team-web'" in result.detail["error"]
    assert len(inbox.messages) == 2


def test_a_refused_recipient_is_a_failed_result(smtp):
    inbox, port = smtp
    inbox.refuse.add("web-team@example.org")
    action = NotifyAction(_smtp_endpoint(port))
    result = action.apply(action.plan(_finding(), _decision()), None)
    assert result.status == "failed"
    assert result.detail["error"] == "SMTP send failed: every recipient was refused"
    assert "550" in result.detail["refused"]["web-team@example.org"]
    assert inbox.messages == []


def test_starttls_and_login_against_a_tls_server(tls_files):
    aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")
    cert_file, key_file = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    inbox = _Inbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        login, password = (
            v.decode() if isinstance(v, bytes) else v for v in (auth_data.login, auth_data.password)
        )
        inbox.logins.append((mechanism, login, password))
        ok = (login, password) == ("autosec", "mail-pass")
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)

    controller = _smtp_server(
        inbox,
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    client_context = ssl.create_default_context(cafile=str(cert_file))
    try:
        endpoint = _smtp_endpoint(
            controller.port, starttls=True, login="autosec", password="mail-pass"
        )
        action = NotifyAction(endpoint, mailer=SmtpMailer(endpoint, ssl_context=client_context))
        result = action.apply(action.plan(_finding(), _decision()), None)
        wrong = _smtp_endpoint(controller.port, starttls=True, login="autosec", password="nope")
        denied_action = NotifyAction(wrong, mailer=SmtpMailer(wrong, ssl_context=client_context))
        denied = denied_action.apply(denied_action.plan(_finding(), _decision()), None)
        untrusted = NotifyAction(endpoint)  # the system trust store does not know this cert
        unverified = untrusted.apply(untrusted.plan(_finding(), _decision()), None)
    finally:
        controller.stop()
    assert result.status == "applied"
    assert len(inbox.messages) == 1 and inbox.messages[0]["tls"] is True
    assert denied.status == "failed", denied.detail
    assert denied.detail["smtp_status"] == 535, denied.detail
    assert (
        unverified.status == "failed" and "SSLCertVerificationError" in unverified.detail["error"]
    )
    assert inbox.logins[0] == ("PLAIN", "autosec", "mail-pass")
    assert {(login, password) for _, login, password in inbox.logins[1:]} == {("autosec", "nope")}
    assert "mail-pass" not in json.dumps(denied.as_dict()) + repr(endpoint)


def test_starttls_required_but_not_offered_sends_nothing(smtp):
    inbox, port = smtp
    action = NotifyAction(_smtp_endpoint(port, starttls=True))
    result = action.apply(action.plan(_finding(), _decision()), None)
    assert result.status == "failed"
    assert "SMTPNotSupportedError" in result.detail["error"]
    assert inbox.messages == []


def test_an_unreachable_smtp_server_is_a_failed_result():
    action = NotifyAction(_smtp_endpoint(_free_port()))
    result = action.apply(action.plan(_finding(), _decision()), None)
    assert result.status == "failed"
    assert "ConnectionRefusedError" in result.detail["error"]


def test_a_custom_mailer_gets_the_message_and_the_envelope():
    sent: list[tuple[EmailMessage, str, list[str]]] = []
    endpoint = _smtp_endpoint(25)
    action = NotifyAction(
        endpoint, mailer=lambda m, s, r: sent.append((m, s, list(r))) or {}, clock=lambda: NOW
    )
    result = action.apply(action.plan(_finding(), _decision()), None)
    assert result.status == "applied"
    [(message, sender, recipients)] = sent
    assert (sender, recipients) == ("autosec@sec.example.org", ["web-team@example.org"])
    assert message["X-Autosec-Key"] == idempotency_key(FP, "notify", POLICY_HASH)


# --- contract edges -------------------------------------------------------------------------------


def test_rollback_is_unsupported():
    action = NotifyAction(WebhookEndpoint("https://hooks.example/x"))
    applied = action.apply(action.plan(_finding(), _decision(dry_run=True)), None)
    with pytest.raises(RollbackUnsupported, match="'notify' cannot be rolled back"):
        action.rollback(applied, None)


def test_apply_without_a_channel_is_a_configuration_error():
    request = NotifyAction().plan(_finding(), _decision())
    with pytest.raises(NotifyEndpointMissing, match="no channel configured"):
        NotifyAction().apply(request, requests.Session())


def test_apply_refuses_a_request_whose_key_was_altered(webhook):
    action = NotifyAction(WebhookEndpoint(webhook.url))
    request = action.plan(_finding(), _decision())
    tampered = type(request)(
        **{**request.as_dict(), "payload": {**request.payload, "autosec_key": "other"}}
    )
    with pytest.raises(ValueError, match="autosec_key must be the request's idempotency key"):
        action.apply(tampered, requests.Session())
    assert webhook.received == []


# --- endpoints from connection fields -------------------------------------------------------------


def test_webhook_endpoint_from_connection_fields():
    full = SimpleNamespace(
        conn_type="http", host=None, port=None, password="https://hooks.example/services/T/B/X"
    )
    assert WebhookEndpoint.from_connection(full).url == "https://hooks.example/services/T/B/X"
    split = SimpleNamespace(
        conn_type="slackwebhook",
        host="hooks.example/services",
        port=8443,
        password="T/B/X",
        extra='{"timeout": 3}',
    )
    endpoint = WebhookEndpoint.from_connection(split)
    assert endpoint.url == "https://hooks.example:8443/services/T/B/X"
    assert endpoint.timeout == (5.0, 3.0)
    assert "T/B/X" not in repr(endpoint)
    with pytest.raises(ValueError, match="needs the webhook URL in its password"):
        WebhookEndpoint.from_connection(SimpleNamespace(host="h", password=None))
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        WebhookEndpoint("ftp://hooks.example/secret")


def test_smtp_endpoint_reads_a_connection_like_the_smtp_provider():
    conn = SimpleNamespace(
        conn_type="smtp",
        host="mail.example.org",
        port=None,
        login="autosec",
        password="pw",
        extra_dejson={
            "from_email": "autosec@example.org",
            "disable_ssl": True,
            "timeout": 10,
            "recipients": {"team-web": "web@example.org"},
            "default_to": ["secops@example.org"],
        },
    )
    endpoint = notify_endpoint_from_connection(conn)
    assert isinstance(endpoint, SmtpEndpoint)
    assert (endpoint.host, endpoint.port, endpoint.starttls, endpoint.use_ssl) == (
        "mail.example.org",
        587,
        True,
        False,
    )
    assert (endpoint.sender, endpoint.login, endpoint.timeout) == (
        "autosec@example.org",
        "autosec",
        10.0,
    )
    assert endpoint.recipients == {"team-web": ("web@example.org",)}
    assert endpoint.default_to == ("secops@example.org",)
    assert "pw" not in repr(endpoint)
    implicit = SmtpEndpoint.from_connection(SimpleNamespace(host="mail.example.org", port=None))
    assert (implicit.port, implicit.use_ssl, implicit.starttls) == (465, True, False)
    webhook = SimpleNamespace(conn_type="https", host=None, password="https://hooks.example/T")
    assert isinstance(notify_endpoint_from_connection(webhook), WebhookEndpoint)


def test_smtp_endpoint_refuses_a_password_in_clear_and_bad_addresses():
    with pytest.raises(ValueError, match="would send the password in clear"):
        SmtpEndpoint("mail.example.org", 25, login="u", password="p", starttls=False)
    with pytest.raises(ValueError, match="SMTP sender 'not-an-address'"):
        SmtpEndpoint("mail.example.org", sender="not-an-address")
    with pytest.raises(ValueError, match="recipient for owner 'team-web'"):
        SmtpEndpoint("mail.example.org", recipients={"team-web": ["x@y.example\nBcc: z@q.org"]})

"""Tell a finding's owner: a chat webhook message or an e-mail; nothing to roll back.

Two channels, chosen by the endpoint the action is built with:

- ``WebhookEndpoint``: a Slack-compatible incoming webhook. ``POST {url}`` with
  ``{"text", "blocks", "metadata"}``; the webhook answers 2xx (Slack: 200 "ok").
- ``SmtpEndpoint``: an ``email.message.EmailMessage`` handed to a mailer callable; the default
  one (``SmtpMailer``) speaks SMTP with smtplib through an injectable client factory, so the
  Airflow SMTP provider's hook or a test server can stand in.

Delivery is *at least once*. The idempotency key travels with the message (the webhook's
``metadata.event_payload.autosec_key`` and ``Idempotency-Key`` header; the mail's ``Message-ID``
and ``X-Autosec-Key``) so a receiver can recognise a repeat, but a webhook cannot refuse one and
this action cannot ask whether a message went out. What stops a re-run from sending twice is the
action ledger: one row per idempotency key, and a request already ``applied`` is never applied
again. A crash between the send and the ledger write can still repeat a message.

Finding text is untrusted: it is escaped for chat markup (``&``, ``<``, ``>``), folded to one
line wherever it becomes a mail header or a title, and serialised as JSON by the HTTP client,
so a title with newlines or ``<script>`` neither adds a mail header nor breaks the message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as _default_policy
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from autosec.domain.models import Severity
from autosec.policy.engine import Decision
from autosec.remediation.actions.base import (
    Action,
    ActionRequest,
    ActionResult,
    finding_due_date,
    idempotency_key,
)
from autosec.remediation.actions.http import (
    DEFAULT_TIMEOUT,
    connection_extra,
    connection_origin,
    excerpt,
    read_timeout,
)

DEFAULT_SMTP_TIMEOUT = 30.0
DEFAULT_SENDER = "autosec@localhost.localdomain"
TITLE_MAX = 150  # a Slack header block's limit; also keeps mail subjects readable
REASON_MAX = 500
SECTION_MAX = 3000  # a Slack section block's text limit
EVENT_TYPE = "autosec_remediation"
DELIVERY = "at_least_once"
# Long lines stay unfolded (RFC 5322 allows 998): a folded 64-hex X-Autosec-Key reads back with a
# leading space in some parsers, and a receiver matching the key must see it exactly.
MAIL_POLICY = _default_policy.clone(max_line_length=998)
_UNSAFE_LINK_CHARS = frozenset('<>|"\\`{}')


# --- endpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    """A chat incoming-webhook URL. The URL is the credential: it never appears in a result."""

    url: str = field(repr=False)
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The URL is a secret: name only its scheme.
            raise ValueError(
                f"chat webhook URL must be an http(s) URL with a host "
                f"(got scheme {parts.scheme or 'none'!r})"
            )
        if any(ch.isspace() for ch in self.url):
            raise ValueError("chat webhook URL must not contain whitespace")

    @classmethod
    def from_connection(cls, connection: Any) -> WebhookEndpoint:
        """From an Airflow connection: the password holds the webhook URL (or its secret path).

        ``password = https://hooks.example/services/T/B/X`` is used as it is. Otherwise the URL
        is ``{scheme}://{host}[:{port}]/{password}``, the way the Slack provider splits a
        webhook into a host (``hooks.slack.com/services``) and a token (``T/B/X``); the scheme
        is ``http`` only when the connection type is ``http``. ``extra.timeout`` (seconds)
        overrides the read timeout.
        """
        secret = str(getattr(connection, "password", None) or "").strip()
        timeout = read_timeout(connection_extra(connection))
        if secret.startswith(("http://", "https://")):
            return cls(secret, timeout)
        origin = connection_origin(connection) if secret else None
        if origin is None:
            raise ValueError(
                "chat webhook connection needs the webhook URL in its password, or a host "
                "and the webhook path in its password"
            )
        base, path = origin
        prefix = f"{base}/{path}" if path else base
        return cls(f"{prefix}/{secret.lstrip('/')}", timeout)

    def headers(self, key: str) -> dict[str, str]:
        return {
            "Accept": "application/json, text/plain",
            "User-Agent": "autosec",
            "Idempotency-Key": key,
        }

    def redact(self, text: str) -> str:
        """``text`` without the webhook URL or its path (transport errors quote them)."""
        parts = urlsplit(self.url)
        for part in (self.url, parts.path + (f"?{parts.query}" if parts.query else "")):
            if part and part != "/":
                text = text.replace(part, "<webhook>")
        return text


def check_address(value: Any, what: str) -> str:
    """One plain e-mail address (``user@domain``), or ValueError naming ``what`` and the value."""
    text = value.strip() if isinstance(value, str) else ""
    if (
        not text
        or text.count("@") != 1
        or any(ch.isspace() or ord(ch) < 32 or ch in "<>,;\"'()\\" for ch in text)
    ):
        raise ValueError(f"{what} {value!r} is not a plain e-mail address (user@domain)")
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{what} {value!r} is not a valid e-mail address: {exc}") from None
    if not address.username or "." not in address.domain:
        raise ValueError(f"{what} {value!r} is not a plain e-mail address (user@domain)")
    return address.addr_spec


def _addresses(value: Any, what: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence):
        raise ValueError(f"{what} must be an address or a list of addresses, got {value!r}")
    return tuple(dict.fromkeys(check_address(item, what) for item in items))


@dataclass(frozen=True)
class SmtpEndpoint:
    """An SMTP relay, the sender, and who receives mail for which owner."""

    host: str
    port: int = 587
    sender: str = DEFAULT_SENDER
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    use_ssl: bool = False
    timeout: float = DEFAULT_SMTP_TIMEOUT
    recipients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        host = (self.host or "").strip()
        if not host or any(ch.isspace() or ch in "/@" for ch in host):
            raise ValueError(f"SMTP host {self.host!r} must be a host name or address")
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"SMTP port {self.port!r} is out of range 1-65535")
        if self.login and not (self.starttls or self.use_ssl):
            raise ValueError(
                f"SMTP login {self.login!r} without STARTTLS or SSL would send the password in "
                "clear; enable one of them"
            )
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "sender", check_address(self.sender, "SMTP sender"))
        mapping = {
            str(owner): _addresses(addresses, f"recipient for owner {owner!r}")
            for owner, addresses in dict(self.recipients).items()
        }
        object.__setattr__(self, "recipients", mapping)
        object.__setattr__(self, "default_to", _addresses(self.default_to, "default recipient"))

    @classmethod
    def from_connection(cls, connection: Any) -> SmtpEndpoint:
        """From an Airflow SMTP connection, read the way the SMTP provider's SmtpHook reads it.

        host, port, login, password; extra: ``from_email`` (the sender), ``disable_ssl``
        (default false: implicit TLS, port 465), ``disable_tls`` (default false: STARTTLS when
        SSL is disabled), ``timeout`` (seconds), and autosec's own ``recipients`` (owner ->
        address or list) and ``default_to`` (address or list, for owners with no entry).
        """
        extra = connection_extra(connection)
        use_ssl = not bool(extra.get("disable_ssl", False))
        starttls = not use_ssl and not bool(extra.get("disable_tls", False))
        port = getattr(connection, "port", None) or (465 if use_ssl else 587)
        return cls(
            host=str(getattr(connection, "host", None) or ""),
            port=int(port),
            sender=extra.get("from_email") or DEFAULT_SENDER,
            login=getattr(connection, "login", None) or None,
            password=getattr(connection, "password", None) or None,
            starttls=starttls,
            use_ssl=use_ssl,
            timeout=float(extra.get("timeout", DEFAULT_SMTP_TIMEOUT)),
            recipients=extra.get("recipients") or {},
            default_to=extra.get("default_to") or (),
        )

    def recipients_for(self, owner: str | None, planned: Sequence[str]) -> tuple[str, ...]:
        """Who gets the message: the finding's own addresses, else the owner's, else the default."""
        if planned:
            return tuple(planned)
        if owner and self.recipients.get(owner):
            return self.recipients[owner]
        return self.default_to


NotifyEndpoint = WebhookEndpoint | SmtpEndpoint


def notify_endpoint_from_connection(connection: Any) -> NotifyEndpoint:
    """An SMTP endpoint for a connection of type ``smtp`` (or ``email``), else a webhook."""
    conn_type = str(getattr(connection, "conn_type", None) or "").lower()
    if conn_type in ("smtp", "email"):
        return SmtpEndpoint.from_connection(connection)
    return WebhookEndpoint.from_connection(connection)


Mailer = Callable[[EmailMessage, str, Sequence[str]], Mapping[str, Any]]
"""(message, envelope sender, envelope recipients) -> the refused recipients (empty: all taken)."""


class SmtpMailer:
    """Send one message over SMTP. ``factory(host, port, timeout=...)`` makes the client."""

    def __init__(
        self,
        endpoint: SmtpEndpoint,
        factory: Callable[..., Any] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.ssl_context = ssl_context

    def __call__(
        self, message: EmailMessage, sender: str, recipients: Sequence[str]
    ) -> Mapping[str, Any]:
        ep = self.endpoint
        context = self.ssl_context or ssl.create_default_context()
        if ep.use_ssl:
            client = (self.factory or smtplib.SMTP_SSL)(
                ep.host, ep.port, timeout=ep.timeout, context=context
            )
        else:
            client = (self.factory or smtplib.SMTP)(ep.host, ep.port, timeout=ep.timeout)
        with client as smtp:
            if ep.starttls and not ep.use_ssl:
                # Raises SMTPNotSupportedError when the server does not offer it: never
                # fall back to sending in clear.
                smtp.starttls(context=context)
                smtp.ehlo()
            if ep.login:
                smtp.login(ep.login, ep.password or "")
            # Explicit envelope recipients: nothing in the headers can add one.
            return smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))


class NotifyEndpointMissing(ValueError):
    """A message must be sent but no channel was configured."""


# --- rendering (pure) -----------------------------------------------------------------------------


def _one_line(value: Any, limit: int) -> str:
    """Fold every run of whitespace (newlines included) to one space and cap the length."""
    text = " ".join(str(value or "").split())
    text = "".join(ch for ch in text if ord(ch) >= 32 and ch != "\x7f")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(value: Any) -> str:
    """Escape the three characters chat markup gives meaning (links, mentions, entities)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _link(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.username
        or parts.password
        or any(ch.isspace() or ord(ch) < 32 or ch in _UNSAFE_LINK_CHARS for ch in text)
    ):
        raise ValueError(
            f"notify action: link {value!r} must be an http(s) URL without credentials, "
            'spaces or <>|" characters'
        )
    return text


def _facts(request: ActionRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    payload = request.payload
    return dict(payload.get("finding") or {}), dict(payload.get("decision") or {})


def webhook_body(request: ActionRequest) -> dict[str, Any]:
    """The Slack-compatible JSON for ``request``: fallback text, blocks and metadata."""
    finding, decision = _facts(request)
    payload = request.payload
    title = _one_line(finding.get("title"), TITLE_MAX)
    asset = _mrkdwn(_one_line(finding.get("asset_id"), 200))
    severity = finding.get("severity", "?")
    due = finding.get("due_date") or "not set"
    owner = _mrkdwn(_one_line(payload.get("owner"), 200)) or "unassigned"
    advisories = ", ".join(_mrkdwn(_one_line(a, 40)) for a in finding.get("advisories") or [])
    rule = _mrkdwn(_one_line(decision.get("rule_id") or "(none)", 200))
    policy_line = (
        f"Policy rule *{rule}* (mode {_mrkdwn(decision.get('mode', '?'))}, "
        f"policy {_mrkdwn(_one_line(decision.get('policy_version') or '?', 100))})"
    )
    reasons = [f"• {_mrkdwn(_one_line(r, REASON_MAX))}" for r in decision.get("reasons") or []]
    link = payload.get("link")
    link_line = f"<{link}|Open the finding in autosec>" if link else None

    lines = [
        f"*[{severity}] {_mrkdwn(title)}* on {asset}",
        f"Severity: {severity} · Due: {due} · Owner: {owner}",
    ]
    if advisories:
        lines.append(f"Advisories: {advisories}")
    lines += [policy_line, *reasons]
    if link_line:
        lines.append(link_line)
    fields = [
        {"type": "mrkdwn", "text": f"*Asset*\n{asset}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{severity}"},
        {"type": "mrkdwn", "text": f"*Due*\n{due}"},
        {"type": "mrkdwn", "text": f"*Owner*\n{owner}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title or "autosec finding"}},
        {"type": "section", "fields": fields},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _cap("\n".join([policy_line, *reasons]), SECTION_MAX),
            },
        },
    ]
    if advisories:
        blocks.insert(
            2, {"type": "section", "text": {"type": "mrkdwn", "text": f"*Advisories* {advisories}"}}
        )
    if link_line:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link_line}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"finding `{request.finding_fingerprint}` · "
                    f"key `{request.idempotency_key[:12]}`",
                }
            ],
        }
    )
    return {
        "text": "\n".join(lines),
        "blocks": blocks,
        "metadata": {
            "event_type": EVENT_TYPE,
            "event_payload": {
                "autosec_key": request.idempotency_key,
                "action": request.action,
                "finding_fingerprint": request.finding_fingerprint,
                "asset_id": request.asset_id,
            },
        },
    }


def mail_text(request: ActionRequest) -> str:
    """The plain-text mail body (no markup, so nothing in it is interpreted)."""
    finding, decision = _facts(request)
    payload = request.payload
    lines = [
        _one_line(finding.get("title"), 500),
        "",
        f"Asset: {_one_line(finding.get('asset_id'), 200)}",
        f"Severity: {finding.get('severity', '?')}",
        f"Due: {finding.get('due_date') or 'not set'}",
        f"Owner: {_one_line(payload.get('owner'), 200) or 'unassigned'}",
    ]
    if finding.get("advisories"):
        lines.append("Advisories: " + ", ".join(_one_line(a, 40) for a in finding["advisories"]))
    lines += [
        f"Finding fingerprint: {request.finding_fingerprint}",
        "",
        f"Policy {_one_line(decision.get('policy_version') or '?', 100)} "
        f"(sha256 {decision.get('policy_hash', '?')}), "
        f"rule {_one_line(decision.get('rule_id') or '(none)', 200)}, "
        f"mode {decision.get('mode', '?')}:",
        *(f"- {_one_line(r, REASON_MAX)}" for r in decision.get("reasons") or []),
    ]
    if payload.get("link"):
        lines += ["", f"Link: {payload['link']}"]
    lines += [
        "",
        f"Sent by autosec; idempotency key {request.idempotency_key}. A message with the same "
        "key is a repeat of this one.",
    ]
    return "\n".join(lines) + "\n"


def build_email(
    request: ActionRequest, sender: str, recipients: Sequence[str], now: datetime
) -> EmailMessage:
    """The e-mail for ``request``: every header value is one line, so none can add a header."""
    domain = sender.rpartition("@")[2]
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = _one_line(request.payload.get("subject"), 200)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = f"<{request.idempotency_key}@{domain}>"
    message["X-Autosec-Key"] = request.idempotency_key
    message["X-Autosec-Finding"] = request.finding_fingerprint
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(mail_text(request))
    return message


# --- the action -----------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class NotifyAction(Action):
    """Sends one message per finding to its owner. At least once: the ledger prevents repeats."""

    name = "notify"

    def __init__(
        self,
        endpoint: NotifyEndpoint | None = None,
        *,
        mailer: Mailer | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.endpoint = endpoint
        self.mailer = mailer
        self.clock = clock

    # --- plan (pure) --------------------------------------------------------------------------

    def plan(self, finding: Mapping[str, Any], decision: Decision) -> ActionRequest:
        fingerprint = self._checked_fingerprint(finding, decision)
        severity = Severity.parse(finding["severity"])
        key = idempotency_key(fingerprint, self.name, decision.policy_hash)
        title = _one_line(finding["title"], 500)
        asset_id = str(finding["asset_id"])
        owner = str(finding.get("owner") or "").strip() or None
        advisories = [
            str(a)
            for a in dict.fromkeys(
                [*(finding.get("cve_ids") or ()), *(finding.get("ghsa_ids") or ())]
            )
        ]
        payload = {
            "subject": _one_line(
                f"[autosec] [{severity.value}] {title} on {_one_line(asset_id, 200)}", 200
            ),
            "finding": {
                "title": title,
                "asset_id": asset_id,
                "severity": severity.value,
                "due_date": finding_due_date(finding.get("due_date")),
                "advisories": advisories,
                "engine": finding.get("engine"),
                "rule_id": finding.get("rule_id"),
            },
            "decision": {
                "rule_id": decision.rule_id,
                "mode": decision.mode,
                "reasons": list(decision.reasons),
                "policy_hash": decision.policy_hash,
                "policy_version": decision.policy_version,
            },
            "owner": owner,
            "recipients": list(_addresses(finding.get("owner_email"), "finding owner_email")),
            "link": _link(finding.get("link")),
            "autosec_key": key,
        }
        return self._request(key, fingerprint, finding, payload, decision)

    # --- apply --------------------------------------------------------------------------------

    def apply(self, request: ActionRequest, session: Any) -> ActionResult:
        """Send the message; ``session`` is the HTTP session (unused for e-mail)."""
        self._check_apply_inputs(request, "autosec_key")
        if request.dry_run:
            return self._dry_run(request)
        endpoint = self.endpoint
        if endpoint is None:
            raise NotifyEndpointMissing(
                "notify action: no channel configured (a chat webhook or an SMTP relay)"
            )
        if isinstance(endpoint, SmtpEndpoint):
            return self._send_mail(request, endpoint)
        return self._post_webhook(request, endpoint, session)

    def _dry_run(self, request: ActionRequest) -> ActionResult:
        endpoint = self.endpoint
        detail: dict[str, Any] = {"subject": request.payload.get("subject")}
        if isinstance(endpoint, SmtpEndpoint):
            detail["would_send"] = "e-mail"
            detail["recipients"] = list(
                endpoint.recipients_for(
                    request.payload.get("owner"), request.payload.get("recipients") or []
                )
            )
            detail["text"] = mail_text(request)
        else:
            detail["would_send"] = "POST chat webhook" if endpoint else "a message (no channel)"
            detail["text"] = webhook_body(request)["text"]
        return ActionResult(request.idempotency_key, "dry_run", detail=detail)

    def _post_webhook(
        self, request: ActionRequest, endpoint: WebhookEndpoint, session: Any
    ) -> ActionResult:
        key = request.idempotency_key
        try:
            response = session.post(
                endpoint.url,
                json=webhook_body(request),
                headers=endpoint.headers(key),
                timeout=endpoint.timeout,
            )
        except (requests.RequestException, OSError) as exc:
            error = endpoint.redact(f"{type(exc).__name__}: {exc}")
            return ActionResult(
                key,
                "failed",
                detail={
                    "channel": "webhook",
                    "error": f"POST chat webhook did not complete: {error}",
                    "http_status": None,
                },
            )
        if not 200 <= response.status_code < 300:
            try:
                body = endpoint.redact(response.text or "")
            except Exception:  # noqa: BLE001 - an unreadable body must not hide the status
                body = ""
            return ActionResult(
                key,
                "failed",
                detail={
                    "channel": "webhook",
                    "error": f"chat webhook answered {response.status_code} to POST",
                    "http_status": response.status_code,
                    "body": excerpt(body),
                },
            )
        return ActionResult(
            key,
            "applied",
            detail={
                "channel": "webhook",
                "http_status": response.status_code,
                "delivery": DELIVERY,
            },
        )

    def _send_mail(self, request: ActionRequest, endpoint: SmtpEndpoint) -> ActionResult:
        key = request.idempotency_key
        owner = request.payload.get("owner")
        recipients = endpoint.recipients_for(owner, request.payload.get("recipients") or [])
        if not recipients:
            return ActionResult(
                key,
                "failed",
                detail={
                    "channel": "email",
                    "error": f"no e-mail address for owner {owner!r}: set owner_email on the "
                    "finding, or recipients / default_to in the SMTP connection's extra",
                    "smtp_status": None,
                },
            )
        message = build_email(request, endpoint.sender, recipients, self.clock())
        mailer = self.mailer or SmtpMailer(endpoint)
        try:
            refused = dict(mailer(message, endpoint.sender, recipients) or {})
        except smtplib.SMTPRecipientsRefused as exc:
            return _mail_failure(key, "every recipient was refused", None, exc.recipients)
        except smtplib.SMTPResponseException as exc:
            return _mail_failure(
                key, f"{type(exc).__name__}", exc.smtp_code, excerpt(exc.smtp_error)
            )
        except (smtplib.SMTPException, OSError) as exc:
            return _mail_failure(key, f"{type(exc).__name__}: {exc}", None, None)
        accepted = [r for r in recipients if r not in refused]
        return ActionResult(
            key,
            "applied",
            external_ref=message["Message-ID"],
            detail={
                "channel": "email",
                "message_id": message["Message-ID"],
                "recipients": accepted,
                "refused": {r: excerpt(v) for r, v in refused.items()},
                "delivery": DELIVERY,
            },
        )


def _mail_failure(key: str, what: str, code: int | None, reply: Any) -> ActionResult:
    detail: dict[str, Any] = {
        "channel": "email",
        "error": f"SMTP send failed: {what}" + (f" ({code})" if code else ""),
        "smtp_status": code,
    }
    if isinstance(reply, Mapping):
        detail["refused"] = {str(r): excerpt(v) for r, v in reply.items()}
    elif reply:
        detail["smtp_reply"] = reply
    return ActionResult(key, "failed", detail=detail)

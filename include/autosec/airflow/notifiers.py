"""Notifiers (Airflow BaseNotifier): chat webhook and e-mail messages for people watching the loop.

- ``ChatWebhookNotifier``: a templated text to a chat webhook (the stage failure callback).
- ``ChatDigestNotifier`` / ``EmailDigestNotifier``: a sealed digest or rate-limit summary (see
  ``autosec.stages.notifications``) to a chat webhook, or as e-mail through the SMTP provider's
  connection. They carry the message's idempotency key (the chat ``Idempotency-Key`` header and
  metadata; the mail's ``Message-ID`` and ``X-Autosec-Key``) and raise when the channel did not
  take the message. Their text is data (event subjects come from inventories and scanners), so
  nothing in it is rendered as a template.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseNotifier

NOTIFY_CONN_ID = "autosec_notify"
APPROVALS_PAGE_ROUTE = "/plugin/autosec-approvals"


class ChannelDeliveryError(RuntimeError):
    """The channel did not take the message (its text names why, never a webhook secret)."""


class ChatWebhookNotifier(BaseNotifier):
    """Post ``text`` to the chat webhook of ``conn_id`` (a Slack-compatible incoming webhook).

    With no such connection defined it logs and does nothing: notifications are optional and
    must never fail the task they report on.
    """

    template_fields = ("text",)

    def __init__(self, *, text: str, conn_id: str = NOTIFY_CONN_ID, timeout: float = 10.0):
        super().__init__()
        self.text = text
        self.conn_id = conn_id
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        send_chat_message(self.text, self.conn_id, self.timeout, log=self.log)


def send_chat_message(text: str, conn_id: str = NOTIFY_CONN_ID, timeout: float = 10.0, log=None):
    """Post ``text``; False (logged) when no such connection is defined."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        post_chat(conn_id, {"text": text}, timeout=timeout)
    except AirflowNotFoundException:
        if log is not None:
            log.info("no %s connection: message not sent: %s", conn_id, text.splitlines()[0])
        return False
    return True


def post_chat(
    conn_id: str, body: Mapping[str, Any], key: str | None = None, timeout: float = 10.0
) -> int:
    """POST ``body`` to the webhook of ``conn_id``; the HTTP status, or ChannelDeliveryError.

    Raises AirflowNotFoundException when the connection is not defined.
    """
    import requests
    from airflow.sdk import BaseHook

    from autosec.remediation.actions.notify import WebhookEndpoint

    endpoint = WebhookEndpoint.from_connection(BaseHook.get_connection(conn_id))
    headers = endpoint.headers(key) if key else {"User-Agent": "autosec"}
    try:
        response = requests.post(endpoint.url, json=dict(body), headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ChannelDeliveryError(
            endpoint.redact(f"chat webhook {conn_id}: {type(exc).__name__}: {exc}")
        ) from None
    if not 200 <= response.status_code < 300:
        raise ChannelDeliveryError(
            f"chat webhook {conn_id} answered {response.status_code}: "
            + endpoint.redact(response.text[:200])
        )
    return response.status_code


class ChatDigestNotifier(BaseNotifier):
    """A sealed digest (or rate-limit summary) to its chat webhook, with its idempotency key."""

    template_fields = ()  # the text is data, never a template

    def __init__(self, *, message: Mapping[str, Any], timeout: float = 10.0):
        super().__init__()
        self.message = dict(message)
        self.conn_id = str(self.message["channel"]["conn_id"])
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        from autosec.notifications.digest import chat_body

        key = self.message["key"]
        body = chat_body(self.message["text"], key, self.message.get("about") or {})
        post_chat(self.conn_id, body, key=key, timeout=self.timeout)


class EmailDigestNotifier(SmtpNotifier):
    """A sealed digest (or rate-limit summary) as e-mail through the SMTP provider's hook.

    The sender is the channel's ``from_email``, else the connection's. ``Message-ID`` is built
    from the idempotency key, so a repeat after a crash is the same message to the receiver.
    """

    template_fields = ()  # the subject and text are data, never templates

    def __init__(self, *, message: Mapping[str, Any]):
        channel = message["channel"]
        if not message.get("recipients"):
            raise ValueError(f"e-mail digest {message.get('key')!r} names no recipient")
        self.message = dict(message)
        super().__init__(
            to=list(message["recipients"]),
            from_email=channel.get("from_email") or None,
            subject=str(message["subject"]),
            html_content=digest_html(str(message["text"])),
            smtp_conn_id=str(channel["conn_id"]),
        )

    def _build_email_content(self, smtp, context) -> None:
        super()._build_email_content(smtp, context)  # the connection's sender when none is set
        key = self.message["key"]
        domain = str(self.from_email).rpartition("@")[2] or "autosec"
        self.custom_headers = {
            "Message-ID": f"<{key}@{domain}>",
            "X-Autosec-Key": key,
            "Auto-Submitted": "auto-generated",  # RFC 3834: no auto-replies to this
        }


def digest_html(text: str) -> str:
    """The digest as HTML (the SMTP provider sends HTML): escaped, so nothing in it is markup."""
    return f'<pre style="font-family: monospace">{html.escape(text)}</pre>'


def deliver_message(message: Mapping[str, Any]) -> None:
    """Send one sealed message through the notifier of its channel; raise when not taken."""
    kind = message["channel"]["kind"]
    if kind == "chat":
        notifier: BaseNotifier = ChatDigestNotifier(message=message)
    elif kind == "email":
        notifier = EmailDigestNotifier(message=message)
    else:
        raise ValueError(f"unknown notification channel kind {kind!r}")
    # No task context is needed and nothing is rendered (the notifiers have no template fields).
    notifier.notify({})


def channel_configured(channel: Any) -> bool:
    """Whether the Airflow connection a channel sends through is defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(channel.conn_id)
    except AirflowNotFoundException:
        return False
    return True


def approvals_page_url() -> str:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
    return f"{base}{APPROVALS_PAGE_ROUTE}"


def stage_failed() -> ChatWebhookNotifier:
    """The failure callback every stage task carries."""
    return ChatWebhookNotifier(
        text="autosec: {{ dag.dag_id }}.{{ task_instance.task_id }} failed "
        "(run {{ run_id }}, try {{ task_instance.try_number }}): {{ exception }}"
    )

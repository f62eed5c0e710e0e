"""Notifiers (Airflow BaseNotifier): chat webhook messages for people watching the loop."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

NOTIFY_CONN_ID = "autosec_notify"
APPROVALS_PAGE_ROUTE = "/plugin/autosec-approvals"


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
    import requests
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from autosec.remediation.actions.notify import WebhookEndpoint

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        if log is not None:
            log.info("no %s connection: message not sent: %s", conn_id, text.splitlines()[0])
        return False
    endpoint = WebhookEndpoint.from_connection(connection)
    response = requests.post(endpoint.url, json={"text": text}, timeout=timeout)
    response.raise_for_status()
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

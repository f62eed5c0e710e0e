"""ApprovalSensor: the human-in-the-loop gate before an action that the policy says needs it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException

from autosec.airflow.triggers import ApprovalTrigger


class ApprovalSensor(BaseSensorOperator):
    """Wait until every approval request in ``approval_ids`` is approved, rejected or expired.

    Deferrable by default: a waiting gate sits in the triggerer, not in a worker slot. On
    completion the expired requests are recorded as expired (fail safe) and escalated; the
    task returns the status of every request.
    """

    template_fields = ("approval_ids",)
    ui_color = "#f4d35e"

    def __init__(
        self,
        *,
        approval_ids: Any,
        conn_id: str = "autosec_db",
        deferrable: bool = True,
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", 7 * 24 * 3600)
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.approval_ids = approval_ids
        self.conn_id = conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval

    def _ids(self) -> list[int]:
        return sorted({int(i) for i in (self.approval_ids or [])})

    def poke(self, context: Any) -> bool:
        from autosec.airflow.hooks import store_connection
        from autosec.store import approvals

        with store_connection(self.conn_id) as conn:
            return approvals.all_settled(conn, self._ids())

    def execute(self, context: Any) -> dict[str, str]:
        ids = self._ids()
        if not ids:
            self.log.info("no approval requested in this run")
            return {}
        if self.poke(context):
            return self._finish()
        if not self.deferrable:
            super().execute(context)
            return self._finish()
        self.log.info("waiting for approvals %s (deferred: no worker slot is held)", ids)
        self.defer(
            trigger=ApprovalTrigger(ids, self.conn_id, self.poll_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return {}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        if not event or event.get("status") != "settled":
            raise AirflowException(f"approval gate failed: {(event or {}).get('error', event)}")
        return self._finish()

    def _finish(self) -> dict[str, str]:
        from autosec.airflow.hooks import store_connection
        from autosec.store import approvals

        with store_connection(self.conn_id) as conn:
            expired = approvals.expire_due(conn, self._ids())
            statuses = approvals.statuses(conn, self._ids())
        for approval_id in expired:
            self.log.warning("approval %s expired: rejected (fail safe) and escalated", approval_id)
        self.log.info("approval gate settled: %s", statuses)
        return {str(k): v for k, v in statuses.items()}

"""The approval gate's trigger: polls the approvals table without holding a worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent


class ApprovalTrigger(BaseTrigger):
    """Fires once every approval in ``approval_ids`` is decided or has expired."""

    def __init__(
        self,
        approval_ids: list[int],
        conn_id: str = "autosec_db",
        poll_interval: float = 5.0,
        max_connect_failures: int = 12,
    ) -> None:
        super().__init__()
        self.approval_ids = [int(i) for i in approval_ids]
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.max_connect_failures = max_connect_failures

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "autosec.airflow.triggers.ApprovalTrigger",
            {
                "approval_ids": self.approval_ids,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "max_connect_failures": self.max_connect_failures,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        from autosec.airflow.hooks import async_store_dsn
        from autosec.store.approvals import poll_states

        dsn = await async_store_dsn(self.conn_id)
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    failures = 0
                    while True:
                        rows = await poll_states(conn, self.approval_ids)
                        event = self._event_if_settled(rows)
                        if event is not None:
                            yield event
                            return
                        await asyncio.sleep(self.poll_interval)
            except psycopg.OperationalError as exc:
                failures += 1
                self.log.warning(
                    "approvals store unreachable (%s/%s): %s",
                    failures,
                    self.max_connect_failures,
                    exc,
                )
                if failures >= self.max_connect_failures:
                    yield TriggerEvent({"status": "error", "error": str(exc)})
                    return
                await asyncio.sleep(self.poll_interval)

    def _event_if_settled(self, rows: list[tuple]) -> TriggerEvent | None:
        found = {row[0] for row in rows}
        missing = sorted(set(self.approval_ids) - found)
        if missing:
            return TriggerEvent({"status": "error", "error": f"unknown approval ids {missing}"})
        if any(status == "pending" and not expired for _, status, expired in rows):
            return None
        return TriggerEvent(
            {
                "status": "settled",
                "approvals": {str(i): ("expired" if exp else status) for i, status, exp in rows},
            }
        )


class DropFolderTrigger(BaseEventTrigger):
    """Watches the report drop folder: each settled new report starts the imports DAG.

    Files are claimed (renamed from ``incoming/`` to ``claimed/``) before the event fires, so
    one pushed report starts one import even when the trigger restarts or runs twice.
    """

    def __init__(
        self, directory: str, poll_interval: float = 10.0, min_age_seconds: float = 2.0
    ) -> None:
        super().__init__()
        self.directory = directory
        self.poll_interval = poll_interval
        self.min_age_seconds = min_age_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "autosec.airflow.triggers.DropFolderTrigger",
            {
                "directory": self.directory,
                "poll_interval": self.poll_interval,
                "min_age_seconds": self.min_age_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import time
        from pathlib import Path

        from autosec.stages.imports import claim_dropped

        root = Path(self.directory)
        while True:
            claimed = await asyncio.to_thread(
                claim_dropped, root, self.min_age_seconds, time.time()
            )
            if claimed:
                self.log.info("claimed %d dropped report(s) in %s", len(claimed), root)
                yield TriggerEvent({"directory": str(root), "claimed": [p.name for p in claimed]})
            await asyncio.sleep(self.poll_interval)

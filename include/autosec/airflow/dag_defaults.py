"""Defaults every autosec DAG shares: owner, retries, start date, the failure message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autosec.airflow.notifiers import stage_failed

START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

DEFAULT_ARGS = {
    "owner": "secops",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "on_failure_callback": [stage_failed()],
}

"""The drills DAG's tasks: list the playbooks, run each in its sandbox, report the outcome.

Each task calls ``autosec.stages.drills``; none holds logic. The drills never read the remediation
connections: their only HTTP goes to loopback stand-ins they start themselves.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from autosec.airflow import runtime
from autosec.airflow.hooks import STORE_CONN_ID


def store_url(conn_id: str = STORE_CONN_ID) -> str:
    """The store as a URL (the sandbox is migrated with the store's own Alembic scripts)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_uri()


@task
def list_drills() -> list[str]:
    from autosec.drills.playbooks import playbook_names

    return playbook_names()


@task(map_index_template="{{ drill_name }}")
def run_drill(drill_name: str) -> dict[str, Any]:
    """Run one playbook; a failed drill is a result (reported below), not a failed task."""
    from autosec.stages.drills import record_result
    from autosec.stages.drills import run_drill as run

    ref = runtime.run_ref(get_current_context())
    result = run(store_url(), drill_name, runtime.policy(), runtime.now(), run_ref=ref)
    with runtime.store() as conn:
        record_result(conn, result, ref)
    print(result.line())
    return result.as_dict()


@task(trigger_rule="all_done")
def report_drills(names: list[str], results: list[dict[str, Any]]) -> str:
    """Fail the run, naming each drill that failed or did not report; tidy stale sandboxes."""
    from autosec.stages.drills import DrillsFailed, check_results, drop_stale_sandboxes

    for schema in drop_stale_sandboxes(store_url(), runtime.now()):
        print(f"dropped a stale drill sandbox: {schema}")
    try:
        # One slice reads every mapped result at once (a drill whose task failed has none).
        summary = check_results(names, list(results[:]))
    except DrillsFailed as exc:
        # A failed drill is a finding about the automation, not a transient error: no retry.
        raise AirflowFailException(str(exc)) from exc
    print(summary)
    return summary

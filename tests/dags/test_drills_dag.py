"""The drills DAG imports cleanly, runs weekly, and wires one mapped drill per playbook."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests_support import DAGS_FOLDER


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / "drills.py"))
    assert bag.import_errors == {}
    return bag.dags["drills"]


def test_runs_weekly(dag) -> None:
    from croniter import croniter

    expression = dag.timetable.expression
    runs = croniter(expression, datetime(2026, 3, 1, tzinfo=UTC))
    times = [runs.get_next(datetime) for _ in range(5)]
    assert {b - a for a, b in itertools.pairwise(times)} == {timedelta(days=7)}
    assert not dag.catchup and dag.max_active_runs == 1


def test_one_mapped_drill_per_playbook_then_a_report_that_always_runs(dag) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert "autosec" in dag.tags
    assert {t.task_id for t in dag.tasks} == {"list_drills", "run_drill", "report_drills"}
    run = dag.get_task("run_drill")
    assert isinstance(run, MappedOperator)
    assert run.upstream_task_ids == {"list_drills"}
    report = dag.get_task("report_drills")
    assert report.upstream_task_ids == {"list_drills", "run_drill"}
    assert report.trigger_rule == "all_done"
    for task in dag.tasks:
        assert task.owner == "secops", task.task_id
        assert task.retries >= 1, task.task_id

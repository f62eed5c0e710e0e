"""The remediate DAG sweeps for SLA breaches and tells what happened, whatever failed before."""

from __future__ import annotations

import pytest

from tests_support import DAGS_FOLDER


@pytest.fixture(scope="module")
def remediate():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / "remediate.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["remediate"]


def test_notifications_follow_the_sla_sweep_and_the_remediation(remediate) -> None:
    deliver = remediate.get_task("deliver_notifications")
    assert deliver.upstream_task_ids == {"publish_remediation", "sweep_sla_breaches"}
    assert deliver.trigger_rule == "all_done"  # failures are told too
    assert remediate.get_task("sweep_sla_breaches").upstream_task_ids == set()

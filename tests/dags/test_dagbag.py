"""Every stage DAG imports cleanly, quickly, and carries owner, tags and retries."""

from __future__ import annotations

import time

import pytest

from tests_support import DAGS_FOLDER

STAGES = {
    "inventory_sync",
    "discovery",
    "scan",
    "triage",
    "remediate",
    "report",
    "drills",
    "imports",
    "compliance_packs",
    "intel_feeds",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    started = time.monotonic()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    bag.load_seconds = time.monotonic() - started
    return bag


def test_no_import_errors_and_one_dag_per_stage(dagbag) -> None:
    from autosec.config.estate import load_estate
    from autosec.config.settings import get_settings

    # inventory_sync.py also builds one DAG per inventory source of the estate file.
    sources = {f"inventory_sync__{s.name}" for s in load_estate(get_settings().estate).inventory}
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == STAGES | sources
    assert dagbag.size() == len(list(DAGS_FOLDER.glob("*.py"))) + len(sources)


@pytest.mark.parametrize("dag_id", sorted(STAGES))
def test_every_task_has_owner_retries_and_the_dag_has_tags(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert "autosec" in dag.tags
    for task in dag.tasks:
        assert task.owner == "secops", task.task_id
        assert task.retries >= 1, task.task_id


def test_stages_are_chained_by_assets(dagbag) -> None:
    def uris(condition) -> set[str]:
        if hasattr(condition, "objects"):
            return set().union(*(uris(o) for o in condition.objects))
        return {condition.uri}

    def consumed(dag_id: str) -> set[str]:
        return uris(dagbag.dags[dag_id].timetable.asset_condition)

    def produced(dag_id: str) -> set[str]:
        return {o.uri for t in dagbag.dags[dag_id].tasks for o in t.outlets}

    assert produced("inventory_sync") <= consumed("discovery")
    assert consumed("scan") == produced("inventory_sync") | produced("discovery")
    assert produced("scan") == consumed("triage")
    assert produced("triage") == consumed("remediate")
    assert produced("remediate") <= consumed("report")


def test_scan_params_are_typed(dagbag) -> None:
    params = dagbag.dags["scan"].params
    assert params["asset_ids"] == [] and params["engines"] == []
    remediate = dagbag.dags["remediate"].params
    assert remediate["dry_run"] is False


def test_the_approval_gate_is_deferrable(dagbag) -> None:
    from autosec.airflow.sensors import ApprovalSensor

    gate = dagbag.dags["remediate"].get_task("approval_gate")
    assert isinstance(gate, ApprovalSensor) and gate.deferrable

"""One inventory DAG per source, on the source's own schedule, built from the estate file when
dags/inventory_sync.py is parsed; a broken estate breaks no DAG import."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests_support import DAGS_FOLDER

INVENTORY_DAG_FILE = DAGS_FOLDER / "inventory_sync.py"
POLICY = Path(__file__).resolve().parents[2] / "include" / "policies" / "default.yaml"
ESTATE = f"""
inventory:
  - {{name: hr-csv, kind: file, path: hr.csv, schedule: "30 2 * * *", owner: team-hr}}
  - {{name: catalog, kind: backstage, conn_id: backstage_prod, schedule: "@hourly",
      owner: team-platform}}
  - name: cmdb
    kind: http_cmdb
    conn_id: cmdb_prod
    schedule: null
    mapping: {{id: id, name: name, kind: kind, owner: owner, environment: env,
               criticality: tier}}
policy: {POLICY}
"""
SOURCE_TASKS = [
    "sync_inventory_source",
    "publish_inventory_changes",
    "record_inventory_quality",
    "check_sources_synced",
]


def _bag(folder: Path, estate: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AUTOSEC_ESTATE", str(estate))
    return DagBag(dag_folder=str(folder))


def _schedule(dag) -> tuple[str, str] | None:
    """(cron expression, timezone) of a cron-scheduled DAG; None when it is never scheduled."""
    timetable = dag.timetable
    if type(timetable).__name__ == "NullTimetable":
        return None
    return timetable.expression, str(timetable.timezone)


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    return path


def test_each_source_has_its_own_dag_on_its_own_schedule(estate, monkeypatch) -> None:
    bag = _bag(INVENTORY_DAG_FILE, estate, monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "inventory_sync",
        "inventory_sync__hr-csv",
        "inventory_sync__catalog",
        "inventory_sync__cmdb",
    }
    hr = bag.dags["inventory_sync__hr-csv"]
    assert _schedule(hr) == ("30 2 * * *", "UTC")
    assert _schedule(bag.dags["inventory_sync__catalog"]) == ("0 * * * *", "UTC")
    assert _schedule(bag.dags["inventory_sync__cmdb"]) is None  # on demand only
    assert _schedule(bag.dags["inventory_sync"]) is None
    assert "owner team-hr" in hr.description and "team-hr" in hr.doc_md
    assert "owner not configured" in bag.dags["inventory_sync__cmdb"].description
    assert bag.dags["inventory_sync"].description == "every inventory source at once, on demand"


def test_a_source_dag_syncs_only_its_source_and_hands_changes_on(estate, monkeypatch) -> None:
    from autosec.airflow.assets import INVENTORY

    bag = _bag(INVENTORY_DAG_FILE, estate, monkeypatch)
    for dag_id in ("inventory_sync__hr-csv", "inventory_sync__catalog", "inventory_sync__cmdb"):
        dag = bag.dags[dag_id]
        assert [t.task_id for t in dag.topological_sort()] == SOURCE_TASKS
        sync = dag.get_task("sync_inventory_source")
        assert sync.op_kwargs == {"source_name": dag_id.removeprefix("inventory_sync__")}
        assert dag.get_task("publish_inventory_changes").outlets == [INVENTORY]
        assert dag.get_task("publish_inventory_changes").trigger_rule == "all_done"
        assert dag.get_task("record_inventory_quality").trigger_rule == "all_done"
        assert {"autosec", "inventory", "inventory-source"} <= set(dag.tags)
        assert dag.max_active_runs == 1 and not dag.catchup
        for task in dag.tasks:
            assert task.owner == "secops" and task.retries >= 1, task.task_id


def test_a_broken_estate_leaves_an_hourly_dag_that_fails_loudly(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "estate.yaml"
    broken.write_text(
        f"inventory:\n  - {{name: a, kind: file, path: a.csv, schedule: 'every day'}}\n"
        f"policy: {POLICY}\n"
    )
    bag = _bag(INVENTORY_DAG_FILE, broken, monkeypatch)
    assert bag.import_errors == {}
    assert bag.dag_ids == ["inventory_sync"]
    dag = bag.dags["inventory_sync"]
    assert _schedule(dag) == ("0 * * * *", "UTC")
    assert "estate file cannot be used" in dag.doc_md and "every day" in dag.doc_md
    assert "fails until it is fixed" in dag.description


def test_a_missing_estate_breaks_no_other_stage_dag(tmp_path, monkeypatch) -> None:
    bag = _bag(DAGS_FOLDER, tmp_path / "missing.yaml", monkeypatch)
    assert bag.import_errors == {}
    assert not [d for d in bag.dag_ids if d.startswith("inventory_sync__")]
    assert {"inventory_sync", "discovery", "scan", "triage", "remediate", "report"} <= set(
        bag.dag_ids
    )
    assert "cannot read estate file" in bag.dags["inventory_sync"].doc_md

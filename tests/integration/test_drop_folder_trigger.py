"""The drop folder's trigger on an asyncio loop, as the triggerer runs it: a settled report is
claimed once and fires one event; a file still being written waits; the imports DAG's asset is
watched by it."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from pathlib import Path

import pytest

from autosec.airflow.triggers import DropFolderTrigger
from autosec.stages.imports import CLAIMED, INCOMING

pytestmark = pytest.mark.integration


async def _first_event(trigger: DropFolderTrigger, wait: float):
    agen = trigger.run()
    try:
        return await asyncio.wait_for(agen.__anext__(), wait)
    finally:
        await agen.aclose()


def test_a_settled_report_is_claimed_and_fires_one_event(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    (root / INCOMING).mkdir(parents=True)
    report = root / INCOMING / "trivy.json"
    report.write_text("{}")
    old = time.time() - 30
    os.utime(report, (old, old))
    trigger = DropFolderTrigger(directory=str(root), poll_interval=0.05, min_age_seconds=5)

    event = asyncio.run(_first_event(trigger, wait=5))

    assert event.payload == {"directory": str(root), "claimed": ["trivy.json"]}
    assert not report.exists() and (root / CLAIMED / "trivy.json").exists()


def test_a_file_still_being_written_does_not_fire_until_it_settles(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    (root / INCOMING).mkdir(parents=True)
    (root / INCOMING / "fresh.json").write_text("{")
    trigger = DropFolderTrigger(directory=str(root), poll_interval=0.05, min_age_seconds=60)
    with pytest.raises(TimeoutError):
        asyncio.run(_first_event(trigger, wait=0.5))
    assert (root / INCOMING / "fresh.json").exists()


def test_the_trigger_serialises_to_what_the_triggerer_rebuilds(tmp_path: Path) -> None:
    trigger = DropFolderTrigger(directory=str(tmp_path), poll_interval=3, min_age_seconds=1)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_the_imports_dag_is_scheduled_by_the_watched_drop_folder(monkeypatch, tmp_path) -> None:
    import autosec.airflow.assets

    monkeypatch.setenv("AUTOSEC_DROP_FOLDER", str(tmp_path / "reports"))
    importlib.reload(autosec.airflow.assets)  # the folder is read when the assets are defined
    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    bag = DagBag(dag_folder=str(dags / "imports.py"))
    assert bag.import_errors == {}
    dag = bag.dags["imports"]
    assets = list(dag.timetable.asset_condition.objects)
    assert [a.uri for a in assets] == ["autosec://imports/drops"]
    (watcher,) = assets[0].watchers
    assert isinstance(watcher.trigger, DropFolderTrigger)
    assert watcher.trigger.directory == str(tmp_path / "reports")

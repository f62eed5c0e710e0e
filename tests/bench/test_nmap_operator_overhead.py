"""The nmap operator against bare nmap on the same targets: the ratio of wall times.

The operator path is ``EngineScanOperator.execute`` (the Airflow task the scan DAG maps over
batches): the store through the ``autosec_db`` Airflow connection, target validation, the
version probe, the runner, evidence written with its sha256, parsing and the recorded scan
run. The baseline, in the same run, is bare ``nmap`` with the very argv the engine builds,
through ``subprocess.run``. Targets are the demo estate's services on loopback (an Apache
banner, a MySQL greeting, an nginx). Each path runs ROUNDS times, alternating; medians are
printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from types import SimpleNamespace

import pytest

from autosec.demo.services import DemoEstate
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.domain.targets import validate_target
from autosec.engines.registry import get_engine
from autosec.store import db, inventory

ROUNDS = 5
PORTS = [18080, 13306]
HOSTS = {"web": "127.0.0.11", "db": "127.0.0.12", "shadow": "127.0.0.13"}

pytestmark = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")


def test_nmap_operator_against_bare_nmap(bench_store_url: str, tmp_path, monkeypatch) -> None:
    from autosec.airflow import runtime
    from autosec.airflow.operators import EngineScanOperator

    estate_file = tmp_path / "estate.yaml"
    estate_file.write_text(
        f"inventory: []\nscan:\n  engines: [nmap]\n  ports: {PORTS}\n  timeout_seconds: 120\n"
        "policy: ../policy.yaml\n"
    )
    monkeypatch.setenv("AIRFLOW_CONN_AUTOSEC_DB", bench_store_url)
    monkeypatch.setenv("AUTOSEC_ESTATE", str(estate_file))
    monkeypatch.setenv("AUTOSEC_DATA_DIR", (tmp_path / "data").as_uri())
    runtime.estate.cache_clear()
    with db.connect(bench_store_url) as conn:
        run = inventory.start_sync(conn, "bench", "file")
        assets = [
            Asset(
                name,
                name,
                AssetKind.SERVICE,
                "bench",
                "team",
                Environment.TEST,
                Criticality.LOW,
                (host,),
            )
            for name, host in HOSTS.items()
        ]
        inventory.apply_source_snapshot(conn, run, "bench", assets, runtime.now())
        conn.commit()

    engine = get_engine("nmap")
    targets = [validate_target(h) for h in HOSTS.values()]
    argv = engine.command(targets, {"ports": PORTS})
    operator = EngineScanOperator(task_id="scan_nmap", engine="nmap", asset_ids=list(HOSTS))
    operator_times, bare_times = [], []
    with DemoEstate(ports={"web": 18080, "db": 13306, "shadow": 18080}):
        for i in range(ROUNDS):
            context = {"dag": SimpleNamespace(dag_id="bench"), "run_id": f"bench-{i}"}
            start = time.perf_counter()
            result = operator.execute(context)
            operator_times.append(time.perf_counter() - start)
            assert result["status"] == "succeeded"

            start = time.perf_counter()
            bare = subprocess.run(argv, capture_output=True, check=True, env=dict(os.environ))
            bare_times.append(time.perf_counter() - start)
            assert b"<nmaprun" in bare.stdout
    runtime.estate.cache_clear()
    operator_median = statistics.median(operator_times)
    bare_median = statistics.median(bare_times)
    print()
    print(f"targets: {', '.join(HOSTS.values())} ports {PORTS}; {ROUNDS} rounds each")
    print(f"operator (EngineScanOperator.execute): median {operator_median:.2f} s")
    print(f"bare nmap, same argv:                  median {bare_median:.2f} s")
    print(f"ratio operator / bare: {operator_median / bare_median:.2f}")

"""Run stage DAGs on a local Airflow: migrate the metadata DB, create pools, ``dag.test()``.

Used by ``make demo`` and the end-to-end tests, as its own process so that Airflow reads the
environment it is given (``AIRFLOW_HOME``, the metadata DB URL, the ``autosec_db``
connection):

    python -m autosec.airflow.local_run DAGS_FOLDER inventory_sync discovery scan ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def airflow_command(*args: str, env: Mapping[str, str] | None = None) -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(  # noqa: S603 - the airflow command beside this interpreter, fixed args
        [airflow, *args], check=True, stdout=subprocess.DEVNULL, env=dict(env) if env else None
    )


def prepare_metadata_db(env: Mapping[str, str] | None = None) -> None:
    """``airflow db migrate`` and the scanner pools (idempotent)."""
    import tempfile

    from autosec.engines.registry import POOL_SLOTS

    airflow_command("db", "migrate", env=env)
    pools = {
        name: {"slots": slots, "description": f"{name} scans (autosec)", "include_deferred": False}
        for name, slots in POOL_SLOTS.items()
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as pools_file:
        json.dump(pools, pools_file)
        pools_file.flush()
        airflow_command("pools", "import", pools_file.name, env=env)


def run_dag(dags_folder: Path, dag_id: str, conf: Mapping | None = None) -> str:
    """Run one DAG to completion with ``dag.test()``; returns the run's final state."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder / f"{dag_id}.py"))
    if bag.import_errors:
        raise RuntimeError(f"{dag_id}: import errors {bag.import_errors}")
    run = bag.get_dag(dag_id).test(run_conf=dict(conf or {}))
    return str(run.state)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autosec.airflow.local_run")
    parser.add_argument("dags_folder", type=Path)
    parser.add_argument("dag_ids", nargs="+")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="DAG_ID=JSON", help="run conf for one DAG"
    )
    parser.add_argument("--result-file", type=Path, help="write the states here as JSON")
    args = parser.parse_args(argv)
    confs = {k: json.loads(v) for k, _, v in (c.partition("=") for c in args.conf)}
    states: dict[str, dict] = {}
    for dag_id in args.dag_ids:
        started = time.monotonic()
        state = run_dag(args.dags_folder, dag_id, confs.get(dag_id))
        states[dag_id] = {"state": state, "seconds": round(time.monotonic() - started, 1)}
        print(f"autosec-stage {dag_id} {state} {states[dag_id]['seconds']}s", flush=True)
    if args.result_file:
        args.result_file.write_text(json.dumps(states))
    return 0 if all(s["state"] == "success" for s in states.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""scan: changed assets at once, the rest on their cadence; one mapped task per batch."""

from __future__ import annotations

from airflow.sdk import Param, dag

from autosec.airflow.assets import DISCOVERY, INVENTORY
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.operators import EngineScanOperator
from autosec.airflow.tasks import check_scans_succeeded, plan_scan_batches, publish_scan_results
from autosec.engines.registry import ENGINES


@dag(
    dag_id="scan",
    schedule=(INVENTORY | DISCOVERY),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "scan"],
    doc_md=__doc__,
    params={
        "asset_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Scan only these assets (empty: changed and due assets)",
        ),
        "full": Param(
            False,
            type="boolean",
            description="Scan every active asset now, whatever its cadence says",
        ),
        "engines": Param(
            [],
            type="array",
            items={"type": "string", "enum": sorted(ENGINES)},
            description="Run only these engines (empty: every configured engine)",
        ),
    },
)
def scan():
    publish = publish_scan_results()
    for engine in sorted(ENGINES):
        batches = plan_scan_batches.override(task_id=f"plan_{engine}")(engine)
        runs = EngineScanOperator.partial(
            task_id=f"scan_{engine}", engine=engine, pool=engine
        ).expand(asset_ids=batches)
        runs >> publish
    publish >> check_scans_succeeded()


scan()

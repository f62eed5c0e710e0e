"""discovery: find what the inventory misses; each unexplained service is a blind spot."""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.assets import INVENTORY
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import sweep_for_blind_spots


@dag(
    dag_id="discovery",
    schedule=[INVENTORY],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "discovery"],
    doc_md=__doc__,
)
def discovery():
    sweep_for_blind_spots()


discovery()

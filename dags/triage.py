"""triage: fingerprint, dedupe, history and due dates for every finished scan run."""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.assets import SCAN_RESULTS
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import triage_scan_results


@dag(
    dag_id="triage",
    schedule=[SCAN_RESULTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "triage"],
    doc_md=__doc__,
)
def triage():
    triage_scan_results()


triage()

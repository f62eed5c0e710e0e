"""triage: fingerprint, dedupe, enrich, prioritise, date, own and validate every finished scan
run; expire exceptions first, and fail the run when a batch was rejected."""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.assets import SCAN_RESULTS
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import (
    check_triage_accepted,
    sweep_expired_exceptions,
    triage_scan_results,
)


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
    sweep_expired_exceptions() >> triage_scan_results() >> check_triage_accepted()


triage()

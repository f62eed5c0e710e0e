"""drills: each week, rehearse the rare playbooks in a throwaway sandbox; fail if one failed."""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.drill_tasks import list_drills, report_drills, run_drill


@dag(
    dag_id="drills",
    schedule="0 6 * * 1",  # weekly, Monday 06:00 UTC: a failed drill is seen in working hours
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "drills"],
    doc_md=__doc__,
)
def drills():
    names = list_drills()
    results = run_drill.expand(drill_name=names)
    report_drills(names, results)


drills()

"""report: the posture report and the POA&M, after each remediation run and every morning.

Compliance packs (FedRAMP, PCI DSS, SOC 2, ISO 27001) have their own DAG, compliance_packs:
monthly and quarterly on their own schedule, and any pack for any period on demand."""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from autosec.airflow.assets import REMEDIATION
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import build_posture_reports, refresh_rollups


@dag(
    dag_id="report",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=[REMEDIATION]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "report"],
    doc_md=__doc__,
)
def report():
    build_posture_reports()
    refresh_rollups()


report()

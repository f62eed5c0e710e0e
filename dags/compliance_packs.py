"""compliance_packs: FedRAMP, SOC 2 and ISO 27001 packs on the first of every month for the month
before, PCI DSS on the first of every quarter for the quarter before; any pack for any period on
demand (trigger with a framework and dates; dry run builds and hashes, writes nothing)."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Param, dag

from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import build_compliance_pack, plan_compliance_packs
from autosec.reporting.framework import FRAMEWORKS
from autosec.reporting.period import ALL, SCHEDULED


@dag(
    dag_id="compliance_packs",
    schedule=CronTriggerTimetable("0 5 1 * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "report", "compliance"],
    doc_md=__doc__,
    params={
        "framework": Param(
            SCHEDULED,
            type="string",
            enum=[SCHEDULED, ALL, *sorted(FRAMEWORKS)],
            description="'scheduled': the packs due on the run's date; 'all' or one framework: "
            "that pack for the dates below (empty: its last complete month or quarter)",
        ),
        "period_start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First day of the period (with period_end)",
        ),
        "period_end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last day of the period, today at the latest",
        ),
        "dry_run": Param(
            False, type="boolean", description="Build and hash every file; write and record nothing"
        ),
    },
)
def compliance_packs():
    build_compliance_pack.expand(request=plan_compliance_packs())


compliance_packs()

"""remediate: the policy decides per finding; gated actions wait for a human approval; rejected
on-the-loop reviews are rolled back. Then SLA breaches are raised (once each) and what happened
is told as per-team digests."""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from autosec.airflow.assets import FINDINGS
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.sensors import ApprovalSensor
from autosec.airflow.tasks import (
    announce_approval_requests,
    apply_actions,
    apply_approved_actions,
    decide_actions,
    deliver_notifications,
    follow_up_actions,
    publish_remediation,
    settle_reviews,
    sweep_sla_breaches,
)


@dag(
    dag_id="remediate",
    # New findings at once, and hourly so rejected reviews are rolled back without waiting.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("15 * * * *", timezone="UTC"), assets=[FINDINGS]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "remediate"],
    doc_md=__doc__,
    params={
        "dry_run": Param(False, type="boolean", description="Plan and record, apply nothing"),
    },
)
def remediate():
    plan = decide_actions()
    settle_reviews() >> follow_up_actions() >> plan
    applied_now = apply_actions(plan["apply_now"])
    gate = ApprovalSensor(task_id="approval_gate", approval_ids=plan["approval_ids"])
    announce_approval_requests(plan["approval_ids"])
    applied_later = apply_approved_actions(plan["approval_ids"])
    gate >> applied_later
    published = publish_remediation(applied_now, applied_later)
    [published, sweep_sla_breaches()] >> deliver_notifications()


remediate()

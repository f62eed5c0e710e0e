"""intel_feeds: refresh the OSV advisories, the CISA KEV catalog and the EPSS scores, daily.

One task per feed. A feed that cannot be downloaded keeps its last loaded snapshot; the task
fails only when that snapshot is older than the estate's ``intel.max_age_days`` (the warning
"kev feed is N days old" is printed and emitted as ``intel.feed_stale`` either way).
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag

from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import update_epss_feed, update_kev_feed, update_osv_feeds


@dag(
    dag_id="intel_feeds",
    schedule=CronTriggerTimetable("30 4 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "intel"],
    doc_md=__doc__,
)
def intel_feeds():
    update_osv_feeds()
    update_kev_feed()
    update_epss_feed()


intel_feeds()

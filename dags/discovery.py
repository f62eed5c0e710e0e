"""discovery: find what the inventory misses (TCP sweep, DNS, billing exports, names seen in the
certificates and redirects of recent scans); each unexplained service, name or account is a blind
spot."""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.assets import INVENTORY
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import (
    look_up_dns_names,
    publish_discovery,
    read_billing_exports,
    read_names_seen_by_scans,
    sweep_for_blind_spots,
)


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
    sweep = sweep_for_blind_spots()
    publish_discovery(
        sweep, look_up_dns_names(sweep), read_billing_exports(), read_names_seen_by_scans()
    )


discovery()

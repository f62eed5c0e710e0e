"""inventory_sync: pull assets from every configured source, validate, upsert, sweep per source."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import (
    check_sources_synced,
    list_inventory_sources,
    publish_inventory_changes,
    sync_inventory_source,
)


@dag(
    dag_id="inventory_sync",
    schedule=timedelta(hours=1),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "inventory"],
    doc_md=__doc__,
)
def inventory_sync():
    synced = sync_inventory_source.expand(source_name=list_inventory_sources())
    synced >> publish_inventory_changes() >> check_sources_synced()


inventory_sync()

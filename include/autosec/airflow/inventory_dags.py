"""The inventory_sync DAGs, built from the estate file when dags/inventory_sync.py is parsed.

- ``inventory_sync__<source>``: one DAG per inventory source, on the source's own schedule
  (``schedule`` in the estate, UTC; none: on demand only). Each run syncs that one source,
  hands the assets it changed on in an ``autosec_inventory`` asset event (so the scan DAG scans
  them at once), records the day's inventory quality figures, and fails when the sync failed.
- ``inventory_sync``: every source at once, on demand (first load, after editing the estate,
  the demo). Two syncs of one source never apply at the same moment (the store serialises them).

Reading the estate at parse time is cheap (a small YAML file, about 10 ms) and must never break
the file: when the estate cannot be read or is invalid, no per-source DAG is built and
``inventory_sync`` runs hourly instead, where each run fails with the estate's error (and
notifies as every failed stage does) until the file is fixed. The other stage DAGs do not read
the estate at parse time and are not affected. A source added to the estate gets its DAG at the
next parse, paused like every new DAG (Airflow's ``dags_are_paused_at_creation``) until an
operator unpauses it.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import CronTriggerTimetable, dag

from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import (
    check_sources_synced,
    list_inventory_sources,
    publish_inventory_changes,
    record_inventory_quality,
    sync_inventory_source,
)

ALL_SOURCES_DAG_ID = "inventory_sync"
SOURCE_DAG_PREFIX = "inventory_sync__"
BROKEN_ESTATE_SCHEDULE = "@hourly"
TAGS = ["autosec", "inventory"]

log = logging.getLogger(__name__)


def source_dag_id(source_name: str) -> str:
    return f"{SOURCE_DAG_PREFIX}{source_name}"


def inventory_sync_dags(doc_md: str | None = None) -> list[Any]:
    """``inventory_sync`` and one DAG per source of the estate file; never raises."""
    from autosec.config.estate import load_estate
    from autosec.config.settings import get_settings

    try:
        estate = load_estate(get_settings().estate)
    except Exception as exc:  # noqa: BLE001 - reported in the DAG and its runs, never fatal here
        problem = f"{type(exc).__name__}: {exc}"
        log.error("inventory_sync: no per-source DAGs, the estate cannot be used: %s", problem)
        return [
            _all_sources_dag(
                _timetable(BROKEN_ESTATE_SCHEDULE),
                "the estate file cannot be used: runs hourly and fails until it is fixed",
                (doc_md or "")
                + f"\n\n**The estate file cannot be used**: {problem}\n\nUntil it is fixed there "
                "are no per-source DAGs and this DAG runs hourly, failing with this error.",
            )
        ]
    return [
        _all_sources_dag(None, "every inventory source at once, on demand", doc_md),
        *(_source_dag(source) for source in estate.inventory),
    ]


def _timetable(schedule: str | None):
    return None if schedule is None else CronTriggerTimetable(schedule, timezone="UTC")


def _all_sources_dag(schedule, description: str, doc_md: str | None):
    @dag(
        dag_id=ALL_SOURCES_DAG_ID,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=TAGS,
        description=description,
        doc_md=doc_md,
    )
    def inventory_sync():
        synced = sync_inventory_source.expand(source_name=list_inventory_sources())
        (
            synced
            >> publish_inventory_changes()
            >> record_inventory_quality()
            >> check_sources_synced()
        )

    return inventory_sync()


def _source_dag(source):
    owner = source.owner or "not configured"
    where = getattr(source, "conn_id", None) or getattr(source, "path", "")
    schedule = source.schedule or "on demand only"

    @dag(
        dag_id=source_dag_id(source.name),
        schedule=_timetable(source.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "inventory-source"],
        description=f"{source.kind} inventory source {source.name} ({schedule}, owner {owner})",
        doc_md=(
            f"Syncs the **{source.kind}** inventory source `{source.name}` (`{where}`) on its "
            f"own schedule `{schedule}` (UTC), from the estate file. Quarantined rows are "
            f"reported to its owner, **{owner}**; its assets count as stale after "
            f"{source.stale_after} days without a successful sync. `inventory_sync` syncs "
            "every source at once."
        ),
    )
    def inventory_sync_source():
        (
            sync_inventory_source(source_name=source.name)
            >> publish_inventory_changes()
            >> record_inventory_quality()
            >> check_sources_synced()
        )

    return inventory_sync_source()

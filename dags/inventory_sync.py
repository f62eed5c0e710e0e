"""inventory_sync: pull assets from the configured sources, validate, upsert, sweep per source.

Each source in the estate file has its own DAG, ``inventory_sync__<source>``, on the source's
own ``schedule`` (cron or preset, UTC; none: on demand), so every source shows its own runs,
next run, failures and logs in the grid and can be paused or triggered alone. ``inventory_sync``
syncs every source at once, on demand. Each run hands the assets it changed on in an
``autosec_inventory`` asset event, so the scan DAG scans them at once, and records the day's
inventory quality figures. Rows the quality suite quarantines are reported to the source's
``owner`` (event ``inventory.quarantined``).

The estate is read when this file is parsed; if it cannot be read, no per-source DAG is built
and ``inventory_sync`` runs hourly, failing with the estate's error until it is fixed.
"""

from __future__ import annotations

from autosec.airflow.inventory_dags import inventory_sync_dags

for _dag in inventory_sync_dags(__doc__):
    globals()[_dag.dag_id] = _dag

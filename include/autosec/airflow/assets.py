"""The Airflow Assets that chain the loop's DAGs (DESIGN.md, "The loop")."""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from autosec.airflow.triggers import DropFolderTrigger
from autosec.config.settings import get_settings

INVENTORY = Asset(name="autosec_inventory", uri="autosec://inventory")
DISCOVERY = Asset(name="autosec_discovery", uri="autosec://discovery")
SCAN_RESULTS = Asset(name="autosec_scan_results", uri="autosec://scan_results")
FINDINGS = Asset(name="autosec_findings", uri="autosec://findings")
REMEDIATION = Asset(name="autosec_remediation", uri="autosec://remediation")
REPORTS = Asset(name="autosec_reports", uri="autosec://reports")

# Reports pushed to the drop folder: the watcher's trigger claims them and starts the imports DAG.
REPORT_DROPS = Asset(
    name="autosec_report_drops",
    uri="autosec://imports/drops",
    watchers=[
        AssetWatcher(
            name="autosec_drop_folder",
            trigger=DropFolderTrigger(directory=str(get_settings().drop_folder)),
        )
    ],
)

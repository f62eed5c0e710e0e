"""The Airflow Assets that chain the loop's DAGs (DESIGN.md, "The loop")."""

from __future__ import annotations

from airflow.sdk import Asset

INVENTORY = Asset(name="autosec_inventory", uri="autosec://inventory")
DISCOVERY = Asset(name="autosec_discovery", uri="autosec://discovery")
SCAN_RESULTS = Asset(name="autosec_scan_results", uri="autosec://scan_results")
FINDINGS = Asset(name="autosec_findings", uri="autosec://findings")
REMEDIATION = Asset(name="autosec_remediation", uri="autosec://remediation")
REPORTS = Asset(name="autosec_reports", uri="autosec://reports")

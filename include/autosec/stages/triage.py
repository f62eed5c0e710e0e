"""triage: take in finished scan runs: fingerprint, dedupe, history, due dates, closures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from autosec.engines.base import ScanScope
from autosec.engines.registry import closing_authority
from autosec.store import events, findings, inventory, scans
from autosec.store.db import Connection
from autosec.triage.history import findings_to_close
from autosec.triage.normalise import triage_observations


@dataclass
class TriageOutcome:
    runs: int = 0
    new: int = 0
    reopened: int = 0
    seen_again: int = 0
    fixed: int = 0
    new_finding_ids: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


def triage_runs(
    conn: Connection,
    days_by_severity: Mapping[str, int | None],
    now: datetime,
    run_ids: Sequence[int] | None = None,
) -> TriageOutcome:
    outcome = TriageOutcome()
    for run in scans.untriaged_runs(conn, run_ids):
        with conn.transaction():
            _triage_run(conn, run, days_by_severity, now, outcome)
        conn.commit()
    return outcome


def _triage_run(conn, run: dict, days_by_severity, now: datetime, outcome: TriageOutcome) -> None:
    outcome.runs += 1
    if run["status"] != "succeeded":
        scans.mark_triaged(conn, run["id"], now)
        return
    observations = scans.load_observations(conn, run["id"])
    assets = {a.id: a for a in inventory.load_assets(conn, run["asset_ids"], active_only=False)}
    triaged = triage_observations(observations, assets, days_by_severity, now)
    evidence = conn.execute(
        "SELECT sha256 FROM evidence WHERE scan_run_id = %s ORDER BY id LIMIT 1", (run["id"],)
    ).fetchone()
    counts = findings.upsert_findings(
        conn, triaged, run["id"], now, evidence_sha256=evidence[0] if evidence else None
    )
    engine = closing_authority(run["engine"])
    to_close = findings_to_close(
        findings.open_findings_for(conn, run["asset_ids"], run["engine"]),
        {f.fingerprint for f in triaged},
        engine,
        ScanScope.from_dict(run["scope"]),
        run_succeeded=True,
        scanned_asset_ids=set(run["asset_ids"]),
    )
    outcome.fixed += findings.close_findings(conn, [f.id for f in to_close], run["id"], now)
    outcome.new += counts.new
    outcome.reopened += counts.reopened
    outcome.seen_again += counts.seen_again
    outcome.new_finding_ids.extend(counts.new_ids)
    events.emit_many(
        conn, "finding.new", [(f"finding:{i}", {"scan_run_id": run["id"]}) for i in counts.new_ids]
    )
    scans.mark_triaged(conn, run["id"], now)

"""triage: take in finished scan runs: fingerprint, dedupe, enrich, prioritise, date, own,
validate, store, apply exceptions, close what a covering rescan no longer sees, and raise the
black swans.

One run at a time, each in its own transaction. The intelligence a run needs (KEV, EPSS) is read
once for all of its CVE ids. Before anything is written the triaged batch must pass the data
contract (``autosec.triage.quality``); a batch that fails is stored not at all: the run is
marked rejected with the failing expectations and ``triage.rejected`` is raised, and the other
runs go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from autosec.config.policy import Policy
from autosec.discovery.assignment import AssignmentRule
from autosec.engines.base import ScanScope
from autosec.engines.registry import closing_authority
from autosec.store import events, findings, inventory, scans
from autosec.store import exceptions as exception_store
from autosec.store import intel as intel_store
from autosec.store.db import Connection
from autosec.triage.enrich import NO_INTEL, EpssScore, Intel, KevEntry, cve_ids_of
from autosec.triage.history import findings_to_close
from autosec.triage.normalise import TriageSettings, triage_observations
from autosec.triage.quality import validate_batch


@dataclass
class TriageOutcome:
    runs: int = 0
    new: int = 0
    reopened: int = 0
    seen_again: int = 0
    fixed: int = 0
    set_aside: int = 0
    black_swans: int = 0
    rejected: int = 0
    new_finding_ids: list[int] = field(default_factory=list)
    rejected_runs: dict[int, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


class TriageRejected(Exception):
    """A run's triaged batch broke the data contract; nothing of it was stored."""

    def __init__(self, scan_run_id: int, failed: list[str]) -> None:
        self.scan_run_id = scan_run_id
        self.failed = failed
        super().__init__(f"scan run {scan_run_id}: triage batch rejected: " + "; ".join(failed))


def settings_from(
    policy: Policy | None, assignment_rules: Iterable[AssignmentRule] = ()
) -> TriageSettings:
    """What triage takes from the policy (KEV due dates, black swan) and the estate (owners)."""
    if policy is None:
        return TriageSettings(assignment_rules=tuple(assignment_rules))
    return TriageSettings(
        kev_due_date_wins=policy.patching.kev_due_date_wins,
        black_swan=policy.black_swan.criteria,
        black_swan_triggers=tuple(policy.black_swan.triggers),
        assignment_rules=tuple(assignment_rules),
    )


def triage_runs(
    conn: Connection,
    days_by_severity: Mapping[str, int | None],
    now: datetime,
    run_ids: Sequence[int] | None = None,
    *,
    policy: Policy | None = None,
    assignment_rules: Iterable[AssignmentRule] = (),
) -> TriageOutcome:
    """Triage every finished, untriaged run (or only ``run_ids``), oldest first."""
    outcome = TriageOutcome()
    settings = settings_from(policy, assignment_rules)
    for run in scans.untriaged_runs(conn, run_ids):
        try:
            with conn.transaction():
                _triage_run(conn, run, days_by_severity, settings, now, outcome)
        except TriageRejected as rejected:
            with conn.transaction():
                _record_rejection(conn, run, rejected, now)
            outcome.rejected += 1
            outcome.rejected_runs[run["id"]] = rejected.failed
        conn.commit()
    return outcome


def sweep_expired_exceptions(conn: Connection, now: datetime) -> list[dict]:
    """Expire what is past its date; the findings it set aside are open again, owners told."""
    with conn.transaction():
        expired = exception_store.expire_exceptions(conn, now)
    conn.commit()
    return expired


def intel_for(conn: Connection, cve_ids: set[str]) -> Intel:
    """KEV and EPSS for a run's CVE ids: two queries, whatever the number of findings."""
    if not cve_ids:
        return NO_INTEL
    kev = intel_store.kev_for(conn, cve_ids)
    epss = intel_store.epss_for(conn, cve_ids)
    return Intel(
        kev={cve: KevEntry(cve, e.due_date, e.ransomware, e.date_added) for cve, e in kev.items()},
        epss={cve: EpssScore(cve, s.epss, s.percentile) for cve, s in epss.items()},
    )


def _triage_run(
    conn: Connection,
    run: dict,
    days_by_severity: Mapping[str, int | None],
    settings: TriageSettings,
    now: datetime,
    outcome: TriageOutcome,
) -> None:
    outcome.runs += 1
    if run["status"] != "succeeded":
        findings.finish_run_triage(conn, run["id"], now)
        return
    observations = scans.load_observations(conn, run["id"])
    assets = {a.id: a for a in inventory.load_assets(conn, run["asset_ids"], active_only=False)}
    triaged = triage_observations(
        observations,
        assets,
        days_by_severity,
        now,
        intel=intel_for(conn, cve_ids_of(observations)),
        settings=settings,
    )
    quality = validate_batch(triaged, days_by_severity)
    if not quality.passed:
        raise TriageRejected(run["id"], quality.failed_expectations)
    evidence = conn.execute(
        "SELECT sha256 FROM evidence WHERE scan_run_id = %s ORDER BY id LIMIT 1", (run["id"],)
    ).fetchone()
    counts = findings.upsert_findings(
        conn, triaged, run["id"], now, evidence_sha256=evidence[0] if evidence else None
    )
    set_aside = exception_store.apply_exceptions(
        conn, now, asset_ids=run["asset_ids"], scan_run_id=run["id"]
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
    outcome.set_aside += len(set_aside)
    outcome.new_finding_ids.extend(counts.new_ids)
    events.emit_many(
        conn, "finding.new", [(f"finding:{i}", {"scan_run_id": run["id"]}) for i in counts.new_ids]
    )
    outcome.black_swans += _raise_black_swans(conn, triaged, run["id"], now)
    findings.finish_run_triage(conn, run["id"], now)


def _raise_black_swans(conn: Connection, triaged, scan_run_id: int, now: datetime) -> int:
    """``finding.black_swan`` for each open finding that is a black swan for the first time."""
    verdicts = {f.fingerprint: f.black_swan for f in triaged if f.black_swan}
    if not verdicts:
        return 0
    first_time = findings.mark_black_swans(conn, sorted(verdicts), now)
    events.emit_many(
        conn,
        "finding.black_swan",
        [
            (
                f"finding:{row['id']}",
                {
                    **verdicts[row["fingerprint"].strip()],
                    "summary": f"black swan on {row['asset_id']}: {row['title']} "
                    f"({', '.join(row['cve_ids']) or row['rule_id']}); owner "
                    f"{row['owner'] or 'none'}, due {row['due_date']}",
                    "asset_id": row["asset_id"],
                    "owner": row["owner"],
                    "cve_ids": list(row["cve_ids"]),
                    "due_date": row["due_date"].isoformat() if row["due_date"] else None,
                    "scan_run_id": scan_run_id,
                },
            )
            for row in first_time
        ],
    )
    return len(first_time)


def _record_rejection(conn: Connection, run: dict, rejected: TriageRejected, now: datetime) -> None:
    findings.finish_run_triage(conn, run["id"], now, rejected_because=rejected.failed)
    events.emit(
        conn,
        "triage.rejected",
        f"scan_run:{run['id']}",
        {
            "error": f"{run['engine']} run {run['id']}: nothing stored; "
            + "; ".join(rejected.failed),
            "engine": run["engine"],
            "failed_expectations": rejected.failed,
        },
    )

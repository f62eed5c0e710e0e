"""The tasks the stage DAGs wire together. Each one calls a stage service; none holds logic.

Heavy imports (Great Expectations, engines, report builders) happen inside the task bodies,
so DAG files import fast.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Metadata, get_current_context, task
from airflow.sdk.exceptions import AirflowException

from autosec.airflow import assets, runtime

# --- inventory_sync ---------------------------------------------------------------------------


@task
def list_inventory_sources() -> list[str]:
    return [source.name for source in runtime.estate().inventory]


@task(map_index_template="{{ source_name }}")
def sync_inventory_source(source_name: str) -> dict[str, Any]:
    from autosec.stages.inventory_sync import sync_source

    estate = runtime.estate()
    source = next((s for s in estate.inventory if s.name == source_name), None)
    if source is None:
        raise AirflowException(
            f"inventory source {source_name!r} is not in the estate file any more "
            f"(sources: {', '.join(s.name for s in estate.inventory) or 'none'})"
        )
    context = get_current_context()
    with runtime.store() as conn, runtime.source_access(source) as (path, endpoint, session):
        outcome = sync_source(
            conn,
            source,
            path,
            runtime.now(),
            runtime.run_ref(context),
            endpoint=endpoint,
            session=session,
        )
    for line in outcome.quarantined:
        print(f"quarantined: {line}")
    for expectation in outcome.failed_expectations:
        print(f"failed expectation: {expectation}")
    return {"source": outcome.source, "status": outcome.status, "counts": outcome.counts}


@task(trigger_rule="all_done", outlets=[assets.INVENTORY])
def publish_inventory_changes():
    from autosec.store.inventory import sync_runs_for

    context = get_current_context()
    with runtime.store() as conn:
        runs = sync_runs_for(conn, runtime.run_ref(context))
    succeeded = [r for r in runs if r["status"] in ("succeeded", "partial")]
    changed = sorted({a for r in succeeded for a in r["changed_asset_ids"]})
    yield Metadata(
        assets.INVENTORY,
        {
            "changed_asset_ids": changed,
            "sources": {r["source"]: r["status"] for r in runs},
        },
    )


@task(trigger_rule="all_done")
def record_inventory_quality() -> dict[str, int]:
    """Today's inventory quality figures (owners, environments, stale assets), every source;
    after failed syncs too, since a source that keeps failing is what makes assets stale."""
    from autosec.stages.inventory_sync import record_quality

    with runtime.store() as conn:
        figures = record_quality(conn, runtime.estate().inventory, runtime.now())
    for f in figures:
        print(
            f"{f['source']}: {f['active']} active, {f['with_owner']} with an owner, "
            f"{f['with_environment']} with an environment, {f['stale']} stale "
            f"(window {f['stale_after_days']} d), last good sync {f['last_success_at']}"
        )
    return {k: sum(f[k] for f in figures) for k in ("active", "with_owner", "stale")}


@task
def check_sources_synced() -> None:
    """Fail the run, after the successful sources were published, if any source failed."""
    from autosec.store.inventory import sync_runs_for

    with runtime.store() as conn:
        runs = sync_runs_for(conn, runtime.run_ref(get_current_context()))
    failed = [f"{r['source']}: {r['error']}" for r in runs if r["status"] == "failed"]
    if failed or not runs:
        raise AirflowException("inventory sources failed (nothing retired): " + "; ".join(failed))


# --- discovery --------------------------------------------------------------------------------


@task
def sweep_for_blind_spots() -> dict:
    """TCP connect sweep of the configured ranges; returns counts and the open addresses."""
    from autosec.stages.discovery import run_tcp_sweep

    config = runtime.estate().discovery.tcp_sweep
    if config is None:
        print("no TCP sweep range configured")
        return {"open_addresses": []}
    with runtime.store() as conn:
        outcome = run_tcp_sweep(
            conn, config, runtime.now(), assignment_rules=runtime.estate().discovery.rules()
        )
    print(f"tcp_sweep: {outcome.counts()}")
    return {**outcome.counts(), "open_addresses": outcome.open_addresses}


@task
def look_up_dns_names(sweep: dict) -> dict:
    """Zone transfers, the wordlist, and reverse lookups of what the sweep found open."""
    from autosec.stages.discovery import run_dns

    config = runtime.estate().discovery.dns
    if config is None:
        print("no DNS zone configured")
        return {}
    with runtime.store() as conn:
        outcome = run_dns(
            conn,
            config,
            runtime.now(),
            sweep.get("open_addresses", []),
            assignment_rules=runtime.estate().discovery.rules(),
        )
    print(f"dns: {outcome.counts()} (complete: {outcome.complete})")
    return outcome.counts()


@task
def read_billing_exports() -> dict:
    """Accounts and projects someone pays for that no inventory source knows."""
    from autosec.stages.discovery import run_billing

    totals: dict[str, int] = {}
    estate = runtime.estate()
    for listed in estate.discovery.billing:
        config = listed.model_copy(update={"path": estate.resolve(listed.path)})
        with runtime.store() as conn:
            outcome = run_billing(
                conn, config, runtime.now(), assignment_rules=estate.discovery.rules()
            )
        print(f"billing {config.path}: {outcome.counts()}")
        for key, value in outcome.counts().items():
            totals[key] = totals.get(key, 0) + value
    return totals


@task
def read_names_seen_by_scans() -> dict:
    """Names in TLS certificates and HTTP redirects of recent scans that no asset carries."""
    from autosec.stages.discovery import run_scan_names

    discovery = runtime.estate().discovery
    with runtime.store() as conn:
        outcome = run_scan_names(
            conn,
            discovery.scan_names,
            discovery.zones(),
            runtime.now(),
            assignment_rules=discovery.rules(),
        )
    print(f"scan_names: {outcome.counts()}")
    for note in outcome.notes:
        print(note)
    return outcome.counts()


@task(outlets=[assets.DISCOVERY])
def publish_discovery(sweep: dict, names: dict, billing: dict, scan_names: dict):
    """Record today's inventory completeness, then hand the counts on."""
    from autosec.store.discovery import snapshot_completeness

    with runtime.store() as conn:
        completeness = snapshot_completeness(conn, runtime.now().date())
    print(f"inventory completeness today: {completeness}")
    counts = {k: v for k, v in sweep.items() if k != "open_addresses"}
    yield Metadata(
        assets.DISCOVERY,
        {"tcp_sweep": counts, "dns": names, "billing": billing, "scan_names": scan_names},
    )


# --- scan -------------------------------------------------------------------------------------


@task
def plan_scan_batches(engine: str) -> list[list[str]]:
    """Batches of asset ids: changed assets from the triggering events, plus what is due."""
    from autosec.stages.scan import plan_batches

    context = get_current_context()
    params = context["params"]
    changed: set[str] = set()
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            changed.update(event.extra.get("changed_asset_ids", []))
    wanted_engines = params.get("engines") or None
    if wanted_engines and engine not in wanted_engines:
        return []
    with runtime.store() as conn:
        batches = plan_batches(
            conn,
            runtime.estate().scan,
            sorted(changed),
            runtime.now(),
            engines=[engine],
            only_asset_ids=params.get("asset_ids") or None,
            full=bool(params.get("full")),
        )
    print(f"{engine}: {len(batches)} batches ({len(changed)} changed assets in the events)")
    return [list(batch.asset_ids) for batch in batches]


@task(trigger_rule="all_done", outlets=[assets.SCAN_RESULTS])
def publish_scan_results():
    from autosec.store.scans import scan_runs_for

    with runtime.store() as conn:
        runs = scan_runs_for(conn, runtime.run_ref(get_current_context()))
    yield Metadata(
        assets.SCAN_RESULTS,
        {
            "scan_run_ids": [r["id"] for r in runs],
            "failed": [r["id"] for r in runs if r["status"] != "succeeded"],
        },
    )


@task
def check_scans_succeeded() -> None:
    from autosec.store.scans import scan_runs_for

    with runtime.store() as conn:
        runs = scan_runs_for(conn, runtime.run_ref(get_current_context()))
    failed = [
        f"run {r['id']} ({r['engine']}): {r['error']}" for r in runs if r["status"] != "succeeded"
    ]
    if failed:
        raise AirflowException("scan runs failed (they close no finding): " + "; ".join(failed))


# --- imports ----------------------------------------------------------------------------------


@task(outlets=[assets.FINDINGS])
def import_dropped_reports():
    """Import every claimed report in the drop folder; file each under done/ or failed/."""
    import time

    from autosec.config.settings import get_settings
    from autosec.stages.imports import CLAIMED, claim_dropped, file_away, import_report, triage_now

    root = get_settings().drop_folder
    claim_dropped(root, min_age_seconds=2.0, now=time.time())  # runs without a triggerer too
    context = get_current_context()
    days = runtime.policy().policy.patching.days_by_severity()
    totals = {"reports": 0, "failed": 0, "created": 0, "closed": 0, "reopened": 0}
    with runtime.store() as conn:
        for path in sorted((root / CLAIMED).iterdir()):
            summary = import_report(
                conn,
                path,
                runtime.blob_store(),
                triage_now(days, runtime.now),
                runtime.now,
                run_ref=runtime.run_ref(context),
            )
            filed = file_away(root, path, summary)
            totals["reports"] += 1
            totals["failed"] += bool(summary.errors)
            for key in ("created", "closed", "reopened"):
                totals[key] += getattr(summary, key)
            print(
                f"{path.name}: {summary.format} created {summary.created}, updated "
                f"{summary.updated}, unchanged {summary.unchanged}, closed {summary.closed}, "
                f"reopened {summary.reopened} -> {filed}"
            )
            for error in summary.errors:
                print(f"error: {error}")
    yield Metadata(assets.FINDINGS, totals)


# --- triage -----------------------------------------------------------------------------------


@task
def sweep_expired_exceptions() -> dict[str, int]:
    """Expired risk acceptances and false positives: their findings are open again, owners told."""
    from autosec.stages.triage import sweep_expired_exceptions as sweep

    with runtime.store() as conn:
        expired = sweep(conn, runtime.now())
    for row in expired:
        print(f"exception #{row['id']} ({row['kind']}) expired: {row['findings']} reopened")
    return {"expired": len(expired), "reopened": sum(r["findings"] for r in expired)}


@task(outlets=[assets.FINDINGS])
def triage_scan_results():
    from autosec.stages.remediate import settle_verifications
    from autosec.stages.triage import triage_runs

    loaded = runtime.policy()
    with runtime.store() as conn:
        outcome = triage_runs(
            conn,
            loaded.policy.patching.days_by_severity(),
            runtime.now(),
            policy=loaded.policy,
            assignment_rules=runtime.estate().discovery.rules(),
        )
        verifications = settle_verifications(conn, runtime.now())
    for run_id, failed in outcome.rejected_runs.items():
        print(f"scan run {run_id} rejected, nothing stored: " + "; ".join(failed))
    print(f"triage: {outcome.counts()}; verification requests: {verifications}")
    yield Metadata(
        assets.FINDINGS,
        {
            **outcome.counts(),
            "verifications": verifications,
            "rejected_run_ids": sorted(outcome.rejected_runs),
        },
    )


@task
def check_triage_accepted() -> None:
    """Fail the run, after the accepted runs were published, if a batch was rejected."""
    from autosec.store.findings import rejected_runs

    context = get_current_context()
    with runtime.store() as conn:
        rejected = rejected_runs(conn, context["dag_run"].start_date)
    if rejected:
        raise AirflowException(
            "triage batches rejected (nothing stored for them): "
            + "; ".join(f"run {r['id']} ({r['engine']}): {r['triage_error']}" for r in rejected)
        )


# --- remediate --------------------------------------------------------------------------------


@task(multiple_outputs=True)
def decide_actions() -> dict[str, list[int]]:
    from autosec.config.settings import get_settings
    from autosec.stages.remediate import decide_findings

    context = get_current_context()
    with runtime.store() as conn:
        plan = decide_findings(
            conn,
            runtime.policy(),
            runtime.now(),
            requester=get_settings().requester,
            run_ref=runtime.run_ref(context),
            dry_run=bool(context["params"].get("dry_run")),
        )
    print(f"{plan.decisions} decisions; apply now: {plan.apply_now}; gated: {plan.approval_ids}")
    for problem in plan.unplannable:
        print(f"no action could be planned: {problem}")
    if plan.break_glass_session_id:
        print(f"break glass #{plan.break_glass_session_id} in force: {plan.break_glass_uses} uses")
    return {"apply_now": plan.apply_now, "approval_ids": plan.approval_ids}


@task
def settle_reviews() -> dict[str, int]:
    """Roll back on-the-loop actions whose review was rejected; escalate expired reviews."""
    from autosec.stages.remediate import settle_reviews as settle

    actions, session = runtime.remediation_tools()
    with runtime.store() as conn:
        return settle(conn, actions, session, runtime.now())


@task
def follow_up_actions() -> dict[str, int]:
    """Tickets follow their findings (close when fixed, comment on reopen); reported fixes
    (a ticket resolved by hand, a merged pull request) ask for a verification rescan."""
    from autosec.stages.remediate import follow_up

    actions, session = runtime.remediation_tools()
    with runtime.store() as conn:
        return follow_up(conn, actions, session, runtime.now())


@task
def apply_actions(action_ids: list[int]) -> dict[str, int]:
    from autosec.stages.remediate import apply_planned

    actions, session = runtime.remediation_tools()
    with runtime.store() as conn:
        return apply_planned(conn, action_ids, actions, session, runtime.now())


@task
def apply_approved_actions(approval_ids: list[int]) -> dict[str, int]:
    from autosec.stages.remediate import apply_after_gate

    actions, session = runtime.remediation_tools()
    with runtime.store() as conn:
        return apply_after_gate(conn, approval_ids, actions, session, runtime.now())


@task(outlets=[assets.REMEDIATION])
def publish_remediation(now_counts: dict[str, int], gated_counts: dict[str, int]):
    yield Metadata(assets.REMEDIATION, {"immediate": now_counts, "after_approval": gated_counts})


# --- rollups ----------------------------------------------------------------------------------


@task
def refresh_rollups() -> dict[str, object]:
    """Today's posture rollup (and any missing past day, rebuilt from history) for the autosec
    pages and the metrics endpoint."""
    from autosec.stages.rollups import refresh

    with runtime.store() as conn:
        outcome = refresh(conn, runtime.estate().scan, runtime.now())
    print(f"rollups: {outcome.counts()}")
    return outcome.counts()


# --- report -----------------------------------------------------------------------------------


@task(outlets=[assets.REPORTS])
def build_posture_reports():
    from autosec.stages.report import build_reports

    with runtime.store() as conn:
        built = build_reports(
            conn,
            runtime.blob_store(),
            runtime.policy(),
            runtime.now(),
            scan_config=runtime.estate().scan,
        )
    for report in built:
        print(f"{report.kind}: {report.uri} sha256={report.sha256}")
    yield Metadata(assets.REPORTS, {"report_ids": [r.report_id for r in built]})


@task
def plan_compliance_packs() -> list[dict[str, Any]]:
    """The packs this run builds: those due on its logical date, or the one(s) asked for."""
    from autosec.reporting.framework import cadences
    from autosec.reporting.period import SCHEDULED, plan_packs

    context = get_current_context()
    params = context["params"]
    on = (context.get("logical_date") or runtime.now()).date()
    try:
        requests = plan_packs(
            cadences(),
            on,
            params.get("framework") or SCHEDULED,
            params.get("period_start") or None,
            params.get("period_end") or None,
            dry_run=bool(params.get("dry_run")),
        )
    except ValueError as exc:
        raise AirflowException(f"compliance packs: {exc}") from None
    for request in requests:
        print(f"due: {request.framework} {request.period.label} dry_run={request.dry_run}")
    return [r.as_dict() for r in requests]


@task(
    outlets=[assets.REPORTS],
    map_index_template="{{ request['framework'] }} {{ request['period_start'] }}",
)
def build_compliance_pack(request: dict[str, Any]):
    """Build, write and record one pack (or, in a dry run, build and hash it only)."""
    from autosec.reporting.period import PackRequest
    from autosec.stages.report import build_compliance_pack as build

    wanted = PackRequest.from_dict(request)
    with runtime.store() as conn:
        built = build(
            conn,
            runtime.blob_store(),
            runtime.policy(),
            wanted.framework,
            wanted.period,
            runtime.now(),
            scan_config=runtime.estate().scan,
            dry_run=wanted.dry_run,
            run_ref=runtime.run_ref(get_current_context()),
        )
    for piece in built.pieces:
        print(f"{piece.kind}: {piece.uri or '(dry run: not written)'} sha256={piece.sha256}")
    summary = built.summary()
    yield Metadata(assets.REPORTS, {k: summary[k] for k in ("framework", "pack_id", "report_ids")})
    return summary


@task
def announce_approval_requests(approval_ids: list[int]) -> int:
    """Tell the approvers a decision is waiting, with a link to the Approvals page."""
    from autosec.airflow.notifiers import approvals_page_url, send_chat_message
    from autosec.remediation.messages import approval_request_text
    from autosec.store.approvals import list_approvals

    if not approval_ids:
        return 0
    with runtime.store() as conn:
        rows = [r for r in list_approvals(conn) if r["id"] in set(approval_ids)]
    page = approvals_page_url()
    sent = 0
    for row in rows:
        text = approval_request_text(row, page)
        print(text)
        sent += bool(send_chat_message(text))
    return sent


@task
def sweep_sla_breaches() -> dict[str, int]:
    """Raise ``sla.breached`` once for every open finding newly past its due date."""
    from autosec.stages.notifications import sweep_sla_breaches as sweep

    with runtime.store() as conn:
        counts = sweep(conn, runtime.now())
    print(f"SLA sweep: {counts.breached} new breach(es), {counts.ended} ended")
    return counts.as_dict()


@task(trigger_rule="all_done")
def deliver_notifications() -> dict[str, Any]:
    """Route new events into per-team digests and send what is due, within each channel's rate
    limit; runs whatever the tasks before it did, so failures are told too."""
    from autosec.airflow.notifiers import channel_configured, deliver_message
    from autosec.stages.notifications import deliver_notifications as deliver

    with runtime.store() as conn:
        outcome = deliver(
            conn,
            runtime.estate().notifications,
            deliver_message,
            runtime.now(),
            configured=channel_configured,
        )
    counts = outcome.counts()
    print(f"notifications: {counts}")
    for channel in outcome.unconfigured:
        print(f"channel {channel} has no Airflow connection: its digests wait")
    if outcome.failures:
        raise AirflowException(
            "notifications not delivered (they stay sealed and are sent again next run): "
            + "; ".join(outcome.failures)
        )
    return counts


# --- intel feeds ------------------------------------------------------------------------------


def _update_intel_feed(update) -> dict[str, dict[str, Any]]:
    """Run one feed update; fail the task only when a failed update leaves the feed stale."""
    import requests

    estate = runtime.estate()
    with runtime.store() as conn, requests.Session() as session:
        result = update(conn, estate.intel, estate.resolve, runtime.now(), session)
    outcomes = result if isinstance(result, list) else [result]
    for outcome in outcomes:
        print(f"{outcome.feed}: {outcome.status} {outcome.counts} version {outcome.version}")
        if outcome.error:
            print(f"{outcome.feed}: {outcome.error} (the last loaded snapshot is kept)")
        if outcome.warning:
            print(f"WARNING: {outcome.warning}")
    stale = [o for o in outcomes if o.failed and o.warning]
    if stale:
        raise AirflowException(
            "feed update failed and the stored snapshot is stale: "
            + "; ".join(f"{o.error} ({o.warning})" for o in stale)
        )
    return {
        o.feed: {"status": o.status, "records": o.counts.get("total", 0), "stale": bool(o.warning)}
        for o in outcomes
    }


@task
def update_osv_feeds() -> dict[str, dict[str, Any]]:
    from autosec.stages.intel import update_osv_feeds as update

    return _update_intel_feed(update)


@task
def update_kev_feed() -> dict[str, dict[str, Any]]:
    from autosec.stages.intel import update_kev_feed as update

    return _update_intel_feed(update)


@task
def update_epss_feed() -> dict[str, dict[str, Any]]:
    from autosec.stages.intel import update_epss_feed as update

    return _update_intel_feed(update)

"""report: the posture report (HTML) and the POA&M (CSV), dated, hashed and recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from autosec.config.estate import ScanConfig
from autosec.reporting.poam import render_poam_csv
from autosec.reporting.posture import ReportData, ReportFinding, render_posture_html
from autosec.stages.blobs import BlobStore
from autosec.store import events, inventory, remediation, scans
from autosec.store import reports as store
from autosec.store.db import Connection


@dataclass(frozen=True)
class BuiltReport:
    report_id: int
    kind: str
    uri: str
    sha256: str


def gather(
    conn: Connection,
    loaded_policy,
    now: datetime,
    days: int = 30,
    scan_config: ScanConfig | None = None,
) -> ReportData:
    rows = store.report_inputs(conn)
    since = now - timedelta(days=days)
    decisions_by_approval: dict[int, list[dict]] = {}
    for d in rows["approval_decisions"]:
        decisions_by_approval.setdefault(d["approval_id"], []).append(
            {
                "approver": d["approver"],
                "decision": d["decision"],
                "reason": d["reason"],
                "at": d["decided_at"],
            }
        )
    action_by_approval = {a["approval_id"]: a for a in rows["actions"] if a["approval_id"]}
    return ReportData(
        generated_at=now,
        period_start=since.date(),
        period_end=now.date(),
        policy_version=loaded_policy.policy.version,
        policy_hash=loaded_policy.sha256,
        assets_total=len(rows["assets"]),
        assets_scanned=sum(1 for a in rows["assets"] if a["last_scanned"] is not None),
        blind_spots=[
            {
                "address": b["address"],
                "port": b["port"],
                "source": b["source"],
                "seen_at": b["last_seen"],
                "evidence": b["evidence"],
            }
            for b in rows["blind_spots"]
        ],
        findings=[
            ReportFinding(
                fingerprint=f["fingerprint"],
                asset_id=f["asset_id"],
                asset_name=f["asset_name"],
                owner=f["owner"],
                engine=f["engine"],
                rule_id=f["rule_id"],
                title=f["title"],
                severity=f["severity"],
                status=f["status"],
                first_seen=f["first_seen"],
                last_seen=f["last_seen"],
                due_date=f["due_date"],
                cve_ids=tuple(f["cve_ids"]),
                location=_location_text(f["location"]),
                evidence_sha256=f["evidence_sha256"],
            )
            for f in rows["findings"]
        ],
        actions=[
            {
                "action": a["action"],
                "asset": a["asset_id"],
                "status": a["status"],
                "external_ref": a["external_ref"],
                "mode": a["mode"],
                "rule_id": a["rule_id"],
                "at": a["updated_at"],
            }
            for a in rows["actions"]
        ],
        approvals=[
            {
                "id": a["id"],
                "status": a["status"],
                "requester": a["requester"],
                "action": (action_by_approval.get(a["id"]) or {}).get("action"),
                "asset": (action_by_approval.get(a["id"]) or {}).get("asset_id"),
                "decisions": decisions_by_approval.get(a["id"], []),
            }
            for a in rows["approvals"]
        ],
        break_glass=remediation.break_glass_sessions(conn, since),
        drills=[{**d["payload"], "at": d["at"]} for d in store.latest_drills(conn, since)],
        **coverage_inputs(conn, scan_config or ScanConfig(), now),
    )


def coverage_inputs(conn: Connection, scan_config: ScanConfig, now: datetime) -> dict:
    """The coverage map for the enabled engines, and per asset who covered it and what is
    overdue by its adaptive cadence."""
    from autosec.engines.coverage import coverage_map
    from autosec.engines.registry import ENGINES, get_engine
    from autosec.stages.scan import due_assets

    engines = {name: get_engine(name) for name in ENGINES}
    cells = coverage_map(engines, scan_config.engines)
    assets = {a.id: a for a in inventory.load_assets(conn)}
    overdue: dict[str, list[str]] = {}
    for name in scan_config.engines:
        engine = engines[name]
        for asset_id in due_assets(scans.schedule_state(conn, name), assets, scan_config, now):
            if engine.accepts(assets[asset_id]):
                overdue.setdefault(asset_id, []).append(name)
    per_asset: dict[str, dict] = {}
    for row in scans.coverage_by_asset(conn):
        entry = per_asset.setdefault(
            row["asset_id"],
            {
                "asset_id": row["asset_id"],
                "kind": row["kind"],
                "owner": row["owner"],
                "engines": [],
                "overdue": overdue.get(row["asset_id"], []),
            },
        )
        if row["engine"] is not None:
            entry["engines"].append(
                {
                    "engine": row["engine"],
                    "last_success_at": row["last_success_at"],
                    "last_status": row["last_status"],
                }
            )
    return {
        "coverage_map": {
            kind.value: {d: cell.as_dict() for d, cell in row.items()}
            for kind, row in cells.items()
        },
        "asset_coverage": list(per_asset.values()),
    }


def _location_text(location: dict) -> str:
    if location.get("url"):
        return location["url"]
    if location.get("file"):
        return f"{location['file']}:{location.get('line', '')}".rstrip(":")
    host, port = location.get("host", ""), location.get("port")
    proto = location.get("protocol")
    return f"{host}:{port}/{proto}" if port is not None and proto else f"{host}:{port or ''}"


def build_reports(
    conn: Connection,
    blobs: BlobStore,
    loaded_policy,
    now: datetime,
    scan_config: ScanConfig | None = None,
) -> list[BuiltReport]:
    data = gather(conn, loaded_policy, now, scan_config=scan_config)
    stamp = now.strftime("%Y-%m-%dT%H%M%SZ")
    day = now.strftime("%Y/%m/%d")
    outputs = (
        (
            "posture",
            "text/html",
            f"reports/posture/{day}/posture-{stamp}.html",
            render_posture_html(data),
        ),
        ("poam", "text/csv", f"reports/poam/{day}/poam-{stamp}.csv", render_poam_csv(data)),
    )
    built = []
    for kind, media_type, path, content in outputs:
        stored = blobs.put(path, content)
        report_id = store.record_report(
            conn,
            kind,
            media_type,
            data.period_start,
            data.period_end,
            stored.uri,
            stored.sha256,
            stored.size,
            loaded_policy.sha256,
            now,
        )
        events.emit(
            conn,
            "report.ready",
            f"report:{report_id}",
            {"kind": kind, "uri": stored.uri, "sha256": stored.sha256},
        )
        built.append(BuiltReport(report_id, kind, stored.uri, stored.sha256))
    conn.commit()
    return built

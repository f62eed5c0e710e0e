"""report: the posture report (HTML) and the POA&M (CSV), dated, hashed and recorded; and the
compliance packs (FedRAMP, PCI DSS, SOC 2, ISO 27001) for a period.

A pack is built from the evidence queries of the registry below: each takes the connection and
the period and returns rows, read as of the period's end. Each framework's YAML names the
queries that prove each of its controls; a framework naming a query missing here is refused.
Every piece of a pack is written through the injected blob store, recorded in ``reports`` with
its sha256 and the framework, and announced once with ``report.ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

from autosec.config.estate import ScanConfig
from autosec.reporting.framework import Framework, FrameworkError, LoadedFramework, load_framework
from autosec.reporting.packs import Pack, build_pack
from autosec.reporting.period import Period
from autosec.reporting.pieces import MANIFEST, render_pack
from autosec.reporting.poam import render_poam_csv
from autosec.reporting.posture import ReportData, ReportFinding, render_posture_html
from autosec.stages.blobs import BlobStore
from autosec.store import events, inventory, remediation, scans
from autosec.store import inventory_quality as quality
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
                known_exploited=bool(f.get("known_exploited")),
                kev_due_date=f.get("kev_due_date"),
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
        inventory_quality=quality.latest_quality(conn, now.date()),
        inventory_trend=quality.quality_trend(conn, since.date(), now.date()),
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


# --- compliance packs -------------------------------------------------------------------------

EvidenceQuery = Callable[[Connection, Period], list[dict] | None]

# Evidence id (as the framework YAML files cite it) -> the query that returns its rows. What each
# row holds is described in autosec.reporting.packs.PACK_EVIDENCE.
EVIDENCE_QUERIES: dict[str, EvidenceQuery] = {
    "inventory": store.inventory_at_end,
    "inventory_changes": store.inventory_changes,
    "scan_coverage": store.scan_coverage,
    "scan_evidence": store.scan_evidence,
    "findings": store.findings_at_end,
    "finding_fixes": store.finding_fixes,
    "exceptions": store.exceptions_in_period,
    "approval_log": store.approval_log,
    "action_log": store.action_log,
    "policy_versions": store.policy_versions,
    "blind_spots": store.blind_spots_in_period,
    "intel_feeds": store.intel_feeds,
}


def unknown_evidence(framework: Framework) -> list[str]:
    """Evidence ids the framework's controls cite that no registered query answers."""
    return [e for e in framework.evidence_ids if e not in EVIDENCE_QUERIES]


def pack_framework(framework_id: str) -> LoadedFramework:
    """The framework, refused with its file named when a control cites an unknown query."""
    loaded = load_framework(framework_id)
    unknown = unknown_evidence(loaded.framework)
    if unknown:
        raise FrameworkError(
            loaded.file,
            [
                f"controls cite evidence queries that do not exist: {unknown} "
                f"(registered: {sorted(EVIDENCE_QUERIES)})"
            ],
        )
    return loaded


def gather_evidence(conn: Connection, period: Period) -> dict[str, list[dict] | None]:
    return {evidence_id: query(conn, period) for evidence_id, query in EVIDENCE_QUERIES.items()}


def assemble_pack(
    conn: Connection,
    framework_id: str,
    period: Period,
    loaded_policy,
    scan_config: ScanConfig | None = None,
) -> Pack:
    """The pack's figures for ``period``, from the store (reads only)."""
    loaded = pack_framework(framework_id)
    evidence = gather_evidence(conn, period)
    covered = coverage_inputs(conn, scan_config or ScanConfig(), period.end_before)
    return build_pack(
        loaded,
        period,
        loaded_policy.policy.version,
        loaded_policy.sha256,
        evidence,
        covered["coverage_map"],
    )


def product_version() -> str:
    try:
        return metadata.version("autosec")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class BuiltPiece:
    kind: str
    media_type: str
    sha256: str
    size: int
    uri: str | None = None
    report_id: int | None = None


@dataclass(frozen=True)
class BuiltPack:
    framework: str
    period: Period
    manifest_sha256: str
    pieces: tuple[BuiltPiece, ...]
    pack_id: int | None = None
    reused: bool = False
    dry_run: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Small and JSON-friendly: what a task hands on (ids and counts, not data)."""
        return {
            "framework": self.framework,
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "pack_id": self.pack_id,
            "manifest_sha256": self.manifest_sha256,
            "reused": self.reused,
            "dry_run": self.dry_run,
            "report_ids": [p.report_id for p in self.pieces if p.report_id is not None],
            **self.figures,
        }


def _figures(pack: Pack) -> dict[str, Any]:
    return {
        "assets": pack.coverage.assets,
        "coverage": pack.coverage.share,
        "open_findings": sum(1 for f in pack.findings if f.is_open),
        "poam_open_items": len(pack.open_items),
    }


def _recorded(existing: dict, period: Period, figures: dict[str, Any]) -> BuiltPack:
    return BuiltPack(
        framework=existing["framework"],
        period=period,
        manifest_sha256=existing["manifest_sha256"],
        pack_id=existing["id"],
        reused=True,
        figures=figures,
        pieces=tuple(
            BuiltPiece(r["kind"], r["media_type"], r["sha256"], r["size_bytes"], r["path"], r["id"])
            for r in existing["reports"]
        ),
    )


def build_compliance_pack(
    conn: Connection,
    blobs: BlobStore,
    loaded_policy,
    framework_id: str,
    period: Period,
    now: datetime,
    scan_config: ScanConfig | None = None,
    dry_run: bool = False,
    run_ref: str | None = None,
) -> BuiltPack:
    """Build, write and record one pack. The same framework, period and data give the same
    bytes: when that pack is already recorded, nothing is written again and it is returned.
    ``dry_run`` builds and hashes every piece and writes and records nothing."""
    pack = assemble_pack(conn, framework_id, period, loaded_policy, scan_config)
    pieces = render_pack(pack, product_version())
    manifest = next(p for p in pieces if p.name == MANIFEST)
    figures = _figures(pack)
    if dry_run:
        return BuiltPack(
            framework_id,
            period,
            manifest.sha256,
            tuple(BuiltPiece(p.name, p.media_type, p.sha256, p.size) for p in pieces),
            dry_run=True,
            figures=figures,
        )
    existing = store.find_pack(conn, framework_id, period.start, period.end, manifest.sha256)
    if existing is not None:
        return _recorded(existing, period, figures)
    folder = f"reports/packs/{framework_id}/{period.label}/{manifest.sha256[:16]}"
    stored = []
    for piece in pieces:
        blob = blobs.put(f"{folder}/{piece.filename}", piece.content)
        if blob.sha256 != piece.sha256:
            raise RuntimeError(
                f"pack {pack.slug}: {piece.filename} was stored as sha256 {blob.sha256}, "
                f"built as {piece.sha256}"
            )
        stored.append((piece, blob))
    recorded = store.record_pack(
        conn,
        framework_id,
        pack.framework.version,
        pack.framework_sha256,
        period.start,
        period.end,
        loaded_policy.sha256,
        manifest.sha256,
        [(p.name, p.media_type, b.uri, b.sha256, b.size) for p, b in stored],
        now,
        run_ref,
    )
    if recorded is None:  # the same pack was recorded meanwhile by another run
        existing = store.find_pack(conn, framework_id, period.start, period.end, manifest.sha256)
        return _recorded(existing, period, figures)
    pack_id, report_ids = recorded
    manifest_uri = next(b.uri for p, b in stored if p.name == MANIFEST)
    events.emit(
        conn,
        "report.ready",
        f"report_pack:{pack_id}",
        {
            "kind": "compliance_pack",
            "framework": framework_id,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "uri": manifest_uri,
            "sha256": manifest.sha256,
            "pieces": len(stored),
        },
    )
    conn.commit()
    return BuiltPack(
        framework_id,
        period,
        manifest.sha256,
        tuple(
            BuiltPiece(p.name, p.media_type, b.sha256, b.size, b.uri, report_id)
            for (p, b), report_id in zip(stored, report_ids, strict=True)
        ),
        pack_id=pack_id,
        figures=figures,
    )

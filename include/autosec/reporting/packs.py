"""Compliance packs: a framework's evidence for one period, turned into figures and tables.

The report stage runs the evidence queries (each returns plain rows for the period) and hands
the rows here; :func:`build_pack` computes what the pack shows and :func:`pack_view` formats
it for the HTML and PDF renderers, so both show the same figures. Everything here is pure: no
clock (the pack is "as of" the period's end), no database, no file. The same rows give the same
pack, whatever order they came in.

What a pack shows:

- scan coverage: the share of the inventory scanned successfully in the period, per asset kind
  and per engine, the assets not scanned, and the coverage map of detections per asset kind;
- findings open at the period's end by age and severity;
- remediation deadlines: per due-date tier, fixed on time, fixed late, open past due; fixes that
  the framework wants confirmed, with the rescan that confirmed them;
- the POA&M, one item per unique vulnerability (see :mod:`autosec.reporting.poam`);
- exceptions with their approver and expiry, the approval and action log with the policy
  version and hash each decision was made under, blind spots, inventory changes, intelligence
  feeds, and the sha256 of every raw scanner output the pack cites.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from autosec.domain.models import FindingStatus, Severity
from autosec.reporting.framework import KEV_TIER, Framework, LoadedFramework
from autosec.reporting.period import Period
from autosec.reporting.poam import Weakness, group_weaknesses, poam_row
from autosec.reporting.posture import (
    SEVERITY_ORDER,
    ReportData,
    ReportFinding,
    coverage_map_rows,
    finding_sort_key,
    format_when,
)

# The evidence the builder reads, by id, and what each row holds. The report stage registers
# one query per id; a framework's controls cite these ids.
PACK_EVIDENCE: Mapping[str, str] = {
    "inventory": "assets in the inventory at the period's end: asset_id, name, kind, owner, "
    "environment, criticality",
    "inventory_changes": "inventory changes recorded in the period: change, count",
    "scan_coverage": "per asset and engine, scan runs that finished in the period: asset_id, "
    "engine, succeeded, failed, last_success_at",
    "scan_evidence": "raw scanner output of the period's runs and of the findings cited: sha256, "
    "path, size_bytes, media_type, scan_run_id, engine, finished_at",
    "findings": "findings that existed at the period's end and were not fixed before it, with "
    "their status at the end and the KEV due date of their CVEs",
    "finding_fixes": "findings fixed in the period: fingerprint, fixed_at, scan_run_id and the "
    "status of the rescan that closed them",
    "exceptions": "risk acceptances and false positives in force or decided in the period, with "
    "requester, approver and expiry (absent when the store has no exceptions table)",
    "approval_log": "approval requests of the period with every decision and its policy hash",
    "action_log": "actions planned in the period with the policy rule, version and hash",
    "policy_versions": "policy versions that decided in the period: version, hash, decisions",
    "blind_spots": "addresses seen in the period that the inventory does not list",
    "intel_feeds": "vulnerability intelligence feeds loaded by the period's end: feed, version, "
    "feed date, records, sha256",
}

AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30 days", 0, 30),
    ("31-60 days", 31, 60),
    ("61-90 days", 61, 90),
    ("91-180 days", 91, 180),
    ("over 180 days", 181, None),
)
# How many rows the PDF and HTML tables show; the complete lists are in the CSV, XLSX and OCSF.
TABLE_LIMIT = 50
LOG_LIMIT = 200
EVIDENCE_LIMIT = 2000


# ------------------------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _as_datetime(value: Any, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str):
        try:
            return _as_datetime(datetime.fromisoformat(value), what)
        except ValueError:
            raise ValueError(f"{what}: not an ISO date or time: {value!r}") from None
    raise TypeError(f"{what}: expected a date or time, got {type(value).__name__}")


def _day(value: Any, what: str) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    moment = _as_datetime(value, what)
    return None if moment is None else moment.astimezone(UTC).date()


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def location_text(location: Mapping[str, Any] | None) -> str:
    """A finding's location as one line: the URL, file:line, or host:port/protocol."""
    location = location or {}
    if location.get("url"):
        return str(location["url"])
    if location.get("file"):
        return f"{location['file']}:{location.get('line', '')}".rstrip(":")
    if location.get("purl"):
        return str(location["purl"])
    host, port = location.get("host", ""), location.get("port")
    proto = location.get("protocol")
    if port is None:
        return str(host)
    return f"{host}:{port}/{proto}" if proto else f"{host}:{port}"


# ------------------------------------------------------------------------------ findings


@dataclass(frozen=True)
class PackFinding(ReportFinding):
    """A finding as a pack sees it at the period's end.

    ``status`` is the status at the end of the period, ``due_date`` the framework's (its tier's
    days from detection, or the policy's due date, or the KEV due date when earlier), ``tier``
    the deadline it is held to. ``fixed_at`` is set when it was fixed in the period, and
    ``fix_confirmed`` when the scan that closed it succeeded.
    """

    asset_kind: str = ""
    description: str = ""
    cwe: str | None = None
    cvss_score: float | None = None
    cvss_vector: str | None = None
    cvss_version: str | None = None
    location_fields: Mapping[str, Any] = field(default_factory=dict)
    priority: str = ""
    policy_due_date: date | None = None
    tier: str | None = None
    fixed_at: datetime | None = None
    fix_scan_run_id: int | None = None
    fix_confirmed: bool = False

    def __post_init__(self) -> None:
        # pack_findings hands over values it already parsed and checked: skip the second pass
        # (a pack may hold hundreds of thousands of findings).
        typed = (
            isinstance(self.severity, Severity)
            and isinstance(self.status, FindingStatus)
            and isinstance(self.cve_ids, tuple)
        )
        if not typed:
            super().__post_init__()

    @property
    def first_seen_day(self) -> date | None:
        return _day(self.first_seen, f"finding {self.fingerprint!r} first_seen")

    def age_days(self, on: date) -> int:
        first = self.first_seen_day
        return max(0, (on - first).days) if first else 0


def framework_due(
    framework: Framework,
    severity: Severity,
    first_seen: date | None,
    policy_due: date | None,
    kev_due: date | None,
) -> tuple[str | None, date | None]:
    """(tier, due date) under the framework: the tier's days from detection (or the policy's
    due date when the tier sets none), replaced by the KEV due date when that is earlier."""
    tier = framework.tier_for(severity)
    name, due = None, None
    if tier is not None:
        name = tier.name
        if tier.days is not None:
            due = first_seen + timedelta(days=tier.days) if first_seen else None
        else:
            due = policy_due
    if framework.kev_due_date_wins and kev_due is not None and (due is None or kev_due < due):
        return KEV_TIER, kev_due
    return name, due


_SEVERITIES = {s.value: s for s in Severity}
_STATUSES = {s.value: s for s in FindingStatus}


def _finding_status(value: Any) -> FindingStatus:
    try:
        return FindingStatus(str(value).strip().lower())
    except ValueError:
        raise ValueError(
            f"unknown status {value!r}: expected one of {', '.join(s.value for s in FindingStatus)}"
        ) from None


def _parse(parse: Any, value: Any, where: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _latest_fixes(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        fingerprint = _text(row.get("fingerprint")).strip()
        when = _as_datetime(row.get("fixed_at"), f"fix of {fingerprint!r}")
        if when is None:
            raise ValueError(f"fix of finding {fingerprint!r} has no fixed_at: {dict(row)!r}")
        kept = latest.get(fingerprint)
        if kept is None or (when, _text(row.get("scan_run_id")).zfill(20)) > (
            _as_datetime(kept.get("fixed_at"), "fix"),
            _text(kept.get("scan_run_id")).zfill(20),
        ):
            latest[fingerprint] = row
    return latest


def pack_findings(
    framework: Framework,
    period: Period,
    rows: Iterable[Mapping[str, Any]],
    fixes: Iterable[Mapping[str, Any]] = (),
) -> list[PackFinding]:
    """Finding rows as PackFindings with the framework's due dates, most urgent first."""
    fixed = _latest_fixes(fixes)
    end_before = period.end_before
    last_instant = end_before - timedelta(microseconds=1)
    result = []
    for row in rows:
        fingerprint = _text(row.get("fingerprint")).strip()
        where = f"finding {fingerprint!r}"
        if not fingerprint:
            raise ValueError(f"finding row without a fingerprint: {dict(row)!r}")
        severity = _SEVERITIES.get(row.get("severity")) or _parse(
            Severity.parse, row.get("severity"), where
        )
        status = _STATUSES.get(row.get("status")) or _parse(
            _finding_status, row.get("status"), where
        )
        kev_due = _day(row.get("kev_due_date"), f"{where} kev_due_date")
        policy_due = _day(row.get("due_date"), f"{where} due_date")
        first_seen = _as_datetime(row.get("first_seen"), f"{where} first_seen")
        last_seen = _as_datetime(row.get("last_seen"), f"{where} last_seen")
        if last_seen is not None and last_seen >= end_before:
            last_seen = last_instant  # as of the period's end
        tier, due = framework_due(
            framework, severity, first_seen.date() if first_seen else None, policy_due, kev_due
        )  # first_seen is in UTC: its date is the day of detection the deadline counts from
        fix = fixed.get(fingerprint) if status is FindingStatus.FIXED else None
        location = row.get("location") or {}
        if not isinstance(location, Mapping):
            raise TypeError(f"{where}: location must be a mapping, got {type(location).__name__}")
        score = row.get("cvss_score")
        result.append(
            PackFinding(
                fingerprint=fingerprint,
                asset_id=_text(row.get("asset_id")),
                asset_name=_text(row.get("asset_name") or row.get("asset_id")),
                owner=row.get("owner") or None,
                engine=_text(row.get("engine")),
                rule_id=_text(row.get("rule_id")),
                title=_text(row.get("title")),
                severity=severity,
                status=status,
                first_seen=first_seen,
                last_seen=last_seen,
                due_date=due,
                cve_ids=tuple(sorted({c.strip().upper() for c in row.get("cve_ids") or ()})),
                location=location_text(location),
                evidence_sha256=_text(row.get("evidence_sha256")).strip() or None,
                known_exploited=kev_due is not None,
                kev_due_date=kev_due,
                asset_kind=_text(row.get("asset_kind")),
                description=_text(row.get("description")),
                cwe=row.get("cwe") or None,
                cvss_score=None if score is None else float(score),
                cvss_vector=row.get("cvss_vector") or None,
                cvss_version=_text(row.get("cvss_version")) or None,
                location_fields=dict(location),
                priority=_text(row.get("priority")),
                policy_due_date=policy_due,
                tier=tier,
                fixed_at=None if fix is None else _as_datetime(fix.get("fixed_at"), where),
                fix_scan_run_id=None if fix is None else fix.get("scan_run_id"),
                fix_confirmed=bool(
                    fix is not None
                    and fix.get("scan_run_id") is not None
                    and fix.get("scan_status") == "succeeded"
                ),
            )
        )
    result.sort(key=finding_sort_key)
    return result


# ------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class CoverageRow:
    key: str
    assets: int
    scanned: int

    @property
    def share(self) -> float | None:
        return _share(self.scanned, self.assets)


@dataclass(frozen=True)
class EngineCoverage:
    engine: str
    assets_scanned: int
    runs_succeeded: int
    runs_failed: int
    by_kind: Mapping[str, int]


@dataclass(frozen=True)
class Coverage:
    """Scan coverage of the period: which share of the inventory some engine scanned."""

    assets: int
    scanned: int
    target: float | None
    by_kind: tuple[CoverageRow, ...]
    by_engine: tuple[EngineCoverage, ...]
    unscanned: tuple[Mapping[str, str], ...]

    @property
    def share(self) -> float | None:
        return _share(self.scanned, self.assets)

    @property
    def target_met(self) -> bool | None:
        if self.target is None:
            return None
        return self.share is not None and self.share >= self.target


def coverage_of(
    inventory: Iterable[Mapping[str, Any]],
    scans: Iterable[Mapping[str, Any]],
    target: float | None,
) -> Coverage:
    assets = {_text(a.get("asset_id")): a for a in inventory}
    kinds = {asset_id: _text(a.get("kind")) or "unknown" for asset_id, a in assets.items()}
    scanned: set[str] = set()
    engines: dict[str, dict[str, Any]] = {}
    for row in scans:
        asset_id = _text(row.get("asset_id"))
        if asset_id not in assets:
            continue  # a retired or unknown asset is outside the period's inventory
        engine = engines.setdefault(
            _text(row.get("engine")), {"assets": set(), "ok": 0, "failed": 0}
        )
        succeeded = int(row.get("succeeded") or 0)
        engine["ok"] += succeeded
        engine["failed"] += int(row.get("failed") or 0)
        if succeeded:
            engine["assets"].add(asset_id)
            scanned.add(asset_id)
    kind_totals = Counter(kinds.values())
    kind_scanned = Counter(kinds[a] for a in scanned)
    by_kind = tuple(
        CoverageRow(kind, kind_totals[kind], kind_scanned[kind]) for kind in sorted(kind_totals)
    )
    by_engine = tuple(
        EngineCoverage(
            name,
            len(e["assets"]),
            e["ok"],
            e["failed"],
            dict(sorted(Counter(kinds[a] for a in e["assets"]).items())),
        )
        for name, e in sorted(engines.items())
    )
    unscanned = tuple(
        {
            "asset_id": asset_id,
            "name": _text(assets[asset_id].get("name")),
            "kind": kinds[asset_id],
            "owner": _text(assets[asset_id].get("owner")),
            "environment": _text(assets[asset_id].get("environment")),
        }
        for asset_id in sorted(set(assets) - scanned)
    )
    return Coverage(len(assets), len(scanned), target, by_kind, by_engine, unscanned)


@dataclass(frozen=True)
class AgeTable:
    """Findings open at the period's end: severity x age bucket."""

    buckets: tuple[str, ...]
    counts: Mapping[Severity, tuple[int, ...]]

    def total(self, severity: Severity) -> int:
        return sum(self.counts[severity])

    @property
    def column_totals(self) -> tuple[int, ...]:
        return tuple(
            sum(self.counts[s][i] for s in SEVERITY_ORDER) for i in range(len(self.buckets))
        )


def age_bucket(age_days: int) -> int:
    for index, (_, low, high) in enumerate(AGE_BUCKETS):
        if age_days >= low and (high is None or age_days <= high):
            return index
    return len(AGE_BUCKETS) - 1


def age_table(findings: Iterable[PackFinding], on: date) -> AgeTable:
    counts = {s: [0] * len(AGE_BUCKETS) for s in SEVERITY_ORDER}
    for finding in findings:
        if finding.is_open:
            counts[finding.severity][age_bucket(finding.age_days(on))] += 1
    return AgeTable(tuple(b[0] for b in AGE_BUCKETS), {s: tuple(c) for s, c in counts.items()})


@dataclass(frozen=True)
class SlaRow:
    """Deadline adherence of one due-date tier in the period."""

    tier: str
    fixed_on_time: int = 0
    fixed_late: int = 0
    open_overdue: int = 0
    open_within: int = 0

    @property
    def adherence(self) -> float | None:
        """Fixed on time over every finding whose deadline was tested in the period."""
        return _share(self.fixed_on_time, self.fixed_on_time + self.fixed_late + self.open_overdue)


def sla_rows(framework: Framework, findings: Iterable[PackFinding], on: date) -> list[SlaRow]:
    """Per tier: fixed in the period by / after the due date, and open past / within it at
    ``on`` (the period's last day: a finding due that day is not yet late)."""
    tally: dict[str, Counter[str]] = {name: Counter() for name in framework.tier_names}
    for finding in findings:
        if finding.tier is None or finding.due_date is None:
            continue
        counts = tally.setdefault(finding.tier, Counter())
        if finding.status is FindingStatus.FIXED and finding.fixed_at is not None:
            late = finding.fixed_at.astimezone(UTC).date() > finding.due_date
            counts["fixed_late" if late else "fixed_on_time"] += 1
        elif finding.is_open:
            counts["open_overdue" if finding.due_date < on else "open_within"] += 1
    return [SlaRow(tier, **counts) for tier, counts in tally.items()]


@dataclass(frozen=True)
class FixVerification:
    """Fixes the framework wants confirmed by a rescan (e.g. PCI DSS 11.3.1: high, critical)."""

    severities: tuple[Severity, ...]
    confirmed: tuple[PackFinding, ...]
    unconfirmed: tuple[PackFinding, ...]


def fix_verification(framework: Framework, findings: Iterable[PackFinding]) -> FixVerification:
    wanted = set(framework.verified_fix_severities)
    fixed = [
        f
        for f in findings
        if f.status is FindingStatus.FIXED and f.fixed_at is not None and f.severity in wanted
    ]
    return FixVerification(
        tuple(s for s in SEVERITY_ORDER if s in wanted),
        tuple(f for f in fixed if f.fix_confirmed),
        tuple(f for f in fixed if not f.fix_confirmed),
    )


def exception_state(row: Mapping[str, Any], period: Period) -> str:
    """What an exception was at the period's end, from its dates (later changes ignored)."""
    end = period.end_before
    decided = _as_datetime(row.get("decided_at"), "exception decided_at")
    approved = _as_datetime(row.get("approved_at"), "exception approved_at")
    expires = _as_datetime(row.get("expires_at"), "exception expires_at")
    status = _text(row.get("status"))
    if status in ("rejected", "revoked") and decided is not None and decided < end:
        return status
    if approved is not None and approved < end:
        return "expired" if expires is not None and expires < end else "approved"
    return "requested"


@dataclass(frozen=True)
class EvidenceRef:
    """One piece of raw scanner output the pack cites, by sha256."""

    sha256: str
    path: str = ""
    size_bytes: int | None = None
    media_type: str = ""
    scan_run_id: int | None = None
    engine: str = ""
    finished_at: datetime | None = None
    cited_by_findings: int = 0


def evidence_refs(
    rows: Iterable[Mapping[str, Any]], findings: Iterable[PackFinding]
) -> list[EvidenceRef]:
    """Every raw output of the period's scans and every one a finding cites, once per sha256
    (the earliest run that produced it), with how many findings cite it."""
    cited = Counter(f.evidence_sha256 for f in findings if f.evidence_sha256)
    chosen: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        sha = _text(row.get("sha256")).strip().lower()
        kept = chosen.get(sha)
        if kept is None or (_text(row.get("scan_run_id")).zfill(20), _text(row.get("path"))) < (
            _text(kept.get("scan_run_id")).zfill(20),
            _text(kept.get("path")),
        ):
            chosen[sha] = row
    refs = [
        EvidenceRef(
            sha256=sha,
            path=_text(row.get("path")),
            size_bytes=None if row.get("size_bytes") is None else int(row["size_bytes"]),
            media_type=_text(row.get("media_type")),
            scan_run_id=row.get("scan_run_id"),
            engine=_text(row.get("engine")),
            finished_at=_as_datetime(row.get("finished_at"), f"evidence {sha}"),
            cited_by_findings=cited.get(sha, 0),
        )
        for sha, row in chosen.items()
    ]
    refs += [
        EvidenceRef(sha256=sha, cited_by_findings=n)
        for sha, n in cited.items()
        if sha not in chosen
    ]
    refs.sort(
        key=lambda r: (
            r.finished_at is None,
            r.finished_at or datetime.min.replace(tzinfo=UTC),
            r.sha256,
        )
    )
    return refs


# --------------------------------------------------------------------------------- pack


@dataclass(frozen=True)
class Pack:
    """Everything a compliance pack shows, computed once from the period's evidence rows."""

    framework: Framework
    framework_file: str
    framework_sha256: str
    period: Period
    policy_version: str
    policy_hash: str
    findings: tuple[PackFinding, ...]
    coverage: Coverage
    coverage_map: Mapping[str, Mapping[str, Mapping[str, Any]]]
    age: AgeTable
    sla: tuple[SlaRow, ...]
    fixes: FixVerification
    open_items: tuple[Weakness, ...]
    closed_items: tuple[Weakness, ...]
    exceptions: tuple[Mapping[str, Any], ...] | None
    approvals: tuple[Mapping[str, Any], ...]
    actions: tuple[Mapping[str, Any], ...]
    policy_versions: tuple[Mapping[str, Any], ...]
    blind_spots: tuple[Mapping[str, Any], ...]
    inventory_changes: tuple[Mapping[str, Any], ...]
    intel_feeds: tuple[Mapping[str, Any], ...]
    evidence: tuple[EvidenceRef, ...]
    evidence_rows: Mapping[str, int | None]

    @property
    def as_of(self) -> date:
        return self.period.end

    @property
    def slug(self) -> str:
        return f"{self.framework.id}-{self.period.label}"

    @property
    def poam_controls(self) -> str:
        return ", ".join(self.framework.poam_controls)

    def report_data(self) -> ReportData:
        """The pack as the POA&M builder's input: findings carry the framework's due dates."""
        return ReportData(
            generated_at=datetime.combine(self.as_of, time(), UTC),
            period_start=self.period.start,
            period_end=self.period.end,
            policy_version=self.policy_version,
            policy_hash=self.policy_hash,
            assets_total=self.coverage.assets,
            assets_scanned=self.coverage.scanned,
            findings=self.findings,
        )

    def open_poam_rows(self) -> list[dict[str, str]]:
        data = self.report_data()
        return [poam_row(w, data, self.poam_controls) for w in self.open_items]

    def closed_poam_rows(self) -> list[dict[str, str]]:
        """Items whose every finding was fixed in the period; dated by the last fix."""
        data = self.report_data()
        rows = []
        for weakness in self.closed_items:
            row = poam_row(weakness, data, self.poam_controls)
            fixes = [f for f in weakness.findings if isinstance(f, PackFinding) and f.fixed_at]
            last = max(f.fixed_at for f in fixes) if fixes else None
            runs = sorted({str(f.fix_scan_run_id) for f in fixes if f.fix_scan_run_id})
            confirmed = sum(1 for f in fixes if f.fix_confirmed)
            row["Status Date"] = format_when(last)[:10]
            row["Comments"] = (
                f"Closed: {len(weakness.findings)} finding(s) fixed, {confirmed} confirmed by a "
                f"successful rescan (scan runs {', '.join(runs) or 'none'}); policy "
                f"{self.policy_version} sha256 {self.policy_hash}"
            )
            rows.append(row)
        return rows


def _rows(evidence: Mapping[str, Any], evidence_id: str) -> list[Mapping[str, Any]]:
    rows = evidence.get(evidence_id)
    return list(rows) if rows is not None else []


def _sorted_rows(rows: Iterable[Mapping[str, Any]], *keys: str) -> tuple[Mapping[str, Any], ...]:
    return tuple(sorted(rows, key=lambda r: tuple(format_when(r.get(k)) for k in keys)))


def build_pack(
    loaded: LoadedFramework,
    period: Period,
    policy_version: str,
    policy_hash: str,
    evidence: Mapping[str, Sequence[Mapping[str, Any]] | None],
    coverage_map: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> Pack:
    """The pack for ``period`` from the evidence rows (evidence id -> rows; ``None`` for a
    query the store cannot answer, such as exceptions before that table exists)."""
    missing = sorted(set(PACK_EVIDENCE) - set(evidence))
    if missing:
        raise ValueError(f"pack {loaded.framework.id} {period.label}: evidence missing: {missing}")
    framework = loaded.framework
    findings = pack_findings(
        framework, period, _rows(evidence, "findings"), _rows(evidence, "finding_fixes")
    )
    min_rank = framework.poam_min_severity.rank
    open_items = group_weaknesses(f for f in findings if f.severity.rank >= min_rank)
    open_keys = {w.key for w in open_items}
    closed = [
        w
        for w in group_weaknesses(
            (
                f
                for f in findings
                if f.status is FindingStatus.FIXED and f.fixed_at and f.severity.rank >= min_rank
            ),
            open_only=False,
        )
        if w.key not in open_keys
    ]
    exceptions = evidence.get("exceptions")
    return Pack(
        framework=framework,
        framework_file=loaded.file,
        framework_sha256=loaded.sha256,
        period=period,
        policy_version=policy_version,
        policy_hash=policy_hash,
        findings=tuple(findings),
        coverage=coverage_of(
            _rows(evidence, "inventory"),
            _rows(evidence, "scan_coverage"),
            framework.coverage_target,
        ),
        coverage_map=coverage_map or {},
        age=age_table(findings, period.end),
        sla=tuple(sla_rows(framework, findings, period.end)),
        fixes=fix_verification(framework, findings),
        open_items=tuple(open_items),
        closed_items=tuple(closed),
        exceptions=None
        if exceptions is None
        else tuple(
            {**row, "state_at_end": exception_state(row, period)}
            for row in sorted(exceptions, key=lambda r: _text(r.get("id")).zfill(20))
        ),
        approvals=tuple(
            sorted(_rows(evidence, "approval_log"), key=lambda r: _text(r.get("id")).zfill(20))
        ),
        actions=tuple(
            sorted(_rows(evidence, "action_log"), key=lambda r: _text(r.get("id")).zfill(20))
        ),
        policy_versions=_sorted_rows(_rows(evidence, "policy_versions"), "first_at", "policy_hash"),
        blind_spots=_sorted_rows(_rows(evidence, "blind_spots"), "address", "port", "source"),
        inventory_changes=_sorted_rows(_rows(evidence, "inventory_changes"), "change"),
        intel_feeds=_sorted_rows(_rows(evidence, "intel_feeds"), "feed"),
        evidence=tuple(evidence_refs(_rows(evidence, "scan_evidence"), findings)),
        evidence_rows={
            eid: (None if evidence.get(eid) is None else len(evidence[eid] or ()))
            for eid in sorted(evidence)
        },
    )


# --------------------------------------------------------------------------------- view


@dataclass(frozen=True)
class PieceRef:
    """A file of the pack that a later piece cites by its sha256."""

    name: str
    filename: str
    media_type: str
    sha256: str
    size: int


def _bounded(rows: Sequence[Any], limit: int) -> tuple[list[Any], int]:
    return list(rows[:limit]), max(0, len(rows) - limit)


def _finding_line(f: PackFinding, on: date) -> dict[str, str]:
    return {
        "severity": f.severity.value,
        "title": f.title,
        "asset": f.asset_name,
        "location": f.location,
        "cves": ", ".join(f.cve_ids),
        "status": f.status.value,
        "first_seen": format_when(f.first_seen)[:10],
        "due": format_when(f.due_date),
        "tier": _text(f.tier),
        "overdue": "yes" if f.is_overdue(on) else "",
        "fixed_at": format_when(f.fixed_at),
        "scan_run": _text(f.fix_scan_run_id),
        "fingerprint": f.fingerprint,
    }


def _weakness_line(w: Weakness, on: date) -> dict[str, str]:
    due = w.scheduled_completion
    assets = sorted({f.asset_name for f in w.findings})
    return {
        "poam_id": w.poam_id,
        "severity": w.severity.value,
        "name": w.lead.title,
        "cves": ", ".join(sorted({c for f in w.findings for c in f.cve_ids})),
        "assets": str(len(assets)),
        "asset_sample": ", ".join(assets[:3])
        + (f" and {len(assets) - 3} more" if len(assets) > 3 else ""),
        "first_seen": min(
            (format_when(f.first_seen)[:10] for f in w.findings if f.first_seen), default=""
        ),
        "due": format_when(due),
        "overdue": "yes" if due is not None and due < on else "",
        "kev": "yes" if any(f.known_exploited for f in w.findings) else "",
    }


def pack_view(pack: Pack, files: Sequence[PieceRef] = ()) -> dict[str, Any]:
    """Everything the HTML and PDF show, formatted, sorted and bounded (tested as data)."""
    on = pack.as_of
    coverage = pack.coverage
    open_findings = [f for f in pack.findings if f.is_open]
    overdue = sum(1 for f in open_findings if f.is_overdue(on))
    kev_open = sum(1 for f in open_findings if f.known_exploited)
    counts = Counter(f.severity for f in open_findings)
    headline = [
        ("Assets in inventory", str(coverage.assets), ""),
        ("Scanned in period", str(coverage.scanned), ""),
        (
            "Scan coverage",
            _percent(coverage.share)
            + ("" if coverage.target is None else f" (target {_percent(coverage.target)})"),
            "bad" if coverage.target_met is False else "",
        ),
        ("Open findings", str(len(open_findings)), ""),
        *[(f"Open {s.value}", str(counts.get(s, 0)), "") for s in SEVERITY_ORDER],
        ("Open past due", str(overdue), "bad" if overdue else ""),
        ("Open known exploited", str(kev_open), "bad" if kev_open else ""),
        ("POA&M open items", str(len(pack.open_items)), ""),
        ("POA&M items closed in period", str(len(pack.closed_items)), ""),
        ("Blind spots", str(len(pack.blind_spots)), "bad" if pack.blind_spots else ""),
    ]
    top_items, more_items = _bounded(pack.open_items, TABLE_LIMIT)
    unscanned, more_unscanned = _bounded(coverage.unscanned, TABLE_LIMIT)
    unconfirmed, more_unconfirmed = _bounded(pack.fixes.unconfirmed, TABLE_LIMIT)
    approvals, more_approvals = _bounded(pack.approvals, LOG_LIMIT)
    actions, more_actions = _bounded(pack.actions, LOG_LIMIT)
    blind, more_blind = _bounded(pack.blind_spots, LOG_LIMIT)
    exceptions = None if pack.exceptions is None else _bounded(pack.exceptions, LOG_LIMIT)
    evidence, more_evidence = _bounded(pack.evidence, EVIDENCE_LIMIT)
    kinds = sorted(
        {k for e in coverage.by_engine for k in e.by_kind} | {r.key for r in coverage.by_kind}
    )
    return {
        "title": f"{pack.framework.name}: {pack.period.label}",
        "framework": {
            "id": pack.framework.id,
            "name": pack.framework.name,
            "version": pack.framework.version,
            "reference": pack.framework.reference,
            "cadence": pack.framework.cadence,
            "file": pack.framework_file,
            "sha256": pack.framework_sha256,
        },
        "period": pack.period.as_dict(),
        "as_of": on.isoformat(),
        "policy": {"version": pack.policy_version, "hash": pack.policy_hash},
        "headline": [{"label": a, "value": b, "flag": c} for a, b, c in headline],
        "controls": [
            {
                "id": c.id,
                "title": c.title,
                "requirement": c.requirement,
                "evidence": [
                    {
                        "id": e,
                        "rows": "not available in this store"
                        if pack.evidence_rows.get(e) is None
                        else str(pack.evidence_rows[e]),
                    }
                    for e in c.evidence
                ],
            }
            for c in pack.framework.controls
        ],
        "coverage": {
            "assets": coverage.assets,
            "scanned": coverage.scanned,
            "share": _percent(coverage.share),
            "share_value": coverage.share,
            "target": None if coverage.target is None else _percent(coverage.target),
            "target_met": coverage.target_met,
            "by_kind": [
                {
                    "kind": r.key,
                    "assets": r.assets,
                    "scanned": r.scanned,
                    "share": _percent(r.share),
                    "share_value": r.share or 0.0,
                }
                for r in coverage.by_kind
            ],
            "kinds": kinds,
            "by_engine": [
                {
                    "engine": e.engine,
                    "assets": e.assets_scanned,
                    "share": _percent(_share(e.assets_scanned, coverage.assets)),
                    "runs_ok": e.runs_succeeded,
                    "runs_failed": e.runs_failed,
                    "per_kind": [str(e.by_kind.get(k, 0)) for k in kinds],
                }
                for e in coverage.by_engine
            ],
            "unscanned": unscanned,
            "more_unscanned": more_unscanned,
        },
        "coverage_map": coverage_map_rows(pack.coverage_map),
        "age": {
            "buckets": list(pack.age.buckets),
            "rows": [
                {
                    "severity": s.value,
                    "counts": list(pack.age.counts[s]),
                    "total": pack.age.total(s),
                }
                for s in SEVERITY_ORDER
            ],
            "totals": list(pack.age.column_totals),
            "total": sum(pack.age.column_totals),
        },
        "sla": [
            {
                "tier": r.tier,
                "fixed_on_time": r.fixed_on_time,
                "fixed_late": r.fixed_late,
                "open_overdue": r.open_overdue,
                "open_within": r.open_within,
                "adherence": _percent(r.adherence),
            }
            for r in pack.sla
        ],
        "fixes": {
            "severities": ", ".join(s.value for s in pack.fixes.severities) or "none",
            "confirmed": len(pack.fixes.confirmed),
            "unconfirmed": len(pack.fixes.unconfirmed),
            "unconfirmed_rows": [_finding_line(f, on) for f in unconfirmed],
            "more_unconfirmed": more_unconfirmed,
        },
        "poam": {
            "open": len(pack.open_items),
            "closed": len(pack.closed_items),
            "findings": sum(len(w.findings) for w in pack.open_items),
            "top": [_weakness_line(w, on) for w in top_items],
            "more": more_items,
            "controls": pack.poam_controls,
        },
        "exceptions": {
            "available": exceptions is not None,
            "rows": [
                {
                    "id": _text(r.get("id")),
                    "kind": _text(r.get("kind")),
                    "scope": _text(r.get("scope")),
                    "target": _text(r.get("target")),
                    "reason": _text(r.get("reason")),
                    "requested_by": _text(r.get("requested_by")),
                    "approved_by": _text(r.get("approved_by")),
                    "approved_at": format_when(r.get("approved_at")),
                    "expires_at": format_when(r.get("expires_at")),
                    "state": _text(r.get("state_at_end")),
                    "findings": _text(r.get("findings")),
                }
                for r in (exceptions[0] if exceptions else [])
            ],
            "more": exceptions[1] if exceptions else 0,
        },
        "approvals": [
            {
                "id": _text(a.get("id")),
                "kind": _text(a.get("kind")),
                "summary": _text(a.get("summary")),
                "requester": _text(a.get("requester")),
                "rule_id": _text(a.get("rule_id")),
                "policy_hash": _text(a.get("policy_hash")),
                "created_at": format_when(a.get("created_at")),
                "status": _text(a.get("status")),
                "decisions": [
                    {
                        "approver": _text(d.get("approver")),
                        "decision": _text(d.get("decision")),
                        "reason": _text(d.get("reason")),
                        "at": format_when(d.get("decided_at")),
                        "policy_hash": _text(d.get("policy_hash")),
                    }
                    for d in sorted(
                        a.get("decisions") or (),
                        key=lambda d: (format_when(d.get("decided_at")), _text(d.get("approver"))),
                    )
                ],
            }
            for a in approvals
        ],
        "more_approvals": more_approvals,
        "actions": [
            {
                "id": _text(a.get("id")),
                "at": format_when(a.get("created_at")),
                "action": _text(a.get("action")),
                "asset": _text(a.get("asset_id")),
                "mode": _text(a.get("mode")),
                "status": _text(a.get("status")) + (" (dry run)" if a.get("dry_run") else ""),
                "rule_id": _text(a.get("rule_id")),
                "policy": f"{_text(a.get('policy_version'))} {_text(a.get('policy_hash'))[:12]}",
                "external_ref": _text(a.get("external_ref")),
            }
            for a in actions
        ],
        "more_actions": more_actions,
        "policy_versions": [
            {
                "version": _text(p.get("policy_version")),
                "hash": _text(p.get("policy_hash")),
                "decisions": _text(p.get("decisions")),
                "first_at": format_when(p.get("first_at")),
                "last_at": format_when(p.get("last_at")),
            }
            for p in pack.policy_versions
        ],
        "blind_spots": [
            {
                "address": _text(b.get("address")),
                "port": _text(b.get("port")),
                "source": _text(b.get("source")),
                "first_seen": format_when(b.get("first_seen")),
                "lifecycle": _text(b.get("lifecycle")),
                "owner": _text(b.get("owner")),
            }
            for b in blind
        ],
        "more_blind_spots": more_blind,
        "inventory_changes": [
            {"change": _text(c.get("change")), "count": _text(c.get("count"))}
            for c in pack.inventory_changes
        ],
        "intel_feeds": [
            {
                "feed": _text(f.get("feed")),
                "version": _text(f.get("version")),
                "feed_date": format_when(f.get("feed_date")),
                "loaded_at": format_when(f.get("loaded_at")),
                "records": _text(f.get("record_count")),
                "sha256": _text(f.get("sha256")),
            }
            for f in pack.intel_feeds
        ],
        "evidence": [
            {
                "sha256": e.sha256,
                "engine": e.engine,
                "scan_run": _text(e.scan_run_id),
                "finished_at": format_when(e.finished_at),
                "size": _text(e.size_bytes),
                "path": e.path or "(no stored copy: cited by findings)",
                "cited_by": str(e.cited_by_findings),
            }
            for e in evidence
        ],
        "evidence_total": len(pack.evidence),
        "more_evidence": more_evidence,
        "files": [
            {
                "name": p.name,
                "filename": p.filename,
                "media_type": p.media_type,
                "sha256": p.sha256,
                "size": str(p.size),
            }
            for p in files
        ],
        "limits": {"table": TABLE_LIMIT, "log": LOG_LIMIT, "evidence": EVIDENCE_LIMIT},
    }


__all__ = [
    "AGE_BUCKETS",
    "PACK_EVIDENCE",
    "AgeTable",
    "Coverage",
    "EvidenceRef",
    "FixVerification",
    "Pack",
    "PackFinding",
    "PieceRef",
    "SlaRow",
    "age_table",
    "build_pack",
    "coverage_of",
    "evidence_refs",
    "exception_state",
    "fix_verification",
    "framework_due",
    "location_text",
    "pack_findings",
    "pack_view",
    "sla_rows",
]

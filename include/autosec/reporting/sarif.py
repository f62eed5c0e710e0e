"""A pack's findings as SARIF 2.1.0: one run per engine, one result per finding not fixed.

Code scanning tools and SARIF viewers read it beside the OCSF file. Each rule carries a
``security-severity`` (the CVSS score when known, else a score for its severity) so viewers
rank results the way autosec does; each result a partial fingerprint (autosec's own, stable
across runs), the asset as a logical location, and the URL or file as a physical one. Accepted
and false-positive findings are results with an external, accepted suppression.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from autosec.domain.models import FindingStatus, Severity
from autosec.reporting.packs import Pack, PackFinding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FINGERPRINT_KEY = "autosec/v1"
LEVELS: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.INFO: "0.0",
}
SUPPRESSION_REASONS = {
    FindingStatus.ACCEPTED: "risk accepted under an approved exception",
    FindingStatus.FALSE_POSITIVE: "false positive under an approved exception",
}


def _security_severity(f: PackFinding) -> str:
    return f"{f.cvss_score:.1f}" if f.cvss_score is not None else SECURITY_SEVERITY[f.severity]


def _locations(f: PackFinding) -> list[dict[str, Any]]:
    location: dict[str, Any] = {
        "logicalLocations": [
            {"name": f.asset_name, "fullyQualifiedName": f.asset_id, "kind": "resource"}
        ]
    }
    fields = f.location_fields
    if fields.get("url"):
        location["physicalLocation"] = {"artifactLocation": {"uri": str(fields["url"])}}
    elif fields.get("file"):
        physical: dict[str, Any] = {"artifactLocation": {"uri": str(fields["file"])}}
        line = fields.get("line")
        if isinstance(line, int) and line >= 1:
            physical["region"] = {"startLine": line}
        location["physicalLocation"] = physical
    elif f.location:
        location["logicalLocations"].append(
            {
                "name": f.location,
                "fullyQualifiedName": f"{f.asset_id}/{f.location}",
                "kind": "resource",
            }
        )
    return [location]


def _rule(rule_id: str, lead: PackFinding) -> dict[str, Any]:
    tags = ["security", *lead.cve_ids, *([lead.cwe] if lead.cwe else [])]
    return {
        "id": rule_id,
        "name": rule_id,
        "shortDescription": {"text": lead.title},
        "defaultConfiguration": {"level": LEVELS[lead.severity]},
        "properties": {"security-severity": _security_severity(lead), "tags": tags},
    }


def _result(f: PackFinding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": LEVELS[f.severity],
        "message": {
            "text": f"{f.title} on {f.asset_name}" + (f" at {f.location}" if f.location else "")
        },
        "locations": _locations(f),
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
        "properties": {
            key: value
            for key, value in {
                "severity": f.severity.value,
                "status": f.status.value,
                "asset_id": f.asset_id,
                "owner": f.owner,
                "cve_ids": list(f.cve_ids),
                "first_seen": f.first_seen.isoformat() if f.first_seen else None,
                "due_date": f.due_date.isoformat() if f.due_date else None,
                "tier": f.tier,
                "known_exploited": f.known_exploited,
                "evidence_sha256": f.evidence_sha256,
                "security-severity": _security_severity(f),
            }.items()
            if value not in (None, "", [])
        },
    }
    if f.status in SUPPRESSION_REASONS:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": SUPPRESSION_REASONS[f.status],
            }
        ]
    return result


def _runs(pack: Pack, product_version: str) -> Iterator[tuple[dict[str, Any], Iterator[dict]]]:
    """Per engine: the run without its results, and its results one at a time."""
    by_engine: dict[str, list[PackFinding]] = defaultdict(list)
    for f in pack.findings:
        if f.status is not FindingStatus.FIXED:
            by_engine[f.engine].append(f)
    for engine in sorted(by_engine):
        findings = by_engine[engine]  # already most urgent first
        leads: dict[str, PackFinding] = {}
        for f in findings:
            leads.setdefault(f.rule_id, f)
        rule_ids = sorted(leads)
        index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
        run = {
            "tool": {
                "driver": {
                    "name": engine,
                    "organization": "autosec",
                    "version": product_version,
                    "rules": [_rule(r, leads[r]) for r in rule_ids],
                }
            },
            "automationDetails": {
                "id": f"autosec/{pack.framework.id}/{pack.period.label}/{engine}"
            },
            "columnKind": "unicodeCodePoints",
            "properties": {
                "framework": pack.framework.id,
                "period_start": pack.period.start.isoformat(),
                "period_end": pack.period.end.isoformat(),
            },
        }
        yield run, (_result(f, index[f.rule_id]) for f in findings)


def sarif_log(pack: Pack, product_version: str) -> dict[str, Any]:
    """The whole SARIF log as one dict (what :func:`render_sarif` writes, piece by piece)."""
    runs = [{**run, "results": list(results)} for run, results in _runs(pack, product_version)]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": runs}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def render_sarif(pack: Pack, product_version: str) -> bytes:
    """The SARIF log as compact UTF-8 JSON with sorted keys (deterministic), written result by
    result: a pack can hold hundreds of thousands of them."""
    out = io.BytesIO()
    out.write(b'{"$schema":' + _dumps(SARIF_SCHEMA) + b',"runs":[')
    for run_index, (run, results) in enumerate(_runs(pack, product_version)):
        out.write(b"," if run_index else b"")
        # Keys in sorted order, as json.dumps(sort_keys=True) would write them.
        keys = sorted([*run, "results"])
        out.write(b"{")
        for key_index, key in enumerate(keys):
            out.write((b"," if key_index else b"") + _dumps(key) + b":")
            if key != "results":
                out.write(_dumps(run[key]))
                continue
            out.write(b"[")
            for result_index, result in enumerate(results):
                out.write((b"," if result_index else b"") + _dumps(result))
            out.write(b"]")
        out.write(b"}")
    out.write(b'],"version":' + _dumps(SARIF_VERSION) + b"}\n")
    return out.getvalue()


__all__ = ["LEVELS", "SARIF_VERSION", "render_sarif", "sarif_log"]

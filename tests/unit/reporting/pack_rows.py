"""Plain evidence rows for compliance pack tests: a small estate in March 2026, with the
shapes the store's evidence queries return and a few hostile values."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from autosec.reporting.framework import load_framework
from autosec.reporting.packs import Pack, build_pack
from autosec.reporting.period import Period

PERIOD = Period.month(2026, 3)
POLICY_VERSION = "2026.03.1"
POLICY_HASH = "9f2c" + "0" * 60
KEV_CVE = "CVE-2021-41773"
KEV_DUE = date(2021, 11, 17)
HOSTILE_TITLE = '=HYPERLINK("http://evil.example","x") <script>alert(1)</script>\x07'
HOSTILE_ASSET = "<img src=x onerror=alert(1)>"
PRODUCT_VERSION = "0.1.0"
COVERAGE_MAP = {
    "host": {
        "open TCP ports": {"coverage": "CHECK", "engines": ["nmap"], "note": ""},
        "secrets in code": {"coverage": "MISSING", "engines": [], "note": "not enabled"},
    },
    "web_app": {"open TCP ports": {"coverage": "LIMITED", "engines": ["nmap"], "note": ""}},
}


def at(month: int, day: int, hour: int = 9, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def finding_row(name: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "fingerprint": f"fp-{name}",
        "asset_id": "web",
        "asset_name": "web-name",
        "asset_kind": "web_app",
        "owner": "team-web",
        "engine": "nmap",
        "rule_id": f"nmap.{name}",
        "title": f"{name} title",
        "description": f"{name} description",
        "severity": "high",
        "status": "open",
        "first_seen": at(3, 2),
        "last_seen": at(3, 30),
        "due_date": date(2026, 12, 31),
        "cve_ids": [],
        "cwe": None,
        "cvss_score": None,
        "cvss_vector": None,
        "cvss_version": None,
        "location": {"host": "10.0.0.1", "port": 443, "protocol": "tcp"},
        "evidence_sha256": "a" * 64,
        "priority": "scheduled",
        "kev_due_date": None,
    }
    row.update(overrides)
    return row


def base_findings() -> list[dict[str, Any]]:
    return [
        finding_row(
            "kev-web",
            title="Apache path traversal",
            cve_ids=[KEV_CVE],
            kev_due_date=KEV_DUE,
            first_seen=at(2, 5),
            cvss_score=7.5,
            cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
            cvss_version="3.1",
            cwe="CWE-22",
        ),
        finding_row(
            "kev-db",
            asset_id="db",
            asset_name="db-name",
            asset_kind="database",
            owner="team-db",
            title="Apache path traversal",
            severity="critical",
            cve_ids=[KEV_CVE.lower()],
            kev_due_date=KEV_DUE,
            first_seen=at(3, 5),
            evidence_sha256="b" * 64,
        ),
        finding_row(
            "ssh-host1",
            asset_id="host1",
            asset_name="host1-name",
            asset_kind="host",
            rule_id="nmap.weak-ssh",
            title="Weak SSH ciphers",
            severity="medium",
            first_seen=at(3, 6),
            location={"host": "10.0.0.3", "port": 22, "protocol": "tcp"},
        ),
        finding_row(
            "ssh-web",
            rule_id="nmap.weak-ssh",
            title="Weak SSH ciphers",
            severity="medium",
            first_seen=at(1, 10),
            location={"host": "10.0.0.1", "port": 22, "protocol": "tcp"},
        ),
        finding_row(
            "old-low",
            asset_id="host1",
            asset_name="host1-name",
            asset_kind="host",
            severity="low",
            cve_ids=["CVE-2023-0001"],
            first_seen=at(9, 1, year=2025),
        ),
        finding_row(
            "fixed-late",
            asset_id="db",
            asset_name="db-name",
            status="fixed",
            first_seen=at(2, 1),
            cve_ids=["CVE-2022-2222"],
        ),
        finding_row("fixed-on-time", status="fixed", first_seen=at(3, 1)),
        finding_row(
            "hostile",
            asset_id="x",
            asset_name=HOSTILE_ASSET,
            owner="@SUM(1+1)",
            title=HOSTILE_TITLE,
            severity="low",
            location={"url": "https://x.example/?q=<b>"},
        ),
        finding_row("banner", severity="info", due_date=None),
        finding_row(
            "accepted",
            asset_id="db",
            asset_name="db-name",
            status="accepted",
            severity="medium",
            location={"file": "app/settings.py", "line": 12},
        ),
    ]


def base_evidence() -> dict[str, list[dict[str, Any]] | None]:
    return {
        "inventory": [
            {
                "asset_id": a,
                "name": f"{a}-name",
                "kind": k,
                "owner": f"team-{a}",
                "environment": "production",
                "criticality": "high",
            }
            for a, k in (
                ("web", "web_app"),
                ("db", "database"),
                ("host1", "host"),
                ("host2", "host"),
            )
        ],
        "inventory_changes": [{"change": "new", "count": 2}, {"change": "changed", "count": 1}],
        "scan_coverage": [
            {
                "asset_id": "web",
                "engine": "nmap",
                "succeeded": 2,
                "failed": 0,
                "last_success_at": at(3, 5),
            },
            {
                "asset_id": "db",
                "engine": "nmap",
                "succeeded": 2,
                "failed": 0,
                "last_success_at": at(3, 20),
            },
            {
                "asset_id": "web",
                "engine": "tls",
                "succeeded": 1,
                "failed": 0,
                "last_success_at": at(3, 5),
            },
            {
                "asset_id": "host1",
                "engine": "nmap",
                "succeeded": 1,
                "failed": 0,
                "last_success_at": at(3, 6),
            },
            {
                "asset_id": "host2",
                "engine": "nmap",
                "succeeded": 0,
                "failed": 1,
                "last_success_at": None,
            },
            {
                "asset_id": "gone",
                "engine": "nmap",
                "succeeded": 1,
                "failed": 0,
                "last_success_at": at(3, 7),
            },
        ],
        "scan_evidence": [
            {
                "sha256": "a" * 64,
                "path": "file:///evidence/1.xml",
                "size_bytes": 100,
                "media_type": "text/xml",
                "scan_run_id": 1,
                "engine": "nmap",
                "finished_at": at(3, 5),
            },
            {
                "sha256": "c" * 64,
                "path": "file:///evidence/5.xml",
                "size_bytes": 50,
                "media_type": "text/xml",
                "scan_run_id": 5,
                "engine": "nmap",
                "finished_at": at(3, 20),
            },
        ],
        "findings": base_findings(),
        "finding_fixes": [
            {
                "fingerprint": "fp-fixed-late",
                "severity": "high",
                "fixed_at": at(3, 20),
                "scan_run_id": 5,
                "engine": "nmap",
                "scan_status": "succeeded",
            },
            {
                "fingerprint": "fp-fixed-on-time",
                "severity": "high",
                "fixed_at": at(3, 10),
                "scan_run_id": None,
                "engine": None,
                "scan_status": None,
            },
        ],
        "exceptions": [
            {
                "id": 3,
                "kind": "risk_acceptance",
                "scope": "cve",
                "target": "CVE-2020-9999",
                "reason": "compensating WAF rule",
                "requested_by": "alice",
                "requested_at": at(3, 3),
                "approved_by": "ciso",
                "approved_at": at(3, 4),
                "expires_at": at(6, 30),
                "status": "approved",
                "decided_by": None,
                "decided_at": None,
                "decision_reason": None,
                "findings": 1,
            },
        ],
        "approval_log": [
            {
                "id": 7,
                "kind": "approval",
                "summary": "ticket for Apache on web",
                "requester": "autosec",
                "approvers": ["ciso"],
                "quorum": 1,
                "rule_id": "prod-needs-approval",
                "policy_hash": POLICY_HASH,
                "created_at": at(3, 5, 10),
                "expires_at": at(3, 8),
                "decided_at": at(3, 5, 11),
                "status": "approved",
                "decisions": [
                    {
                        "approver": "ciso",
                        "decision": "approve",
                        "reason": "patch window agreed",
                        "policy_hash": POLICY_HASH,
                        "decided_at": at(3, 5, 11),
                    }
                ],
            },
        ],
        "action_log": [
            {
                "id": 1,
                "action": "ticket",
                "mode": "in_the_loop",
                "status": "applied",
                "dry_run": False,
                "external_ref": "SEC-42",
                "created_at": at(3, 5, 10),
                "updated_at": at(3, 5, 12),
                "asset_id": "web",
                "rule_id": "prod-needs-approval",
                "policy_version": POLICY_VERSION,
                "policy_hash": POLICY_HASH,
            },
        ],
        "policy_versions": [
            {
                "policy_version": POLICY_VERSION,
                "policy_hash": POLICY_HASH,
                "decisions": 3,
                "first_at": at(3, 5),
                "last_at": at(3, 20),
            },
        ],
        "blind_spots": [
            {
                "address": "10.9.8.7",
                "port": 8443,
                "source": "tcp_sweep",
                "first_seen": at(3, 9),
                "lifecycle": "assigned",
                "owner": "team-ops",
            },
        ],
        "intel_feeds": [
            {
                "feed": "kev",
                "source": "cisa",
                "version": "2026.03.01",
                "feed_date": at(3, 1),
                "loaded_at": at(3, 1, 6),
                "record_count": 1400,
                "sha256": "d" * 64,
            },
        ],
    }


def make_pack(framework: str = "fedramp", period: Period = PERIOD, **evidence: Any) -> Pack:
    rows = base_evidence()
    rows.update(copy.deepcopy(evidence))
    return build_pack(
        load_framework(framework), period, POLICY_VERSION, POLICY_HASH, rows, COVERAGE_MAP
    )

"""Report data shaped like a month of the demo estate, with a few hostile values."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from autosec.reporting.posture import ReportData, ReportFinding

HOSTILE_NAME = "<script>alert('x')</script>"
HOSTILE_ASSET_ID = 'x" onmouseover="alert(1)'
GENERATED_AT = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)
POLICY_HASH = "9f2c" + "0" * 60


def finding(**overrides: object) -> ReportFinding:
    values: dict[str, object] = {
        "fingerprint": "fp-web-apache",
        "asset_id": "web-frontend",
        "asset_name": "web-frontend",
        "owner": "team-web",
        "engine": "nmap",
        "rule_id": "nmap.vulnerable-version",
        "title": "Apache httpd 2.4.49 path traversal",
        "severity": "critical",
        "status": "open",
        "first_seen": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "last_seen": datetime(2026, 3, 30, 10, 0, tzinfo=UTC),
        "due_date": date(2026, 3, 20),
        "cve_ids": ("CVE-2021-41773",),
        "location": "127.0.0.11:8080/tcp",
        "evidence_sha256": "a" * 64,
        "known_exploited": True,
        "kev_due_date": date(2021, 11, 17),
    }
    values.update(overrides)
    return ReportFinding(**values)  # type: ignore[arg-type]


def make_findings() -> list[ReportFinding]:
    return [
        finding(),
        # The same CVE on a second asset, reported by another engine with lower-case ids.
        finding(
            fingerprint="fp-web2-apache",
            asset_id="web-backup",
            asset_name="web-backup",
            owner="team-ops",
            engine="osv",
            rule_id="GHSA-xxxx-apache",
            first_seen=date(2026, 2, 27),
            due_date=date(2026, 4, 5),
            cve_ids=("cve-2021-41773",),
            location="127.0.0.21:443/tcp",
            evidence_sha256="b" * 64,
            known_exploited=False,
            kev_due_date=None,
        ),
        finding(
            fingerprint="fp-db-eol",
            asset_id="orders-db",
            asset_name="orders-db",
            owner="team-data",
            rule_id="nmap.eol-software",
            title="MySQL 5.5.62 is end of life",
            severity="high",
            due_date=date(2026, 4, 15),
            cve_ids=(),
            location="127.0.0.12:3306/tcp",
            evidence_sha256="c" * 64,
            known_exploited=False,
            kev_due_date=None,
        ),
        finding(
            fingerprint="fp-fixed",
            severity="medium",
            status="fixed",
            rule_id="nmap.fixed-thing",
            title="Fixed already",
            cve_ids=(),
        ),
        finding(
            fingerprint="fp-accepted",
            severity="high",
            status="accepted",
            rule_id="nmap.accepted-thing",
            title="Risk accepted",
            due_date=date(2026, 1, 1),
            cve_ids=(),
        ),
        finding(
            fingerprint="fp-hostile",
            asset_id=HOSTILE_ASSET_ID,
            asset_name=HOSTILE_NAME,
            owner='=HYPERLINK("http://evil.example","click")',
            rule_id="@SUM(1+1)",
            title="-2+3 banner",
            severity="low",
            status="reopened",
            due_date=date(2026, 1, 10),
            cve_ids=(),
            location="+cmd|' /C calc'!A0",
            known_exploited=False,
            kev_due_date=None,
        ),
        finding(
            fingerprint="fp-info",
            rule_id="nmap.service-banner",
            title="Service banner",
            severity="info",
            due_date=None,
            cve_ids=(),
            known_exploited=False,
            kev_due_date=None,
            evidence_sha256=None,
        ),
    ]


def make_data(**overrides: object) -> ReportData:
    values: dict[str, object] = {
        "generated_at": GENERATED_AT,
        "period_start": date(2026, 3, 1),
        "period_end": date(2026, 3, 31),
        "policy_version": "2026.03",
        "policy_hash": POLICY_HASH,
        "assets_total": 3,
        "assets_scanned": 2,
        "blind_spots": [
            {
                "address": "127.0.0.13",
                "port": 8080,
                "source": "tcp_sweep",
                "seen_at": datetime(2026, 3, 30, 2, 0, tzinfo=UTC),
                "evidence": {"server": "nginx/1.18.0", "status": 200},
            },
            {
                "address": "127.0.0.9",
                "port": 22,
                "source": "tcp_sweep",
                "seen_at": datetime(2026, 3, 29, 2, 0, tzinfo=UTC),
                "evidence": {},
            },
        ],
        "findings": make_findings(),
        "actions": [
            {
                "action": "ticket",
                "asset": "web-frontend",
                "status": "applied",
                "external_ref": "SEC-1",
                "mode": "out_of_loop",
                "rule_id": "ticket-everything",
                "at": datetime(2026, 3, 2, 11, 0, tzinfo=UTC),
            },
            {
                "action": "quarantine",
                "asset": "orders-db",
                "status": "awaiting_approval",
                "external_ref": None,
                "mode": "in_loop",
                "rule_id": "prod-needs-approval",
                "at": datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
            },
        ],
        "approvals": [
            {
                "id": 7,
                "action": "quarantine",
                "asset": "orders-db",
                "status": "rejected",
                "requester": "autosec",
                "decisions": [
                    {
                        "approver": "bob",
                        "decision": "reject",
                        "reason": "maintenance window on Friday",
                        "at": datetime(2026, 3, 3, 10, 0, tzinfo=UTC),
                    },
                    {
                        "approver": "alice",
                        "decision": "approve",
                        "reason": "",
                        "at": datetime(2026, 3, 3, 9, 30, tzinfo=UTC),
                    },
                ],
            },
            {
                "id": 12,
                "action": "patch",
                "asset": "web-frontend",
                "status": "pending",
                "requester": "autosec",
                "decisions": [],
            },
        ],
    }
    values.update(overrides)
    return ReportData(**values)  # type: ignore[arg-type]


@pytest.fixture
def data() -> ReportData:
    return make_data()


@pytest.fixture
def make_report() -> object:
    """Factory: ReportData with the given fields replaced."""
    return make_data


@pytest.fixture
def make_finding() -> object:
    """Factory: one ReportFinding with the given fields replaced."""
    return finding

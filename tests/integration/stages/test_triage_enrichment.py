"""The triage stage end to end on the real store: KEV and EPSS rows in, enriched, prioritised,
dated and owned findings out; one batched intelligence lookup per run; black swans raised once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from autosec.config.policy import load_policy
from autosec.discovery.assignment import rules_from_config
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.intel.epss import EpssReader, EpssScore
from autosec.intel.kev import KevCatalog, KevEntry, read_kev
from autosec.stages import triage as stage
from autosec.stages.triage import triage_runs
from autosec.store import findings, intel
from support.store import nmap_run, sync_inventory

pytestmark = pytest.mark.integration
POLICY = load_policy(Path(__file__).resolve().parents[3] / "include" / "policies" / "default.yaml")
DAYS = POLICY.policy.patching.days_by_severity()
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
WORST = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOCAL = "CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
LOG4SHELL, TEXT4SHELL, QUIET = "CVE-2021-44228", "CVE-2022-42889", "CVE-2099-0001"
EDGE = Asset(
    "edge",
    "edge gateway",
    AssetKind.WEB_APP,
    "cmdb",
    "team-edge",
    Environment.PRODUCTION,
    Criticality.BUSINESS_CRITICAL,
    ("127.0.0.21",),
    ("internet-facing",),
)
LAB = Asset(
    "lab",
    "lab box",
    AssetKind.HOST,
    "cmdb",
    "",
    Environment.DEVELOPMENT,
    Criticality.LOW,
    ("127.0.0.22",),
)
SCOPE = {"targets": ["127.0.0.21"], "ports": [443, 8443, 9000]}


def _kev(cve: str, due: date, ransomware: str = "Unknown") -> KevEntry:
    return KevEntry(
        cve_id=cve,
        vendor_project="Apache",
        product="Log4j2",
        vulnerability_name=f"{cve} remote code execution",
        date_added=due - timedelta(days=14),
        short_description="remote code execution",
        required_action="Apply updates per vendor instructions.",
        due_date=due,
        known_ransomware_campaign_use=ransomware,
    )


def _obs(
    asset: Asset, port: int, cves: tuple[str, ...], vector: str | None, severity=Severity.HIGH
):
    return Observation(
        asset.id,
        "nmap",
        f"vuln.{port}",
        f"vulnerable service on {port}",
        severity,
        Location(host=asset.addresses[0], port=port, protocol="tcp"),
        cvss_vector=vector,
        cve_ids=cves,
    )


@pytest.fixture
def store(conn):
    sync_inventory(conn, [EDGE, LAB], T0)
    intel.load_kev(
        conn,
        KevCatalog(entries=(_kev(LOG4SHELL, date(2026, 11, 20), "Known"),)),
        T0,
    )
    intel.load_epss(
        conn,
        [EpssScore(LOG4SHELL, 0.94358, 0.99957), EpssScore(TEXT4SHELL, 0.5, 0.97)],
        date(2026, 10, 31),
        "v2025.03.14",
    )
    conn.commit()
    return conn


def _row(conn, asset_id: str, port: int) -> dict:
    """The stored finding, with the decision points behind its priority."""
    from psycopg.rows import dict_row

    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT * FROM findings WHERE asset_id = %s AND (location->>'port')::int = %s",
            (asset_id, port),
        )
        .fetchone()
    )
    row["priority_points"] = findings.priority_points(conn, [row["id"]])[row["id"]]
    return row


def _events(conn, name: str) -> list[tuple[str, dict]]:
    return conn.execute(
        "SELECT subject, payload FROM events WHERE name = %s ORDER BY id", (name,)
    ).fetchall()


def test_findings_are_enriched_prioritised_dated_and_explained(store) -> None:
    conn = store
    nmap_run(
        conn,
        "edge",
        [
            _obs(EDGE, 443, (LOG4SHELL,), WORST, Severity.MEDIUM),
            _obs(EDGE, 8443, (TEXT4SHELL,), LOCAL),
            _obs(EDGE, 9000, (QUIET,), None, Severity.LOW),
        ],
        T0,
        SCOPE,
    )
    outcome = triage_runs(conn, DAYS, T0, policy=POLICY.policy)
    assert (outcome.new, outcome.rejected, outcome.black_swans) == (3, 0, 1)

    kev = _row(conn, "edge", 443)
    assert (kev["known_exploited"], kev["kev_ransomware"]) == (True, True)
    assert kev["kev_due_date"] == date(2026, 11, 20)
    assert (kev["epss_score"], kev["epss_percentile"]) == (Decimal("0.94358"), Decimal("0.99957"))
    assert (kev["cvss_version"], kev["cvss_score"]) == ("3.1", Decimal("9.8"))
    assert kev["priority"] == "immediate"
    assert kev["priority_points"]["exploitation"] == "active"
    assert kev["priority_points"]["inferred"] == {
        "automatable": "from the CVSS 3.1 vector",
        "technical_impact": "from the CVSS 3.1 vector",
    }
    # Black swan: due within the policy's shortest deadline, earlier than KEV and medium's 90.
    assert kev["due_date"] == (T0 + timedelta(days=7)).date()
    assert kev["black_swan_at"] == T0
    assert (kev["owner"], kev["owner_source"]) == ("team-edge", "asset")

    poc = _row(conn, "edge", 8443)
    assert not poc["known_exploited"] and poc["cvss_version"] == "4.0"
    assert poc["priority_points"]["exploitation"] == "poc"
    assert poc["priority_points"]["automatable"] == "no"  # local attack vector
    assert "EPSS" in poc["priority_points"]["inferred"]["exploitation"]
    assert poc["priority"] == "attend"  # poc, not automatable, total, high mission
    assert poc["due_date"] == (T0 + timedelta(days=30)).date()

    quiet = _row(conn, "edge", 9000)
    assert quiet["epss_score"] is None and quiet["cvss_version"] is None
    assert quiet["priority_points"]["inferred"]["automatable"].startswith("assumed no")
    assert quiet["due_date"] == (T0 + timedelta(days=180)).date()


def test_decision_points_are_stored_once_and_shared(store) -> None:
    conn = store
    same = [_obs(EDGE, port, (QUIET,), None, Severity.LOW) for port in (9000, 9001, 9002)]
    nmap_run(conn, "edge", [*same, _obs(EDGE, 443, (LOG4SHELL,), WORST)], T0, SCOPE)
    triage_runs(conn, DAYS, T0, policy=POLICY.policy)
    shared = {_row(conn, "edge", p)["priority_decision_id"] for p in (9000, 9001, 9002)}
    assert len(shared) == 1 and None not in shared
    assert _row(conn, "edge", 443)["priority_decision_id"] not in shared
    assert conn.execute("SELECT count(*) FROM priority_decisions").fetchone()[0] == 2
    # The same decision in a later run reuses the row; the log of decisions is append-only.
    nmap_run(conn, "edge", same, T0 + timedelta(days=1), SCOPE)
    triage_runs(conn, DAYS, T0 + timedelta(days=1), policy=POLICY.policy)
    assert conn.execute("SELECT count(*) FROM priority_decisions").fetchone()[0] == 2
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE priority_decisions SET points = '{}'")
    conn.rollback()


def test_a_rescan_refreshes_intelligence_and_only_brings_deadlines_forward(store) -> None:
    conn = store
    observations = [_obs(EDGE, 8443, (TEXT4SHELL,), LOCAL)]
    nmap_run(conn, "edge", observations, T0, SCOPE)
    triage_runs(conn, DAYS, T0, policy=POLICY.policy)
    before = _row(conn, "edge", 8443)
    assert before["due_date"] == (T0 + timedelta(days=30)).date()

    # A week later Text4Shell is added to KEV with a due date before the policy's.
    later = T0 + timedelta(days=7)
    intel.load_kev(
        conn,
        KevCatalog(
            entries=(_kev(LOG4SHELL, date(2026, 11, 20)), _kev(TEXT4SHELL, date(2026, 11, 15)))
        ),
        later,
    )
    nmap_run(conn, "edge", observations, later, SCOPE)
    triage_runs(conn, DAYS, later, policy=POLICY.policy)
    after = _row(conn, "edge", 8443)
    assert after["id"] == before["id"]
    assert after["known_exploited"] and after["kev_due_date"] == date(2026, 11, 15)
    assert after["due_date"] == date(2026, 11, 15)
    assert (after["priority"], after["priority_points"]["exploitation"]) == ("act", "active")

    # Taken off KEV again: the facts follow, the earlier deadline stays.
    intel.load_kev(conn, KevCatalog(entries=(_kev(LOG4SHELL, date(2026, 11, 20)),)), later)
    nmap_run(conn, "edge", observations, later + timedelta(days=1), SCOPE)
    triage_runs(conn, DAYS, later + timedelta(days=1), policy=POLICY.policy)
    last = _row(conn, "edge", 8443)
    assert not last["known_exploited"] and last["priority"] == "attend"
    assert last["due_date"] == date(2026, 11, 15)


def test_one_intelligence_lookup_per_run_whatever_the_number_of_findings(store, monkeypatch):
    conn = store
    calls: list[tuple[str, frozenset]] = []
    real_kev, real_epss = intel.kev_for, intel.epss_for

    def kev_for(c, ids):
        calls.append(("kev", frozenset(ids)))
        return real_kev(c, ids)

    def epss_for(c, ids):
        calls.append(("epss", frozenset(ids)))
        return real_epss(c, ids)

    monkeypatch.setattr(stage.intel_store, "kev_for", kev_for)
    monkeypatch.setattr(stage.intel_store, "epss_for", epss_for)
    many = [
        _obs(EDGE, 1000 + i, (LOG4SHELL if i % 2 else f"CVE-2024-{10000 + i}",), WORST)
        for i in range(200)
    ]
    nmap_run(conn, "edge", many, T0, {"targets": ["127.0.0.21"]})
    nmap_run(conn, "lab", [_obs(LAB, 22, (), None)], T0, {"targets": ["127.0.0.22"]})
    outcome = triage_runs(conn, DAYS, T0, policy=POLICY.policy)
    assert outcome.new == 201
    expected = frozenset({LOG4SHELL} | {f"CVE-2024-{10000 + i}" for i in range(0, 200, 2)})
    # The run without CVEs asks nothing; the other asks once per feed for all its CVEs.
    assert calls == [("kev", expected), ("epss", expected)]
    known = conn.execute("SELECT count(*) FROM findings WHERE known_exploited").fetchone()[0]
    assert known == 100


def test_a_black_swan_is_raised_at_once_and_only_once(store) -> None:
    conn = store
    observation = _obs(EDGE, 443, (LOG4SHELL,), WORST, Severity.CRITICAL)
    for day in range(3):
        nmap_run(conn, "edge", [observation], T0 + timedelta(days=day), SCOPE)
        triage_runs(conn, DAYS, T0 + timedelta(days=day), policy=POLICY.policy)
    finding = _row(conn, "edge", 443)
    [(subject, payload)] = _events(conn, "finding.black_swan")
    assert subject == f"finding:{finding['id']}"
    assert payload["is_black_swan"] is True
    assert payload["met"] == {
        "known_exploited": True,
        "automatable": True,
        "total_impact": True,
        "exposed_or_mission_critical": True,
    }
    assert payload["inferred"] == ["automatable", "total_impact"]
    assert payload["triggers"] == ["finding.black_swan"]
    assert payload["owner"] == "team-edge" and payload["cve_ids"] == [LOG4SHELL]
    assert "black swan on edge" in payload["summary"]
    assert finding["black_swan_at"] == T0


def test_the_lab_without_an_owner_is_owned_by_a_rule_or_counted(store) -> None:
    conn = store
    nmap_run(conn, "lab", [_obs(LAB, 22, (), None)], T0, {"targets": ["127.0.0.22"]})
    triage_runs(conn, DAYS, T0)
    assert _row(conn, "lab", 22)["owner"] is None
    assert findings.unowned_open_findings(conn) == 1
    assert findings.unowned_open_findings_by_asset(conn) == {"lab": 1}

    rules = rules_from_config([{"id": "loopback", "owner": "team-lab", "range": "127.0.0.0/24"}])
    nmap_run(conn, "lab", [_obs(LAB, 22, (), None)], T0 + timedelta(days=1), {"targets": []})
    triage_runs(conn, DAYS, T0 + timedelta(days=1), assignment_rules=rules)
    row = _row(conn, "lab", 22)
    assert (row["owner"], row["owner_source"]) == ("team-lab", "rule:loopback")
    assert findings.unowned_open_findings(conn) == 0


def test_real_kev_and_epss_files_enrich_real_cves(conn, corpus) -> None:
    kev_file = corpus / "kev" / "cisagov__kev-data" / "known_exploited_vulnerabilities.json"
    epss_file = (
        corpus
        / "epss"
        / "lodestonesecurity__epss-data-history"
        / "epss_scores-current.slice-CVE-2022-41000_41158.csv"
    )
    sync_inventory(conn, [EDGE], T0)
    catalog = read_kev(kev_file)
    intel.load_kev(conn, catalog, T0)
    with EpssReader(epss_file) as reader:
        intel.load_epss(conn, reader, None, reader.model_version)
    conn.commit()
    proxynotshell = "CVE-2022-41082"
    listed = {e.cve_id: e for e in catalog.entries}
    assert proxynotshell in listed
    nmap_run(conn, "edge", [_obs(EDGE, 443, (proxynotshell,), None)], T0, SCOPE)
    triage_runs(conn, DAYS, T0, policy=POLICY.policy)
    row = _row(conn, "edge", 443)
    assert row["known_exploited"]
    assert row["kev_due_date"] == listed[proxynotshell].due_date
    assert row["kev_ransomware"] == listed[proxynotshell].ransomware
    assert row["epss_score"] is not None and 0 < row["epss_score"] <= 1
    assert row["priority_points"]["exploitation"] == "active"


def test_a_re_rating_is_stored_and_only_ever_brings_the_deadline_forward(store) -> None:
    conn = store
    low = _obs(LAB, 22, (), None, Severity.LOW)
    nmap_run(conn, "lab", [low], T0, {"targets": ["127.0.0.22"]})
    triage_runs(conn, DAYS, T0)
    assert _row(conn, "lab", 22)["due_date"] == (T0 + timedelta(days=180)).date()

    day = T0 + timedelta(days=1)
    raised = dataclasses.replace(low, severity=Severity.CRITICAL, cvss_vector=WORST)
    nmap_run(conn, "lab", [raised], day, {"targets": ["127.0.0.22"]})
    triage_runs(conn, DAYS, day)
    row = _row(conn, "lab", 22)
    assert (row["severity"], row["cvss_vector"], row["cvss_version"]) == ("critical", WORST, "3.1")
    assert row["due_date"] == (day + timedelta(days=7)).date()

    nmap_run(conn, "lab", [low], day + timedelta(days=1), {"targets": ["127.0.0.22"]})
    triage_runs(conn, DAYS, day + timedelta(days=1))
    row = _row(conn, "lab", 22)
    assert row["severity"] == "low" and row["cvss_vector"] is None
    assert row["due_date"] == (day + timedelta(days=7)).date()  # never pushed back

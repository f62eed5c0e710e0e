"""The pack builder on plain rows: due dates per tier with the KEV override, coverage, age,
deadline adherence, fix verification, exceptions, evidence, POA&M grouping, bounded views."""

from __future__ import annotations

import random
from datetime import date

import pytest

from autosec.domain.models import Severity
from autosec.reporting.framework import load_framework
from autosec.reporting.packs import (
    PACK_EVIDENCE,
    TABLE_LIMIT,
    age_bucket,
    build_pack,
    coverage_of,
    evidence_refs,
    exception_state,
    pack_findings,
    pack_view,
)
from autosec.reporting.pieces import render_pack
from unit.reporting.pack_rows import (
    KEV_DUE,
    PERIOD,
    POLICY_HASH,
    PRODUCT_VERSION,
    at,
    base_evidence,
    finding_row,
    make_pack,
)


def by_fingerprint(pack):
    return {f.fingerprint: f for f in pack.findings}


def test_fedramp_due_dates_by_risk_with_the_kev_date_where_earlier() -> None:
    findings = by_fingerprint(make_pack("fedramp"))
    kev_db = findings["fp-kev-db"]  # critical counts as high; its CVE is in KEV
    assert (kev_db.tier, kev_db.due_date, kev_db.known_exploited) == ("KEV due date", KEV_DUE, True)
    assert kev_db.cve_ids == ("CVE-2021-41773",)  # normalised to upper case
    assert (findings["fp-ssh-web"].tier, findings["fp-ssh-web"].due_date) == (
        "Moderate",
        date(2026, 4, 10),  # 90 days from 10 January
    )
    assert findings["fp-old-low"].due_date == date(2026, 2, 28)  # 180 days from 1 September
    assert findings["fp-fixed-late"].due_date == date(2026, 3, 3)  # 30 days from 1 February
    assert (findings["fp-banner"].tier, findings["fp-banner"].due_date) == (None, None)
    # The same rows under a framework that keeps the policy's due dates.
    soc2 = by_fingerprint(make_pack("soc2"))
    assert (soc2["fp-ssh-web"].tier, soc2["fp-ssh-web"].due_date) == ("Medium", date(2026, 12, 31))
    assert soc2["fp-kev-web"].due_date == KEV_DUE


def test_coverage_is_the_share_of_the_inventory_scanned_successfully() -> None:
    pack = make_pack()
    coverage = pack.coverage
    assert (coverage.assets, coverage.scanned, coverage.share) == (4, 3, 0.75)
    assert coverage.target == 1.0 and coverage.target_met is False
    assert [(r.key, r.assets, r.scanned) for r in coverage.by_kind] == [
        ("database", 1, 1),
        ("host", 2, 1),
        ("web_app", 1, 1),
    ]
    nmap, tls = coverage.by_engine
    # The run on an asset outside the inventory ('gone') counts for nothing.
    assert (nmap.engine, nmap.assets_scanned, nmap.runs_succeeded, nmap.runs_failed) == (
        "nmap",
        3,
        5,
        1,
    )
    assert nmap.by_kind == {"database": 1, "host": 1, "web_app": 1}
    assert (tls.engine, tls.assets_scanned) == ("tls", 1)
    assert [a["asset_id"] for a in coverage.unscanned] == ["host2"]
    assert make_pack("soc2").coverage.target_met is None  # no target: not judged
    full = coverage_of(
        [{"asset_id": "a", "kind": "host"}], [{"asset_id": "a", "engine": "n", "succeeded": 1}], 1.0
    )
    assert full.target_met is True
    assert coverage_of([], [], 1.0).share is None


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        (0, 0),
        (30, 0),
        (31, 1),
        (60, 1),
        (61, 2),
        (90, 2),
        (91, 3),
        (180, 3),
        (181, 4),
        (5000, 4),
    ],
)
def test_age_buckets_have_closed_bounds(age: int, bucket: int) -> None:
    assert age_bucket(age) == bucket


def test_open_findings_by_age_and_severity_as_of_the_period_end() -> None:
    age = make_pack().age
    assert age.buckets[0] == "0-30 days" and age.buckets[-1] == "over 180 days"
    assert age.counts[Severity.CRITICAL] == (1, 0, 0, 0, 0)  # 26 days on 31 March
    assert age.counts[Severity.HIGH] == (0, 1, 0, 0, 0)  # 54 days
    assert age.counts[Severity.MEDIUM] == (1, 0, 1, 0, 0)  # 25 and 80 days; accepted left out
    assert age.counts[Severity.LOW] == (1, 0, 0, 0, 1)  # the hostile one; 211 days
    assert age.counts[Severity.INFO] == (1, 0, 0, 0, 0)
    assert sum(age.column_totals) == 7


def test_deadline_adherence_per_tier() -> None:
    sla = {r.tier: r for r in make_pack().sla}
    assert list(sla) == ["High", "Moderate", "Low", "KEV due date"]
    high = sla["High"]
    assert (high.fixed_on_time, high.fixed_late, high.open_overdue) == (1, 1, 0)
    assert high.adherence == 0.5
    assert (sla["KEV due date"].open_overdue, sla["KEV due date"].adherence) == (2, 0.0)
    assert (sla["Moderate"].open_within, sla["Moderate"].adherence) == (2, None)
    assert sla["Low"].open_overdue == 1 and sla["Low"].open_within == 1


def test_a_finding_due_on_the_last_day_is_not_yet_late() -> None:
    due_today = finding_row("due-today", first_seen=at(3, 1))  # due 30 days later: 31 March
    [f] = pack_findings(load_framework("fedramp").framework, PERIOD, [due_today])
    assert f.due_date == PERIOD.end and not f.is_overdue(PERIOD.end)


def test_fixes_are_confirmed_only_by_a_successful_rescan() -> None:
    pci = make_pack("pci_dss")
    assert [f.fingerprint for f in pci.fixes.confirmed] == ["fp-fixed-late"]
    assert [f.fingerprint for f in pci.fixes.unconfirmed] == ["fp-fixed-on-time"]
    failed = base_evidence()["finding_fixes"]
    failed[0]["scan_status"] = "failed"
    assert make_pack("pci_dss", finding_fixes=failed).fixes.confirmed == ()


def test_the_latest_fix_in_the_period_counts() -> None:
    fixes = [
        {
            "fingerprint": "fp-fixed-late",
            "fixed_at": at(3, 20),
            "scan_run_id": 5,
            "scan_status": "succeeded",
        },
        {
            "fingerprint": "fp-fixed-late",
            "fixed_at": at(3, 8),
            "scan_run_id": 3,
            "scan_status": "failed",
        },
    ]
    pack = make_pack(finding_fixes=fixes)
    fixed = by_fingerprint(pack)["fp-fixed-late"]
    assert (fixed.fix_scan_run_id, fixed.fixed_at, fixed.fix_confirmed) == (5, at(3, 20), True)


def test_poam_items_group_by_cve_or_rule_across_assets_and_leave_info_out() -> None:
    pack = make_pack()
    items = {w.lead.title: w for w in pack.open_items}
    assert set(items) == {
        "Apache path traversal",
        "Weak SSH ciphers",
        "old-low title",
        by_fingerprint(pack)["fp-hostile"].title,
    }
    assert {f.asset_id for f in items["Apache path traversal"].findings} == {"web", "db"}
    assert items["Apache path traversal"].scheduled_completion == KEV_DUE
    assert items["Weak SSH ciphers"].scheduled_completion == date(2026, 4, 10)
    assert [w.lead.title for w in pack.closed_items] == ["fixed-late title", "fixed-on-time title"]
    rows = {r["Weakness Name"]: r for r in pack.open_poam_rows()}
    assert rows["Apache path traversal"]["Controls"] == "RA-5, SI-2"
    assert rows["Apache path traversal"]["Status Date"] == "2026-03-31"
    closed = {r["Weakness Name"]: r for r in pack.closed_poam_rows()}
    assert closed["fixed-late title"]["Status Date"] == "2026-03-20"
    assert (
        "1 confirmed by a successful rescan (scan runs 5)" in closed["fixed-late title"]["Comments"]
    )


def test_the_status_of_an_exception_is_read_at_the_period_end() -> None:
    row = {"status": "approved", "approved_at": at(3, 4), "expires_at": at(6, 30)}
    assert exception_state(row, PERIOD) == "approved"
    assert exception_state({**row, "expires_at": at(3, 20)}, PERIOD) == "expired"
    assert exception_state({**row, "approved_at": at(4, 2)}, PERIOD) == "requested"
    revoked = {**row, "status": "revoked", "decided_at": at(3, 25)}
    assert exception_state(revoked, PERIOD) == "revoked"
    assert exception_state({**revoked, "decided_at": at(4, 25)}, PERIOD) == "approved"
    [exception] = make_pack().exceptions
    assert exception["state_at_end"] == "approved" and exception["approved_by"] == "ciso"


def test_a_store_without_exceptions_shows_the_section_empty_with_a_note() -> None:
    pack = make_pack(exceptions=None)
    assert pack.exceptions is None and pack.evidence_rows["exceptions"] is None
    view = pack_view(pack)
    assert view["exceptions"] == {"available": False, "rows": [], "more": 0}
    ca5 = next(c for c in view["controls"] if c["id"] == "CA-5")
    assert {"id": "exceptions", "rows": "not available in this store"} in ca5["evidence"]


def test_evidence_is_listed_once_per_sha256_with_the_findings_citing_it() -> None:
    rows = base_evidence()["scan_evidence"]
    rows.append({**rows[0], "scan_run_id": 9, "path": "file:///evidence/9.xml"})  # same bytes
    refs = {r.sha256: r for r in evidence_refs(rows, make_pack().findings)}
    assert set(refs) == {"a" * 64, "b" * 64, "c" * 64}
    assert (refs["a" * 64].scan_run_id, refs["a" * 64].cited_by_findings) == (1, 9)
    assert refs["b" * 64].path == "" and refs["b" * 64].cited_by_findings == 1  # no stored row
    assert refs["c" * 64].cited_by_findings == 0


def test_missing_evidence_and_bad_rows_are_refused_by_name() -> None:
    rows = base_evidence()
    del rows["scan_coverage"]
    with pytest.raises(ValueError, match=r"fedramp 2026-03: evidence missing: \['scan_coverage'\]"):
        build_pack(load_framework("fedramp"), PERIOD, "v", POLICY_HASH, rows)
    framework = load_framework("fedramp").framework
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        pack_findings(framework, PERIOD, [finding_row("x", severity="urgent")])
    with pytest.raises(ValueError, match="finding 'fp-x' first_seen: not an ISO date"):
        pack_findings(framework, PERIOD, [finding_row("x", first_seen="last week")])
    with pytest.raises(ValueError, match="without a fingerprint"):
        pack_findings(framework, PERIOD, [finding_row("x", fingerprint=" ")])
    assert set(PACK_EVIDENCE) == set(base_evidence())


def test_last_seen_after_the_period_is_shown_as_the_period_end() -> None:
    late = finding_row("late", last_seen=at(4, 20))
    [f] = pack_findings(load_framework("fedramp").framework, PERIOD, [late])
    assert f.last_seen < PERIOD.end_before and f.last_seen.date() == PERIOD.end


def test_the_view_bounds_long_tables_and_counts_the_rest() -> None:
    many = [
        finding_row(f"w{i:04d}", rule_id=f"rule-{i:04d}", severity=("high", "low")[i % 2])
        for i in range(TABLE_LIMIT + 70)
    ]
    view = pack_view(make_pack(findings=many))
    assert len(view["poam"]["top"]) == TABLE_LIMIT and view["poam"]["more"] == 70
    assert view["poam"]["open"] == TABLE_LIMIT + 70
    severities = [w["severity"] for w in view["poam"]["top"]]
    assert severities == sorted(severities, key=lambda s: -Severity(s).rank)  # most severe first


def test_the_same_rows_in_any_order_give_the_same_pack() -> None:
    shuffled = {k: (list(v) if v is not None else None) for k, v in base_evidence().items()}
    generator = random.Random(7)  # noqa: S311 - a repeatable shuffle, not a secret
    for rows in shuffled.values():
        if rows:
            generator.shuffle(rows)
    assert pack_view(make_pack(**shuffled)) == pack_view(make_pack())
    shuffled_files = render_pack(make_pack(**shuffled), PRODUCT_VERSION)
    assert [p.sha256 for p in shuffled_files] == [
        p.sha256 for p in render_pack(make_pack(), PRODUCT_VERSION)
    ]

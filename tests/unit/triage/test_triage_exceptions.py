"""Exception rules: what a request needs, who may approve it, what it matches, which one wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.triage.exceptions import (
    MAX_DAYS,
    ActiveException,
    ExceptionRefused,
    ExceptionRequest,
    check_approval,
    check_revocation,
    choose,
    precedence,
)

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
FP = "ab" * 32


def _request(**changes) -> ExceptionRequest:
    fields = {
        "kind": "risk_acceptance",
        "scope": "cve",
        "target": " cve-2021-44228 ",
        "reason": " compensating WAF rule until the vendor ships 2.17 ",
        "requested_by": " alice ",
        "expires_at": NOW + timedelta(days=30),
    }
    fields.update(changes)
    return ExceptionRequest(**fields)


def test_a_request_is_normalised() -> None:
    checked = _request().checked(NOW)
    assert checked.target == "CVE-2021-44228"
    assert checked.requested_by == "alice"
    assert checked.reason == "compensating WAF rule until the vendor ships 2.17"
    assert _request(scope="finding", target=FP.upper()).checked(NOW).target == FP
    assert _request(scope="asset", target=" web ").checked(NOW).target == "web"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "waiver"}, "exception kind 'waiver'"),
        ({"scope": "team"}, "exception scope 'team'"),
        ({"reason": "  "}, "needs a reason"),
        ({"requested_by": ""}, "who asks"),
        ({"target": "log4shell"}, "not a CVE id"),
        ({"scope": "finding", "target": "1234"}, "not a finding fingerprint"),
        ({"scope": "asset", "target": " "}, "asset id is empty"),
        ({"expires_at": NOW}, "not in the future"),
        ({"expires_at": NOW + timedelta(days=MAX_DAYS + 1)}, f"more than {MAX_DAYS} days"),
        ({"expires_at": datetime(2027, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_a_request_that_breaks_a_rule_is_refused_naming_it(changes, message) -> None:
    with pytest.raises(ExceptionRefused, match=message):
        _request(**changes).checked(NOW)


@pytest.mark.parametrize("approver", ["alice", "Alice", " ALICE "])
def test_nobody_approves_their_own_exception(approver) -> None:
    with pytest.raises(ExceptionRefused, match="cannot approve it"):
        check_approval(7, "requested", "alice", NOW + timedelta(days=1), approver, NOW)


def test_a_second_person_approves_a_pending_unexpired_request() -> None:
    check_approval(7, "requested", "alice", NOW + timedelta(days=1), "bob", NOW)


@pytest.mark.parametrize(
    ("status", "expires_at", "approver", "message"),
    [
        ("approved", NOW + timedelta(days=1), "bob", "is approved"),
        ("revoked", NOW + timedelta(days=1), "bob", "is revoked"),
        ("requested", NOW, "bob", "expired at"),
        ("requested", NOW + timedelta(days=1), " ", "approver's name"),
    ],
)
def test_approval_refusals(status, expires_at, approver, message) -> None:
    with pytest.raises(ExceptionRefused, match=message):
        check_approval(7, status, "alice", expires_at, approver, NOW)


def test_revocation_needs_a_person_a_reason_and_a_live_exception() -> None:
    check_revocation(1, "approved", "carol", "vendor patch is out")
    check_revocation(1, "requested", "alice", "no longer needed")
    with pytest.raises(ExceptionRefused, match="needs a reason"):
        check_revocation(1, "approved", "carol", " ")
    with pytest.raises(ExceptionRefused, match="who revokes"):
        check_revocation(1, "approved", "", "why")
    with pytest.raises(ExceptionRefused, match="is expired"):
        check_revocation(1, "expired", "carol", "why")


def _active(id_: int, scope: str, target: str, days: int = 30, kind="risk_acceptance"):
    return ActiveException(id_, kind, scope, target, NOW + timedelta(days=days))


def test_scopes_match_one_finding_one_cve_everywhere_or_one_asset() -> None:
    by_finding = _active(1, "finding", FP)
    by_cve = _active(2, "cve", "CVE-2021-44228")
    by_asset = _active(3, "asset", "web")
    assert by_finding.matches(FP.upper(), "db", [])
    assert not by_finding.matches("cd" * 32, "web", ["CVE-2021-44228"])
    assert by_cve.matches("cd" * 32, "db", ["cve-2021-44228 "])
    assert not by_cve.matches(FP, "web", ["CVE-2021-4422"])
    assert by_asset.matches("cd" * 32, "web", [])
    assert not by_asset.matches(FP, "web-2", [])
    assert by_cve.status_for_findings == "accepted"
    assert _active(4, "cve", "CVE-1", kind="false_positive").status_for_findings == "false_positive"


def test_the_narrowest_then_longest_then_oldest_exception_wins() -> None:
    asset_long = _active(1, "asset", "web", days=300)
    cve_short = _active(2, "cve", "CVE-2021-44228", days=10)
    cve_long = _active(3, "cve", "CVE-2021-44228", days=20)
    cve_long_newer = _active(4, "cve", "CVE-2021-44228", days=20)
    finding = _active(5, "finding", FP, days=1)
    everything = [asset_long, cve_short, cve_long, cve_long_newer, finding]
    cves = ["CVE-2021-44228"]
    assert choose(everything, FP, "web", cves, NOW) == finding
    assert choose(everything, "cd" * 32, "web", cves, NOW) == cve_long
    assert choose(everything, "cd" * 32, "web", [], NOW) == asset_long
    assert choose(everything, "cd" * 32, "db", [], NOW) is None
    assert sorted(everything, key=precedence) == [
        finding,
        cve_long,
        cve_long_newer,
        cve_short,
        asset_long,
    ]


def test_an_expired_exception_matches_nothing() -> None:
    assert choose([_active(1, "asset", "web", days=-1)], FP, "web", [], NOW) is None

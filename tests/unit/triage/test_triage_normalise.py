"""From observations to triaged findings: due dates, black swans, owners, dedupe."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from autosec.config.policy import BlackSwanCriteria
from autosec.discovery.assignment import rules_from_config
from autosec.domain.fingerprint import FINGERPRINT_VERSION
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.triage.enrich import EpssScore, Intel, KevEntry
from autosec.triage.normalise import (
    DEFAULT_SETTINGS,
    TriageSettings,
    owner_for,
    shortest_deadline,
    triage_observations,
)

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
WORST = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOG4SHELL = "CVE-2021-44228"
KEV = Intel(
    kev={LOG4SHELL: KevEntry(LOG4SHELL, date(2026, 11, 10), ransomware=True)},
    epss={LOG4SHELL: EpssScore(LOG4SHELL, 0.94, 0.999)},
)


def _asset(asset_id="edge", owner="team-edge", tags=("internet-facing",), **kw) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.WEB_APP,
        "cmdb",
        owner,
        kw.get("environment", Environment.PRODUCTION),
        kw.get("criticality", Criticality.HIGH),
        kw.get("addresses", ("192.0.2.10",)),
        tuple(tags),
    )


def _obs(severity=Severity.HIGH, cves=(LOG4SHELL,), vector=WORST, port=443, asset="edge"):
    return Observation(
        asset,
        "osv",
        "GHSA-jfh8-c2jp-5v3q",
        "log4j-core JNDI lookup",
        severity,
        Location(host="192.0.2.10", port=port, protocol="tcp"),
        cvss_vector=vector,
        cve_ids=tuple(cves),
    )


def _one(observation, assets=None, intel=KEV, settings=DEFAULT_SETTINGS):
    assets = {"edge": _asset()} if assets is None else assets
    [finding] = triage_observations(
        [observation], assets, DAYS, NOW, intel=intel, settings=settings
    )
    return finding


def test_the_kev_due_date_wins_when_earlier_and_the_policy_lets_it() -> None:
    ordinary = _one(_obs(Severity.LOW, vector=None), settings=TriageSettings(black_swan=None))
    assert ordinary.due_date == date(2026, 11, 10)  # KEV, before low's 180 days
    ignored = _one(
        _obs(Severity.LOW, vector=None),
        settings=TriageSettings(kev_due_date_wins=False, black_swan=None),
    )
    assert ignored.due_date == date(2027, 4, 30)
    later = Intel(kev={LOG4SHELL: KevEntry(LOG4SHELL, date(2027, 6, 1))})
    assert _one(
        _obs(Severity.HIGH), intel=later, settings=TriageSettings(black_swan=None)
    ).due_date == date(2026, 12, 1)


def test_a_black_swan_is_judged_on_evidence_and_due_within_the_shortest_deadline() -> None:
    finding = _one(_obs(Severity.MEDIUM), intel=Intel(kev={LOG4SHELL: KevEntry(LOG4SHELL, None)}))
    assert finding.black_swan is not None
    assert finding.black_swan["is_black_swan"] is True
    assert finding.black_swan["inferred"] == ["automatable", "total_impact"]
    assert finding.black_swan["enrichment"]["known_exploited"] is True
    assert finding.due_date == date(2026, 11, 8)  # critical's 7 days, not medium's 90
    assert finding.priority == "immediate"


def test_no_black_swan_on_a_guess_or_without_exploitation() -> None:
    no_vector = _one(_obs(vector=None))  # automatable unknown: not met
    assert no_vector.black_swan is None
    not_exploited = _one(_obs(), intel=Intel())
    assert not_exploited.black_swan is None
    internal = _one(
        _obs(),
        assets={"edge": _asset(tags=(), environment=Environment.STAGING)},
    )
    assert internal.black_swan is None
    switched_off = _one(_obs(), settings=TriageSettings(black_swan=None))
    assert switched_off.black_swan is None
    relaxed = _one(
        _obs(),
        intel=Intel(),
        settings=TriageSettings(black_swan=BlackSwanCriteria(known_exploited=False)),
    )
    assert relaxed.black_swan is not None


def test_the_asset_owns_its_findings_else_an_assignment_rule() -> None:
    rules = rules_from_config(
        [
            {"id": "edge-range", "owner": "team-network", "range": "192.0.2.0/24"},
            {"id": "corp-zone", "owner": "team-corp", "zone": "corp.example"},
        ]
    )
    assert owner_for(_obs(), _asset(), rules) == ("team-edge", "asset")
    assert owner_for(_obs(), _asset(owner=" "), rules) == ("team-network", "rule:edge-range")
    by_url = dataclasses.replace(_obs(), location=Location(url="https://app.corp.example/x"))
    assert owner_for(by_url, _asset(owner="", addresses=()), rules) == (
        "team-corp",
        "rule:corp-zone",
    )
    assert owner_for(by_url, _asset(owner="", addresses=()), ()) == (None, None)
    assert owner_for(_obs(), None, ()) == (None, None)
    finding = _one(
        _obs(), assets={"edge": _asset(owner="")}, settings=TriageSettings(assignment_rules=rules)
    )
    assert (finding.owner, finding.owner_source) == ("team-network", "rule:edge-range")


def test_a_batch_is_deduplicated_by_fingerprint_and_carries_everything_it_stores() -> None:
    first = _obs()
    reworded = dataclasses.replace(first, title="Log4Shell", description="again")
    other = _obs(port=8443)
    triaged = triage_observations(
        [first, reworded, other], {"edge": _asset()}, DAYS, NOW, intel=KEV
    )
    assert [t.observation for t in triaged] == [first, other]
    finding = triaged[0]
    assert finding.fingerprint_version == FINGERPRINT_VERSION
    assert finding.priority == finding.priority_points["priority"] == finding.decision.priority
    assert finding.enrichment.known_exploited and finding.enrichment.epss_score == 0.94
    assert finding.cvss_score == 9.8


def test_an_asset_missing_from_the_inventory_still_gets_a_finding() -> None:
    finding = _one(_obs(asset="ghost"), assets={})
    assert finding.owner is None and finding.black_swan is None
    assert "mission" in finding.decision.inferred


def test_the_shortest_deadline_is_the_policys_smallest_number_of_days() -> None:
    assert shortest_deadline(DAYS) == 7
    assert shortest_deadline({"low": None}) is None

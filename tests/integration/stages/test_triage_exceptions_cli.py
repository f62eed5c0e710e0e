"""``autosec exceptions request|approve|list|revoke`` against the real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from autosec.cli import main
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
    Severity,
)
from autosec.stages.triage import triage_runs
from support.store import nmap_run, sync_inventory

pytestmark = pytest.mark.integration
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
WEB = Asset(
    "web",
    "web",
    AssetKind.WEB_APP,
    "cmdb",
    "team-web",
    Environment.PRODUCTION,
    Criticality.HIGH,
    ("127.0.0.11",),
)


@pytest.fixture
def cli(conn, store_url, capsys):
    now = datetime.now(UTC)
    sync_inventory(conn, [WEB], now)
    observation = Observation(
        "web",
        "nmap",
        "vuln.80",
        "Log4Shell",
        Severity.CRITICAL,
        Location(host="127.0.0.11", port=80, protocol="tcp"),
        cve_ids=("CVE-2021-44228",),
    )
    nmap_run(conn, "web", [observation], now, {"targets": ["127.0.0.11"]})
    triage_runs(conn, DAYS, now)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--database-url", store_url, "exceptions", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _status(conn) -> str:
    conn.rollback()  # see what the command committed
    return conn.execute("SELECT status FROM findings").fetchone()[0]


def test_request_approve_list_and_revoke(cli, conn) -> None:
    code, out, _ = cli(
        "request",
        "--kind",
        "risk_acceptance",
        "--cve",
        "cve-2021-44228",
        "--reason",
        "WAF blocks JNDI lookups",
        "--days",
        "30",
        "--as",
        "alice",
    )
    assert code == 0
    assert "[requested] risk_acceptance on cve CVE-2021-44228, requested by alice" in out
    exception_id = int(out.split("#", 1)[1].split(" ", 1)[0])
    assert f"autosec exceptions approve {exception_id}" in out

    code, _, err = cli("approve", str(exception_id), "--as", "Alice")
    assert code == 1 and "refused:" in err and "cannot approve it" in err
    assert _status(conn) == "open"

    code, out, _ = cli("approve", str(exception_id), "--as", "bob")
    assert code == 0 and "approved by bob" in out and "1 finding(s) set aside now" in out
    assert _status(conn) == "accepted"

    code, out, _ = cli("list", "--status", "approved", "--json")
    [listed] = json.loads(out)
    assert (listed["id"], listed["approved_by"], listed["findings_set_aside"]) == (
        exception_id,
        "bob",
        1,
    )

    code, out, _ = cli("revoke", str(exception_id), "--as", "carol", "--reason", "patched")
    assert code == 0 and "[revoked]" in out and "1 finding(s) open again" in out
    assert _status(conn) == "open"
    code, out, _ = cli("list")
    assert "revoked by carol: patched" in out


def test_expiry_as_a_date_means_the_end_of_that_day(cli) -> None:
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    code, out, _ = cli(
        "request",
        "--kind",
        "false_positive",
        "--asset",
        "web",
        "--reason",
        "lab only",
        "--expires",
        day.isoformat(),
        "--as",
        "alice",
    )
    assert code == 0
    assert f"expires {day + timedelta(days=1):%Y-%m-%d} 00:00 UTC" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--asset", "nowhere", "--days", "5"], "not in the inventory"),
        (["--cve", "CVE-2021-44228", "--days", "400"], "more than 366 days"),
        (["--finding", "abc", "--days", "5"], "not a finding fingerprint"),
    ],
)
def test_a_refused_request_says_why_and_stores_nothing(cli, conn, args, message) -> None:
    code, _, err = cli(
        "request", "--kind", "risk_acceptance", *args, "--reason", "r", "--as", "alice"
    )
    assert code == 1 and message in err
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM finding_exceptions").fetchone()[0] == 0

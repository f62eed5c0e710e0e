"""The discovery stage: each source records and resolves only its own blind spots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.discovery.billing import BillingConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.stages.discovery import run_billing
from autosec.store import discovery, inventory

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HEADER = "provider,account_id,account_name,service,cost,currency,owner_email,period\n"


def _known_account(conn) -> None:
    asset = Asset(
        "aws-prod",
        "aws-prod",
        AssetKind.CLOUD_ACCOUNT,
        "file",
        "team-cloud",
        Environment.PRODUCTION,
        Criticality.HIGH,
        (),
        ("account:111111111111",),
    )
    sync = inventory.start_sync(conn, "file", "file")
    inventory.apply_source_snapshot(conn, sync, "file", [asset], T0)
    conn.commit()


def test_billing_flags_unknown_accounts_and_resolves_them_when_they_go(conn, tmp_path) -> None:
    _known_account(conn)
    export = tmp_path / "billing.csv"
    export.write_text(
        HEADER
        + "aws,111111111111,prod,EC2,100.50,USD,ops@example.com,2026-10\n"
        + "aws,222222222222,shadow-ml,SageMaker,9000.00,USD,alice@example.com,2026-10\n"
        + "aws,=cmd|' /C calc'!A0,evil,EC2,1,USD,x@example.com,2026-10\n"
    )
    outcome = run_billing(conn, BillingConfig(path=export), T0)
    assert (outcome.blind_spots, len(outcome.new_blind_spot_ids), outcome.rejected) == (1, 1, 1)
    [spot] = discovery.open_blind_spots(conn)
    assert spot["address"] == "aws:account:222222222222" and spot["source"] == "billing"
    assert "alice@example.com" in str(spot["evidence"])
    rejected = conn.execute(
        "SELECT location, reason FROM input_rejections WHERE source = 'billing'"
    ).fetchall()
    assert len(rejected) == 1 and "billing.csv:4" in rejected[0][0]

    export.write_text(HEADER + "aws,111111111111,prod,EC2,100.50,USD,ops@example.com,2026-11\n")
    again = run_billing(conn, BillingConfig(path=export), T0 + timedelta(days=30))
    assert (again.blind_spots, again.resolved) == (0, 1)
    assert discovery.open_blind_spots(conn) == []

"""Billing export discovery: reading exports, rejecting hostile rows, flagging unknown accounts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.discovery import billing, registry
from autosec.discovery.billing import (
    BillingBlindSpot,
    BillingConfig,
    BillingRow,
    SourceError,
    blind_spot_address,
    match,
    transform,
)
from autosec.domain.models import Asset, AssetKind, BlindSpot, Criticality, Environment

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HEADER = "provider,account_id,account_name,project_id,service,cost,currency,owner_email,period"

EXPORT = [
    HEADER,
    "aws,123456789012,payments-prod,,AmazonEC2,100.10,USD,pay@corp.test,2025-01",
    "aws,123456789012,payments-prod,,AmazonS3,0.20,USD,pay@corp.test,2025-02",
    "aws,123456789012,payments-prod,,AmazonEC2,-10.00,USD,,2025-02",  # a credit
    "aws,000011112222,sandbox,,AWSLambda,3,USD,dev@corp.test,2025-02",
    "gcp,01ABCD-234567-89EFGH,main billing,shop-prod-1,Compute Engine,50,EUR,,2025-02",
    "gcp,01ABCD-234567-89EFGH,main billing,ml-scratch,Vertex AI,7.5,EUR,ml@corp.test,2025-02",
]


def _write(tmp_path, lines, name="export.csv", newline="\r\n", bom=True) -> str:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + newline.join(lines).encode() + b"\r\n")
    return str(path)


def _account(asset_id: str, name: str = "", tags: tuple[str, ...] = (), kind=None) -> Asset:
    return Asset(
        id=asset_id,
        name=name or asset_id,
        kind=kind or AssetKind.CLOUD_ACCOUNT,
        source="cmdb",
        owner="platform",
        environment=Environment.PRODUCTION,
        criticality=Criticality.HIGH,
        tags=tags,
    )


# --------------------------------------------------------------------------------------- get


def test_get_reads_a_bom_crlf_export_with_file_and_line(tmp_path):
    path = _write(tmp_path, [*EXPORT[:2], "", *EXPORT[2:3]])
    rows = billing.get(path)
    assert [(r.file, r.line) for r in rows] == [(path, 2), (path, 4)]
    assert rows[0].values == {
        "provider": "aws",
        "account_id": "123456789012",
        "account_name": "payments-prod",
        "project_id": "",
        "service": "AmazonEC2",
        "cost": "100.10",
        "currency": "USD",
        "owner_email": "pay@corp.test",
        "period": "2025-01",
    }
    assert rows[1].position == f"{path}:4"


def test_get_knows_the_aws_cur_headers_and_takes_the_provider_from_the_caller(tmp_path):
    path = _write(
        tmp_path,
        [
            "identity/LineItemId,lineItem/UsageAccountId,lineItem/ProductCode,"
            "lineItem/UnblendedCost,lineItem/CurrencyCode,bill/BillingPeriodStartDate",
            'abc,123456789012,AmazonEC2,"1.5",USD,2025-02-01T00:00:00Z',
        ],
        bom=False,
        newline="\n",
    )
    with pytest.raises(SourceError, match="header has no provider column"):
        billing.get(path)
    (row,) = billing.get(path, provider="aws")
    assert row.values == {
        "account_id": "123456789012",
        "service": "AmazonEC2",
        "cost": "1.5",
        "currency": "USD",
        "period": "2025-02-01T00:00:00Z",
        "provider": "aws",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "export.csv: empty export: expected a header row"),
        (b"provider,service\r\naws,EC2\r\n", "export.csv:1: header has no account or project"),
        (
            b"provider,account_id,SubscriptionId\r\n",
            "export.csv:1: columns 'account_id' and 'SubscriptionId' both give account_id",
        ),
        (
            b"provider,account_id\r\naws,123456789012\r\naws,123456789012,extra\r\n",
            "export.csv:3: 3 cells but the header names 2 columns",
        ),
        (b"provider,account_id\r\naws,123456789012\r\naws\r\n", "export.csv:3: 1 cells"),
        (
            b'provider,account_id\r\naws,"1234\r\n\r\n',
            "export.csv:2: malformed CSV: unexpected end of data",
        ),
        (
            b"provider,account_id,account_name\r\naws,123456789012,caf\xe9\r\n",
            "export.csv:2: byte 21 of the line is not valid UTF-8",
        ),
    ],
)
def test_malformed_exports_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        billing.get(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_and_oversized_exports_fail(tmp_path):
    with pytest.raises(SourceError, match="cannot read the export"):
        billing.get(tmp_path / "missing.csv")
    path = _write(tmp_path, EXPORT)
    with pytest.raises(SourceError, match="larger than the 100 limit"):
        billing.get(path, max_bytes=100)


# --------------------------------------------------------------------------------- transform


def test_unknown_accounts_and_projects_are_blind_spots_with_their_evidence(tmp_path):
    rows = billing.get(_write(tmp_path, EXPORT))
    result = match(rows, [], now=NOW)

    assert [s.address for s in result.blind_spots] == [
        "aws:account:000011112222",
        "aws:account:123456789012",
        "gcp:account:01abcd-234567-89efgh",
        "gcp:project:ml-scratch",
        "gcp:project:shop-prod-1",
    ]
    assert result.known == []
    assert result.rejects == []
    spot = result.blind_spots[1]
    assert isinstance(spot, BlindSpot)
    assert (spot.port, spot.source, spot.seen_at) == (0, "billing", NOW)
    assert (spot.provider, spot.kind, spot.identifier) == ("aws", "account", "123456789012")
    assert spot.evidence == {
        "provider": "aws",
        "kind": "account",
        "account_id": "123456789012",
        "names": ["payments-prod"],
        "projects": [],
        "services": ["AmazonEC2", "AmazonS3"],
        "services_total": 2,
        "owner_emails": ["pay@corp.test"],
        "periods": ["2025-01", "2025-02"],
        "total_cost": {"USD": "90.30"},
        "rows": 3,
        "first_row": f"{rows[0].file}:2",
        "method": "billing export",
        "source": "billing",
    }
    gcp_account = result.blind_spots[2].evidence
    assert gcp_account["projects"] == ["ml-scratch", "shop-prod-1"]
    assert gcp_account["total_cost"] == {"EUR": "57.5"}
    project = result.blind_spots[4].evidence
    assert project["accounts"] == ["01abcd-234567-89efgh"]
    assert project["project_id"] == "shop-prod-1"


def test_costs_in_different_currencies_are_never_added_together():
    rows = [
        BillingRow("x.csv", 2, {"provider": "azure", "account_id": "sub-1", "cost": "10"}),
        BillingRow(
            "x.csv", 3, {"provider": "azure", "account_id": "SUB-1", "cost": "5", "currency": "eur"}
        ),
        BillingRow(
            "x.csv", 4, {"provider": "azure", "account_id": "sub-1", "cost": "1", "currency": "USD"}
        ),
    ]
    (spot,) = transform(rows, [], now=NOW)
    assert spot.address == "azure:account:sub-1"  # one blind spot whatever the case
    assert spot.evidence["total_cost"] == {"EUR": "5", "USD": "1", "unspecified": "10"}


@pytest.mark.parametrize(
    "asset",
    [
        _account("123456789012"),
        _account("acct-7", name="123456789012"),
        _account("acct-7", tags=("account:123456789012",)),
        _account("acct-7", tags=("aws:123456789012",)),
        _account("acct-7", tags=("aws:account:123456789012",)),
        _account("acct-7", tags=("amazon:123456789012",)),
    ],
)
def test_a_cloud_account_asset_knows_an_account_by_id_name_or_tag(asset):
    rows = [BillingRow("x.csv", 2, {"provider": "aws", "account_id": "123456789012"})]
    result = match(rows, [asset], now=NOW)
    assert result.blind_spots == []
    assert result.known == ["aws:account:123456789012"]


@pytest.mark.parametrize(
    "asset",
    [
        _account("acct-7", tags=("gcp:123456789012",)),  # another provider's account
        _account("acct-7", tags=("account:123456789013",)),
        _account("acct-7", tags=("123456789012",)),  # a bare tag is no identifier
        _account("123456789012", kind=AssetKind.HOST),  # only cloud accounts count
    ],
)
def test_near_misses_do_not_explain_an_account(asset):
    rows = [BillingRow("x.csv", 2, {"provider": "aws", "account_id": "123456789012"})]
    (spot,) = transform(rows, [asset], now=NOW)
    assert spot.address == "aws:account:123456789012"


def test_a_project_is_known_by_its_own_identifier_even_under_a_known_account():
    rows = [
        BillingRow("x.csv", 2, {"provider": "gcp", "account_id": "01ab", "project_id": "shop"}),
        BillingRow("x.csv", 3, {"provider": "gcp", "account_id": "01ab", "project_id": "ml"}),
    ]
    assets = [_account("billing", tags=("account:01ab",)), _account("shop-project", "shop")]
    result = match(rows, assets, now=NOW)
    assert [s.address for s in result.blind_spots] == ["gcp:project:ml"]
    assert result.known == ["gcp:account:01ab", "gcp:project:shop"]


@pytest.mark.parametrize(
    ("values", "reason", "value"),
    [
        ({"account_name": '=HYPERLINK("http://x")'}, "field 'account_name': starts with", None),
        ({"service": "@SUM(A1)"}, "field 'service': starts with a spreadsheet formula", None),
        ({"account_name": "prod\x1b[31m"}, "field 'account_name': contains control", "prod\\x1b"),
        ({"account_name": "prod\u202egnp.exe"}, "invisible formatting characters", None),
        ({"service": "x" * 257}, "field 'service': longer than 256 characters", None),
        ({"account_id": "1234;rm -rf /"}, "field 'account_id': '1234;rm -rf /' is not an", None),
        ({"account_id": "12345678901"}, "AWS account id is 12 digits", "12345678901"),
        ({"provider": "aws cloud"}, "field 'provider': 'aws cloud' is not a provider name", None),
        ({"provider": ""}, "field 'provider': missing", None),
        ({"account_id": "", "project_id": ""}, "neither an account_id nor a project_id", None),
        ({"cost": "1,234.50"}, "field 'cost': '1,234.50' is not a number", None),
        ({"cost": "NaN"}, "field 'cost': 'NaN' is not a finite number", None),
        ({"currency": "dollars"}, "field 'currency': 'dollars' is not a three-letter", None),
        ({"owner_email": "nobody"}, "field 'owner_email': 'nobody' is not an e-mail", None),
    ],
)
def test_hostile_or_malformed_values_reject_the_row_with_its_position(values, reason, value):
    good = {"provider": "aws", "account_id": "123456789012", "account_name": "ok", "cost": "1"}
    rows = [
        BillingRow("x.csv", 2, good),
        BillingRow("x.csv", 3, good | values),
    ]
    result = match(rows, [], now=NOW)
    (reject,) = result.rejects
    assert reject.position == "x.csv:3"
    assert reason in reject.reason
    if value is not None:
        assert value in reject.value
    location, stored_value, stored_reason = reject.as_rejection()
    assert (location, stored_reason) == ("x.csv:3", reject.reason)
    assert stored_value is None or all(ch.isprintable() for ch in stored_value)
    (spot,) = result.blind_spots
    assert spot.evidence["rows"] == 1  # the rejected row added nothing
    assert spot.evidence["names"] == ["ok"]


def test_provider_names_are_normalised():
    rows = [
        BillingRow("x.csv", 2, {"provider": "Amazon Web Services", "account_id": "123456789012"}),
        BillingRow("x.csv", 3, {"provider": "Google Cloud", "project_id": "shop"}),
        BillingRow("x.csv", 4, {"provider": "OCI", "account_id": "ocid1.tenancy.oc1.aaaa"}),
    ]
    assert [s.address for s in transform(rows, [], now=NOW)] == [
        "aws:account:123456789012",
        "gcp:project:shop",
        "oci:account:ocid1.tenancy.oc1.aaaa",
    ]


def test_addresses_are_never_network_targets():
    from autosec.domain.targets import InvalidTarget, validate_target

    with pytest.raises(InvalidTarget):
        validate_target(blind_spot_address("aws", "account", "123456789012"))
    with pytest.raises(ValueError, match="kind must be 'account' or 'project'"):
        blind_spot_address("aws", "org", "o-1")


def test_config_names_one_export_and_checks_its_provider():
    config = BillingConfig(path="/exports/cur.csv", provider="Amazon Web Services")
    assert (config.path, config.provider) == (Path("/exports/cur.csv"), "aws")
    with pytest.raises(ValidationError, match="'aws;id' is not a provider name"):
        BillingConfig(path="/exports/cur.csv", provider="aws;id")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        BillingConfig(path="/exports/cur.csv", bucket="s3://x")


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        transform([], [], now=datetime(2025, 1, 1))  # noqa: DTZ001


def test_registered_as_a_discovery_source():
    module = registry.get_source("billing")
    assert module.transform is transform
    assert callable(module.get)
    assert issubclass(module.BillingBlindSpot, BlindSpot)
    assert BillingBlindSpot.__dataclass_params__.frozen

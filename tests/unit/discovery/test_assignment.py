"""Who owns a blind spot: ordered rules, first match wins, the matching rule is kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autosec.discovery.assignment import (
    Assignment,
    AssignmentRule,
    InvalidAssignmentRule,
    assign,
    assign_spot,
    rules_from_config,
)
from autosec.domain.models import BlindSpot

NOW = datetime(2026, 11, 1, tzinfo=UTC)

RULES = rules_from_config(
    [
        {"id": "dmz", "owner": "team-edge", "range": "10.1.0.0/16"},
        {"id": "office", "owner": "team-it", "range": "10.0.0.0/8"},
        {"id": "v6", "owner": "team-v6", "range": "2001:db8::/32"},
        {"id": "shop", "owner": "team-shop", "zone": "shop.example.com."},
        {"id": "example", "owner": "team-web", "zone": "Example.com"},
        {"id": "ml-account", "owner": "team-ml", "provider": "aws", "account": "222222222222"},
        {"id": "aws", "owner": "team-cloud", "provider": "aws"},
    ]
)


@pytest.mark.parametrize(
    ("address", "evidence", "expected"),
    [
        ("10.1.2.3", {}, Assignment("team-edge", "dmz")),  # first match wins over "office"
        ("10.9.2.3", {}, Assignment("team-it", "office")),
        ("2001:db8::5", {}, Assignment("team-v6", "v6")),
        ("192.168.1.1", {}, None),
        ("api.shop.example.com", {}, Assignment("team-shop", "shop")),
        ("WWW.EXAMPLE.COM.", {}, Assignment("team-web", "example")),
        ("example.com", {}, Assignment("team-web", "example")),
        ("notexample.com", {}, None),  # a suffix, not a substring
        ("203.0.113.7", {"names": ["x.shop.example.com"]}, Assignment("team-shop", "shop")),
        ("10.1.0.1", {"names": ["x.shop.example.com"]}, Assignment("team-edge", "dmz")),
        ("aws:account:222222222222", {}, Assignment("team-ml", "ml-account")),
        ("aws:account:333333333333", {}, Assignment("team-cloud", "aws")),
        ("gcp:project:my-proj", {}, None),
        # a billing spot's names are account names, not DNS names
        ("gcp:project:p", {"names": ["shop.example.com"]}, None),
    ],
)
def test_first_matching_rule_names_the_owner(address, evidence, expected) -> None:
    assert assign(address, evidence, RULES) == expected


def test_assign_spot_reads_the_spot_and_no_rules_assign_nothing() -> None:
    spot = BlindSpot("10.1.0.9", 22, "tcp_sweep", {}, NOW)
    assert assign_spot(spot, RULES) == Assignment("team-edge", "dmz")
    assert assign_spot(spot, ()) is None


def test_rule_order_is_config_order() -> None:
    rules = rules_from_config(
        [
            {"id": "wide", "owner": "a", "range": "10.0.0.0/8"},
            {"id": "narrow", "owner": "b", "range": "10.1.0.0/16"},
        ]
    )
    assert assign("10.1.0.1", {}, rules) == Assignment("a", "wide")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": "r", "owner": "t"}, "exactly one of range, zone or provider"),
        ({"id": "r", "owner": "t", "range": "10.0.0.0/8", "zone": "x.com"}, "exactly one"),
        ({"id": "r", "owner": "t", "range": "10.0.0.300/8"}, "'10.0.0.300/8' is not a CIDR"),
        ({"id": "r", "owner": " ", "zone": "x.com"}, "owner is empty"),
        ({"id": "r", "owner": "t", "zone": "x com"}, "is not a DNS name"),
        ({"id": "r", "owner": "t", "zone": "."}, "is empty"),
        ({"id": "r", "owner": "t", "zone": "x.com", "account": "1"}, "needs a provider"),
        ({"id": "r", "owner": "t", "cidr": "10.0.0.0/8"}, "unknown keys ['cidr']"),
        ({"id": "r", "owner": "t", "range": 10}, "['range'] must be strings"),
    ],
)
def test_invalid_rules_are_refused_with_the_rule_named(item, message) -> None:
    with pytest.raises(InvalidAssignmentRule, match="rule") as caught:
        rules_from_config([item])
    assert message in str(caught.value)


def test_ids_are_unique_and_default_to_the_position() -> None:
    with pytest.raises(InvalidAssignmentRule, match="'a': id used twice"):
        rules_from_config(
            [
                {"id": "a", "owner": "t", "zone": "x.com"},
                {"id": "a", "owner": "u", "zone": "y.com"},
            ]
        )
    [rule] = rules_from_config([{"owner": "t", "zone": "x.com"}])
    assert rule.id == "#1" and rule.kind == "zone"


def test_rule_kinds() -> None:
    assert [r.kind for r in RULES] == [
        "range",
        "range",
        "range",
        "zone",
        "zone",
        "billing",
        "billing",
    ]
    with pytest.raises(InvalidAssignmentRule, match="without an id"):
        AssignmentRule(id="", owner="t", zone="x.com")

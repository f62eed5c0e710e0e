"""The tls engine: the argv it builds, what it refuses, what it accepts, what a run covers."""

from __future__ import annotations

import sys

import pytest

from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.registry import get_engine
from autosec.engines.tls import parser
from autosec.engines.tls.engine import TlsEngine

ENGINE = TlsEngine()
PREFIX = [
    sys.executable, "-I", "-m", "sslyze", "--json_out=-", "--mozilla_config=disable",
    "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--certinfo", "--",
]  # fmt: skip


def targets(*values: str) -> list[Target]:
    return [validate_target(v) for v in values]


def asset(kind: AssetKind, *addresses: str) -> Asset:
    return Asset(
        id="a1",
        name="a1",
        kind=kind,
        source="test",
        owner="team",
        environment=Environment.PRODUCTION,
        criticality=Criticality.HIGH,
        addresses=addresses,
    )


def test_argv_names_each_https_endpoint_once() -> None:
    argv = ENGINE.command(
        targets(
            "https://shop.example.com/",
            "https://shop.example.com/cart",  # same endpoint
            "https://API.example.com:8443/v1",
            "https://[2001:db8::5]/",
            "https://10.0.0.5:443/",
        ),
        {},
    )
    assert argv == [
        *PREFIX,
        "shop.example.com:443",
        "api.example.com:8443",
        "[2001:db8::5]:443",
        "10.0.0.5:443",
    ]
    assert all(isinstance(part, str) for part in argv)


def test_only_https_urls_are_scanned() -> None:
    argv = ENGINE.command(
        targets("10.0.0.5", "db.example.com", "10.0.1.0/24", "http://www.example.com/",
                "https://www.example.com/"),
        {"ports": [443, 8443]},
    )  # fmt: skip
    assert argv[len(PREFIX) :] == ["www.example.com:443"]
    with pytest.raises(ValueError, match=r"https:// URL targets only.*10\.0\.0\.5"):
        ENGINE.command(targets("10.0.0.5", "http://www.example.com/"), {})


HOSTILE = [
    "a;rm -rf /",
    "$(id)",
    "`id`",
    "--certinfo_ca_file=/etc/shadow",
    "-x",
    "https://a.example.com/ --json_out=/tmp/x",
    "https://a.example.com/\n--json_out=/tmp/x",
    "https://user:pw@example.com/",
    "https://a.example.com{127.0.0.1}:443/",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("kind", [TargetKind.HOSTNAME, TargetKind.IP, TargetKind.URL])
def test_hostile_targets_are_refused_before_any_argv(value: str, kind: TargetKind) -> None:
    """Even a Target built by hand (skipping the stage's validation) is validated again."""
    forged = [validate_target("https://ok.example.com/"), Target(value, kind)]
    with pytest.raises(InvalidTarget):
        ENGINE.command(forged, {})
    with pytest.raises(InvalidTarget):
        ENGINE.scope(forged, {})


def test_the_argv_is_built_from_the_validated_target_values_only() -> None:
    """Every argv element after the fixed options is host:port from a validated https URL."""
    given = targets("https://a.example.com:8443/path/x#frag", "https://b.example.com/")
    argv = ENGINE.command(given, {})
    assert argv[: len(PREFIX)] == PREFIX
    assert argv[len(PREFIX) :] == ["a.example.com:8443", "b.example.com:443"]
    assert not any("path" in part or "frag" in part for part in argv)


def test_no_targets_or_a_bare_string() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        ENGINE.command([], {})
    with pytest.raises(ValueError, match="not one string"):
        ENGINE.command("https://a.example.com/", {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"starttls": "smtp"}, "unknown tls option.*'starttls'"),
        ({"ports": "443"}, "must be a list"),
        ({"ports": [0]}, "0 is not an integer"),
        ({"ports": [True]}, "True is not an integer"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command(targets("https://a.example.com/"), options)


def test_scope_and_covers_are_per_endpoint() -> None:
    scope = ENGINE.scope(
        targets("https://a.example.com/", "https://b.example.com:8443/x", "10.0.0.5"), {}
    )
    assert scope.targets == ("https://a.example.com/", "https://b.example.com:8443/x")
    assert scope.ports == (443, 8443)
    restored = ScanScope.from_dict(scope.as_dict())
    assert restored == scope
    a = Location(host="a.example.com", port=443, protocol="tcp")
    for rule in parser.RULE_IDS:
        assert ENGINE.covers(rule, a, restored)
    # another port on a scanned host, a host the run skipped, an unscanned name: stay open
    assert not ENGINE.covers(parser.TLS_1_0, Location("a.example.com", 8443, "tcp"), restored)
    assert not ENGINE.covers(parser.TLS_1_0, Location("10.0.0.5", 443, "tcp"), restored)
    assert not ENGINE.covers(parser.TLS_1_0, Location("c.example.com", 443, "tcp"), restored)
    assert ENGINE.covers(parser.CERT_EXPIRED, Location("B.example.com", 8443, "tcp"), restored)
    # another engine's rule, or a location without a port
    assert not ENGINE.covers("nmap.open-port", a, restored)
    assert not ENGINE.covers(parser.TLS_1_0, Location(host="a.example.com"), restored)


def test_covers_reads_ipv6_endpoints() -> None:
    scope = ENGINE.scope(targets("https://[2001:db8::5]:8443/"), {})
    assert ENGINE.covers(parser.SSL_3_0, Location("2001:db8:0::5", 8443, "tcp"), scope)


def test_the_stage_gives_it_url_targets_only() -> None:
    assert ENGINE.target_kinds == frozenset({TargetKind.URL})


def test_capabilities_name_every_rule_the_parser_emits() -> None:
    assert ENGINE.rule_ids() == frozenset(parser.RULE_IDS)
    kinds = {kind for c in ENGINE.capabilities for kind in c.asset_kinds}
    assert kinds == {AssetKind.WEB_APP, AssetKind.SERVICE}
    assert get_engine("tls").name == "tls"


@pytest.mark.parametrize(
    ("kind", "addresses", "accepted"),
    [
        (AssetKind.WEB_APP, ("https://shop.example.com/",), True),
        (AssetKind.SERVICE, ("10.0.0.5", "https://10.0.0.5:8443/"), True),
        (AssetKind.WEB_APP, ("http://shop.example.com/",), False),
        (AssetKind.SERVICE, ("10.0.0.5", "db.example.com"), False),
        (AssetKind.HOST, ("https://shop.example.com/",), False),
        (AssetKind.DATABASE, ("https://db.example.com/",), False),
        (AssetKind.WEB_APP, ("https://a.example.com/;id",), False),
        (AssetKind.WEB_APP, (), False),
    ],
)
def test_accepts(kind: AssetKind, addresses: tuple[str, ...], accepted: bool) -> None:
    assert ENGINE.accepts(asset(kind, *addresses)) is accepted


def test_expiry_window_is_checked() -> None:
    assert TlsEngine(expiry_warning_days=14).expiry_warning_days == 14
    for bad in (-1, 4000, "30", True):
        with pytest.raises(ValueError, match="expiry_warning_days"):
            TlsEngine(expiry_warning_days=bad)  # type: ignore[arg-type]


def test_version_command_runs_sslyze_from_this_interpreter() -> None:
    assert ENGINE.version_command() == [sys.executable, "-I", "-m", "sslyze", "--help"]
    assert ENGINE.parse_version("SSLyze version 6.3.1\n") == "6.3.1"

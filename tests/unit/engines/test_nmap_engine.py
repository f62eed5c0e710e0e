"""The nmap engine: the argv it builds, what it refuses, what a run covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
)
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.nmap.engine import DEFAULT_PORTS, NmapEngine
from autosec.engines.nmap.parser import (
    DATABASE_EXPOSED,
    OPEN_PORT,
    SCRIPT_RULE_IDS,
    VERSION_DISCLOSED,
    NmapIncompleteScan,
)

FIXTURES = Path(__file__).parent / "fixtures"
ENGINE = NmapEngine()
PREFIX = [
    "nmap", "-sT", "-sV", "--version-intensity", "2", "-T4", "-Pn", "-n", "--noninteractive",
    "--host-timeout", "300s",
]  # fmt: skip


def targets(*values: str) -> list[Target]:
    return [validate_target(v) for v in values]


def asset(kind: AssetKind = AssetKind.HOST, *addresses: str) -> Asset:
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


def test_argv_shape() -> None:
    argv = ENGINE.command(targets("10.0.0.5", "10.0.1.0/24"), {"ports": [443, 80, 80]})
    assert argv == [*PREFIX, "-p", "80,443", "-oX", "-", "--", "10.0.0.5", "10.0.1.0/24"]
    assert all(isinstance(part, str) for part in argv)


def test_default_ports_and_options() -> None:
    argv = ENGINE.command(targets("db.example.com"), {})
    ports = argv[argv.index("-p") + 1].split(",")
    assert [int(p) for p in ports] == sorted(DEFAULT_PORTS)
    assert {80, 443, 3306, 5432, 6379, 8080, 27017} <= set(DEFAULT_PORTS)
    assert argv[-2:] == ["--", "db.example.com"]
    options = {"ports": [22], "host_timeout_seconds": 30, "version_intensity": 7}
    argv = ENGINE.command(targets("10.0.0.5"), options)
    assert argv[argv.index("--host-timeout") + 1] == "30s"
    assert argv[argv.index("--version-intensity") + 1] == "7"


def test_url_targets_scan_their_host_and_port() -> None:
    argv = ENGINE.command(targets("https://shop.example.com/cart", "http://10.0.0.9:8081/"), {})
    assert argv[-3:] == ["--", "shop.example.com", "10.0.0.9"]
    ports = {int(p) for p in argv[argv.index("-p") + 1].split(",")}
    assert {443, 8081} <= ports
    argv = ENGINE.command(targets("http://10.0.0.9:8081/"), {"ports": [22]})
    assert argv[argv.index("-p") + 1] == "22"  # explicit ports are taken as given


def test_duplicate_targets_are_scanned_once() -> None:
    argv = ENGINE.command(targets("10.0.0.5", "http://10.0.0.5/", "10.0.0.5"), {"ports": [80]})
    assert argv[argv.index("--") :] == ["--", "10.0.0.5"]


def test_ipv6_targets_need_their_own_run() -> None:
    argv = ENGINE.command(targets("2001:db8::5", "2001:db8:1::/120"), {"ports": [80]})
    assert "-6" in argv and argv[-2:] == ["2001:db8::5", "2001:db8:1::/120"]
    with pytest.raises(ValueError, match=r"IPv4 and IPv6.*2001:db8::5"):
        ENGINE.command(targets("10.0.0.5", "2001:db8::5"), {"ports": [80]})
    with pytest.raises(ValueError, match="IPv4 and IPv6"):
        ENGINE.command(targets("db.example.com", "2001:db8::5"), {"ports": [80]})


HOSTILE = [
    "a;rm -rf /",
    "$(id)",
    "`id`",
    "--script=x",
    "-iL/etc/passwd",
    "127.0.0.1 -oN /tmp/x",
    "127.0.0.1\n-oN /tmp/x",
    "10.0.0.1|nc",
    "",
    "http://user:pw@example.com/",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("kind", [TargetKind.HOSTNAME, TargetKind.IP, TargetKind.URL])
def test_hostile_targets_are_refused_before_any_argv(value: str, kind: TargetKind) -> None:
    """Even a Target built by hand (skipping the stage's validation) is validated again."""
    forged = [validate_target("10.0.0.5"), Target(value, kind)]
    with pytest.raises(InvalidTarget):
        ENGINE.command(forged, {"ports": [80]})
    with pytest.raises(InvalidTarget):
        ENGINE.scope(forged, {})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_are_refused(value: str) -> None:
    with pytest.raises(InvalidTarget):
        ENGINE.command([value], {})  # type: ignore[list-item]


def test_no_targets() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        ENGINE.command([], {})
    with pytest.raises(ValueError, match="not one string"):
        ENGINE.command("10.0.0.5", {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ([0], "0 is not an integer in 1..65535"),
        ([65536], "65536 is not"),
        ([-1], "-1 is not"),
        (["80"], "'80' is not"),
        ([80.0], "80.0 is not"),
        ([True], "True is not"),
        ([80, None], "None is not"),
        ([], "is empty"),
        ("80,443", "must be a list"),
        (80, "must be a list"),
        ("1-65535", "must be a list"),
    ],
)
def test_bad_ports_are_refused(ports: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command(targets("10.0.0.5"), {"ports": ports})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"script": "vuln"}, "unknown nmap option.*'script'"),
        ({"ports": [80], "extra_args": ["-A"]}, "'extra_args'"),
        ({"host_timeout_seconds": 0}, "host_timeout_seconds"),
        ({"host_timeout_seconds": "30s"}, "host_timeout_seconds"),
        ({"version_intensity": 10}, "version_intensity"),
        ({"version_intensity": "9; id"}, "version_intensity"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command(targets("10.0.0.5"), options)


def test_scope_is_what_nmap_was_told_to_scan() -> None:
    scope = ENGINE.scope(targets("10.0.0.5", "http://10.0.0.6:8081/"), {})
    assert scope.targets == ("10.0.0.5", "http://10.0.0.6:8081/")
    assert set(scope.ports) == set(DEFAULT_PORTS) | {8081}
    explicit = ENGINE.scope(targets("10.0.0.5"), {"ports": [443, 80]})
    assert explicit.ports == (80, 443)
    assert ScanScope.from_dict(explicit.as_dict()) == explicit


def test_covers_honours_the_scanned_ports() -> None:
    scope = ENGINE.scope(targets("10.0.0.5"), {"ports": [80, 443]})
    web = Location(host="10.0.0.5", port=80, protocol="tcp")
    db = Location(host="10.0.0.5", port=3306, protocol="tcp")
    for rule in (OPEN_PORT, VERSION_DISCLOSED, DATABASE_EXPOSED):
        assert ENGINE.covers(rule, web, scope)
        assert not ENGINE.covers(rule, db, scope)
    assert not ENGINE.covers("tls.weak-cipher", web, scope)
    # a default run looked at the default ports only: a finding on another port stays open
    default_scope = ENGINE.scope(targets("10.0.0.5"), {})
    assert ENGINE.covers(OPEN_PORT, db, default_scope)
    assert not ENGINE.covers(OPEN_PORT, Location("10.0.0.5", 31337, "tcp"), default_scope)


def test_capabilities_name_every_rule_the_parser_emits() -> None:
    assert ENGINE.rule_ids() == {OPEN_PORT, VERSION_DISCLOSED, DATABASE_EXPOSED} | SCRIPT_RULE_IDS
    kinds = {kind for c in ENGINE.capabilities for kind in c.asset_kinds}
    assert kinds == {AssetKind.HOST, AssetKind.SERVICE, AssetKind.DATABASE, AssetKind.WEB_APP}


@pytest.mark.parametrize(
    ("kind", "addresses", "accepted"),
    [
        (AssetKind.HOST, ("10.0.0.5",), True),
        (AssetKind.DATABASE, ("db.example.com",), True),
        (AssetKind.WEB_APP, ("https://shop.example.com/",), True),
        (AssetKind.SERVICE, ("$(id)", "10.0.0.5"), True),
        (AssetKind.HOST, ("$(id)", "--script=x"), False),
        (AssetKind.HOST, (), False),
        (AssetKind.HOST, ("10.0.0.0/24",), False),  # a range is a discovery job
        (AssetKind.REPOSITORY, ("https://github.com/example/repo",), False),
        (AssetKind.CLOUD_ACCOUNT, ("10.0.0.5",), False),
    ],
)
def test_accepts(kind: AssetKind, addresses: tuple[str, ...], accepted: bool) -> None:
    assert ENGINE.accepts(asset(kind, *addresses)) is accepted


def test_version() -> None:
    assert ENGINE.version_command() == ["nmap", "--version"]
    assert ENGINE.parse_version("Nmap version 7.93 ( https://nmap.org )\n") == "7.93"


def test_parse_requires_every_target_to_be_scanned() -> None:
    raw = (FIXTURES / "nmap_web_db.xml").read_bytes()
    assets = {"127.0.0.21": "web", "127.0.0.22": "shadow", "localhost": "laptop"}
    assert {o.asset_id for o in ENGINE.parse(raw, assets)} == {"web", "shadow", "laptop"}
    with pytest.raises(NmapIncompleteScan, match=r"nosuch\.invalid"):
        ENGINE.parse(raw, {**assets, "nosuch.invalid": "ghost"})
    timed_out = (FIXTURES / "nmap_host_timeout.xml").read_bytes()
    with pytest.raises(ValueError, match="host timeout"):
        ENGINE.parse(timed_out, {"127.0.0.21": "web", "127.0.0.1": "laptop"})

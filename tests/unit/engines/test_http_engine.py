"""The http engine and its probe's command line: argv, refusals, acceptance, coverage."""

from __future__ import annotations

import sys

import pytest

from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.http import parser, probe
from autosec.engines.http.engine import HttpEngine
from autosec.engines.registry import get_engine

ENGINE = HttpEngine()
PREFIX = [
    sys.executable, "-I", "-m", "autosec.engines.http.probe",
    "--timeout", "10", "--max-body", "65536", "--",
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


def test_argv_passes_each_url_once_as_given() -> None:
    argv = ENGINE.command(
        targets(
            "https://shop.example.com/",
            "http://shop.example.com:8080/admin/",
            "https://shop.example.com/",
            "10.0.0.5",
            "10.0.1.0/24",
        ),
        {"ports": [80]},
    )
    assert argv == [*PREFIX, "https://shop.example.com/", "http://shop.example.com:8080/admin/"]
    assert all(isinstance(part, str) for part in argv)


def test_options_reach_the_probe_as_numbers() -> None:
    argv = ENGINE.command(
        targets("https://a.example.com/"), {"request_timeout_seconds": 3, "max_body_bytes": 4096}
    )
    assert argv[4:8] == ["--timeout", "3", "--max-body", "4096"]


def test_no_url_among_the_targets_is_refused() -> None:
    with pytest.raises(ValueError, match=r"URL targets only.*10\.0\.0\.5, db\.example\.com"):
        ENGINE.command(targets("10.0.0.5", "db.example.com"), {})
    with pytest.raises(ValueError, match="at least one target"):
        ENGINE.command([], {})
    with pytest.raises(ValueError, match="not one string"):
        ENGINE.command("https://a.example.com/", {})  # type: ignore[arg-type]


HOSTILE = [
    "a;rm -rf /",
    "$(id)",
    "--timeout=0",
    "-x",
    "https://a.example.com/ --max-body 1",
    "https://a.example.com/\n--max-body=1",
    "https://user:pw@example.com/",
    "file:///etc/passwd",
    "gopher://a.example.com/",
    "https://a.example.com/?q=`id`",
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
    given = targets("  https://a.example.com/app  ", "http://[2001:db8::5]:8080/")
    argv = ENGINE.command(given, {})
    assert argv[: len(PREFIX)] == PREFIX
    assert argv[len(PREFIX) :] == ["https://a.example.com/app", "http://[2001:db8::5]:8080/"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"follow_redirects": True}, "unknown http option.*'follow_redirects'"),
        ({"request_timeout_seconds": 0}, "request_timeout_seconds"),
        ({"request_timeout_seconds": "10; id"}, "request_timeout_seconds"),
        ({"request_timeout_seconds": 301}, "request_timeout_seconds"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"max_body_bytes": True}, "max_body_bytes"),
        ({"ports": "80"}, "must be a list"),
        ({"ports": [70000]}, "70000 is not an integer"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command(targets("https://a.example.com/"), options)


def test_scope_and_covers() -> None:
    scope = ENGINE.scope(
        targets("https://a.example.com/", "http://a.example.com:8080/admin/", "10.0.0.5"), {}
    )
    assert scope.targets == ("https://a.example.com/", "http://a.example.com:8080/admin/")
    assert scope.ports == (443, 8080)
    scope = ScanScope.from_dict(scope.as_dict())

    def at(url: str) -> Location:
        return Location(host="a.example.com", port=443, protocol="tcp", url=url)

    # page rules: exactly the probed URLs
    assert ENGINE.covers(parser.MISSING_CSP, at("https://a.example.com/"), scope)
    assert ENGINE.covers(parser.REDIRECT, at("http://a.example.com:8080/admin/"), scope)
    assert not ENGINE.covers(parser.MISSING_CSP, at("https://a.example.com/other"), scope)
    assert not ENGINE.covers(parser.MISSING_CSP, at("http://a.example.com/"), scope)
    # origin rules: any probed origin, whatever the path
    assert ENGINE.covers(parser.ENV_EXPOSED, at("https://a.example.com/.env"), scope)
    assert ENGINE.covers(parser.TRACE_ENABLED, at("http://a.example.com:8080/"), scope)
    assert ENGINE.covers(parser.GIT_EXPOSED, at("https://A.example.com:443/.git/HEAD"), scope)
    assert not ENGINE.covers(parser.GIT_EXPOSED, at("https://b.example.com/.git/HEAD"), scope)
    assert not ENGINE.covers(parser.GIT_EXPOSED, at("http://a.example.com/.git/HEAD"), scope)
    # another engine's rule, or a location without a URL
    assert not ENGINE.covers("tls.tls1_0-enabled", at("https://a.example.com/"), scope)
    assert not ENGINE.covers(parser.MISSING_CSP, Location(host="a.example.com"), scope)


def test_the_stage_gives_it_url_targets_only() -> None:
    assert ENGINE.target_kinds == frozenset({TargetKind.URL})


def test_capabilities_name_every_rule_the_parser_emits() -> None:
    assert ENGINE.rule_ids() == frozenset(parser.RULE_IDS)
    kinds = {kind for c in ENGINE.capabilities for kind in c.asset_kinds}
    assert kinds == {AssetKind.WEB_APP, AssetKind.SERVICE}
    assert get_engine("http").name == "http"


@pytest.mark.parametrize(
    ("kind", "addresses", "accepted"),
    [
        (AssetKind.WEB_APP, ("https://shop.example.com/",), True),
        (AssetKind.SERVICE, ("10.0.0.5", "http://10.0.0.5:8080/"), True),
        (AssetKind.WEB_APP, ("shop.example.com",), False),
        (AssetKind.HOST, ("http://10.0.0.5/",), False),
        (AssetKind.REPOSITORY, ("https://git.example.com/org/repo",), False),
        (AssetKind.WEB_APP, ("ftp://shop.example.com/",), False),
        (AssetKind.WEB_APP, (), False),
    ],
)
def test_accepts(kind: AssetKind, addresses: tuple[str, ...], accepted: bool) -> None:
    assert ENGINE.accepts(asset(kind, *addresses)) is accepted


# ------------------------------------------------------------------- the probe's own guard


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme must be http or https"),
        ("https:///nohost", "has no host"),
        ("https://u:p@a.example.com/", "carries credentials"),
        ("https://a.example.com:99999/", "port is not a number in range"),
        ("https://a.example.com/ x", "whitespace or control"),
    ],
)
def test_the_probe_refuses_urls_it_must_not_request(url: str, message: str) -> None:
    with pytest.raises(probe.ProbeUsageError, match=message):
        probe.check_url(url)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--timeout", "0", "https://a.example.com/"],
        ["--timeout", "x", "https://a.example.com/"],
        ["--max-body", "99999999", "https://a.example.com/"],
        ["--", "file:///etc/passwd"],
    ],
)
def test_the_probe_exits_2_on_bad_arguments(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        probe.main(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().out == ""  # nothing that a parser could mistake for results


def test_the_probe_version(capsys) -> None:
    assert probe.main(["--version"]) == 0
    assert ENGINE.parse_version(capsys.readouterr().out) == probe.PROBE_VERSION


def test_origins() -> None:
    assert probe.origin_of("HTTPS://A.example.com:443/x") == "https://a.example.com"
    assert probe.origin_of("http://a.example.com:8080/x") == "http://a.example.com:8080"
    assert probe.origin_of("http://[2001:db8::5]/") == "http://[2001:db8::5]"

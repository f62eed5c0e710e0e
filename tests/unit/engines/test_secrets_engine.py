"""The secrets engine: the argv it builds, what it refuses, what a run covers."""

from __future__ import annotations

import sys

import pytest

from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.registry import get_engine
from autosec.engines.secrets import parser
from autosec.engines.secrets.engine import SCAN_MODULE, SecretsEngine
from autosec.engines.secrets.scan import EXCLUDE_FILES, detect_secrets_argv, main

ENGINE = SecretsEngine()


def repo(*addresses: str, kind: AssetKind = AssetKind.REPOSITORY) -> Asset:
    return Asset(
        id="r1",
        name="r1",
        kind=kind,
        source="test",
        owner="team",
        environment=Environment.PRODUCTION,
        criticality=Criticality.HIGH,
        addresses=addresses,
    )


def test_argv_is_the_scan_module_over_one_root() -> None:
    argv = ENGINE.command([validate_target("/srv/repos/app/")], {})
    assert argv == [sys.executable, "-I", "-m", SCAN_MODULE, "--", "/srv/repos/app"]
    assert ENGINE.command([validate_target("./app")], {"ports": [22]})[-2:] == ["--", "./app"]


def test_detect_secrets_options_never_verify_and_keep_the_root_out_of_option_position() -> None:
    args = detect_secrets_argv("/srv/repos/app")
    assert args[:2] == ["-C", "/srv/repos/app"]
    assert args[args.index("scan") :] == [
        "scan",
        "--all-files",
        "--no-verify",
        "--exclude-files",
        EXCLUDE_FILES,
        "--",
        "/srv/repos/app",
    ]


HOSTILE = [
    "--foo",
    "--all-files",
    "-C/etc",
    "/srv/$(id)",
    "/srv/`id`",
    "/srv/app\n--baseline",
    "/srv/app\x00x",
    "/srv/app; rm -rf /",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_paths_are_refused_before_any_argv(value: str) -> None:
    """Even a Target built by hand (skipping the stage's validation) is validated again."""
    with pytest.raises(InvalidTarget):
        ENGINE.command([Target(value, TargetKind.PATH)], {})
    with pytest.raises(InvalidTarget):
        ENGINE.scope([Target(value, TargetKind.PATH)], {})
    with pytest.raises(InvalidTarget):
        ENGINE.command([value], {})  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([], "exactly one root, got 0"),
        (["/srv/a", "/srv/b"], "exactly one root, got 2: /srv/a, /srv/b"),
        (
            ["https://git.example.com/org/app"],
            "'https://git.example.com/org/app' is not a path but a url target",
        ),
        (["10.0.0.5"], "'10.0.0.5' is not a path but a ip target"),
        (["/"], "whole filesystem"),
        (["/srv/.."], "whole filesystem"),
    ],
)
def test_anything_but_one_folder_is_refused(targets: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command([validate_target(t) for t in targets], {})
    with pytest.raises(ValueError, match="not one string"):
        ENGINE.command("/srv/a", {})  # type: ignore[arg-type]


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown secrets option\(s\) 'extra_args'"):
        ENGINE.command([validate_target("/srv/a")], {"extra_args": ["--baseline", "x"]})


@pytest.mark.parametrize(
    ("asset", "accepted"),
    [
        (repo("/srv/repos/app"), True),
        (repo("https://git.example.com/org/app", "./checkouts/app"), True),
        (repo("https://git.example.com/org/app"), False),
        (repo("$(id)", "--foo"), False),
        (repo(), False),
        (repo("/srv/repos/app", kind=AssetKind.HOST), False),
    ],
)
def test_accepts_repositories_with_a_local_path(asset: Asset, accepted: bool) -> None:
    assert ENGINE.accepts(asset) is accepted


def test_the_stage_gives_it_paths_only_one_at_a_time() -> None:
    assert ENGINE.target_kinds == {TargetKind.PATH}
    assert ENGINE.max_targets_per_run == 1
    assert get_engine("secrets").name == "secrets"


def test_scope_and_covers() -> None:
    scope = ENGINE.scope([validate_target("/srv/repos/app")], {"ports": [80]})
    assert scope == ScanScope(("/srv/repos/app",))
    assert ScanScope.from_dict(scope.as_dict()) == scope
    where = Location(file="config/settings.py")
    assert ENGINE.covers("secrets.aws-access-key", where, scope)
    assert not ENGINE.covers("secrets.acme-corp-token", where, scope)  # unknown detector
    assert not ENGINE.covers("nmap.open-port", where, scope)


def test_capabilities_cover_repositories_with_every_detector_rule() -> None:
    assert ENGINE.rule_ids() == set(parser.RULE_IDS)
    assert {k for c in ENGINE.capabilities for k in c.asset_kinds} == {AssetKind.REPOSITORY}


def test_parse_gives_everything_to_the_one_asset_of_the_run() -> None:
    raw = (
        b'{"results": {"a.py": [{"type": "Private Key", "line_number": 1, '
        b'"hashed_secret": "' + b"a" * 40 + b'"}]}}'
    )
    (observation,) = ENGINE.parse(raw, {"/srv/repos/app": "host:/srv/repos/app"})
    assert observation.asset_id == "host:/srv/repos/app"
    with pytest.raises(ValueError, match="one root, but 2 were given"):
        ENGINE.parse(raw, {"/srv/a": "a", "/srv/b": "b"})


def test_version() -> None:
    assert ENGINE.version_command() == [sys.executable, "-I", "-m", "detect_secrets", "--version"]
    assert ENGINE.parse_version("1.5.0\n") == "1.5.0"


def test_scan_entry_refuses_a_missing_root_and_bad_arguments(tmp_path, capsys) -> None:
    assert main(["--", str(tmp_path / "gone")]) == 2
    assert "is not a directory (missing or not mounted)" in capsys.readouterr().err
    for argv in ([], [str(tmp_path)], ["--", "--all-files"], ["--", str(tmp_path), "x"]):
        assert main(argv) == 2
        assert "usage:" in capsys.readouterr().err
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["--", str(afile)]) == 2

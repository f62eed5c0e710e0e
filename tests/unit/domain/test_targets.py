"""Target validation: filesystem paths beside IPs, ranges, host names and URLs."""

from __future__ import annotations

import pytest

from autosec.domain.targets import InvalidTarget, TargetKind, host_of, validate_target
from autosec.remediation.actions.quarantine import quarantine_addresses


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("/srv/repos/app", "/srv/repos/app"),
        ("/srv/repos/app/", "/srv/repos/app"),
        ("/srv//repos/./app", "/srv/repos/app"),
        ("/srv/repos/x/../app", "/srv/repos/app"),
        ("//srv/repos/app", "/srv/repos/app"),
        ("/", "/"),
        ("/../..", "/"),
        ("./app", "./app"),
        ("./app/../lib//", "./lib"),
        ("./", "."),
        (".", "."),
        ("..", ".."),
        ("../shared/repo", "../shared/repo"),
        ("./a/../../b", "../b"),
        ("/srv/repos/--help", "/srv/repos/--help"),  # absolute: cannot be read as an option
        ("./-rf", "./-rf"),
        ("/srv/repos/café", "/srv/repos/café"),
        ("  /srv/repos/app  ", "/srv/repos/app"),
    ],
)
def test_paths_are_recognised_and_normalised(raw: str, value: str) -> None:
    target = validate_target(raw)
    assert target.kind is TargetKind.PATH
    assert target.value == value
    assert validate_target(target.value) == target  # validating again changes nothing
    assert host_of(target) == value
    assert not target.value.startswith("-")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("--foo", "starts with '-'"),
        ("-/srv/app", "starts with '-'"),
        ("/srv/app\x00/etc/passwd", "control or shell characters"),
        ("/srv/app\n--all-files", "control or shell characters"),
        ("/srv/$(id)", "shell characters"),
        ("/srv/`id`", "shell characters"),
        ("/srv/app;rm -rf /", "shell characters"),
        ("/srv/app|nc", "shell characters"),
        ("/srv/my repo", "whitespace"),
        ("/srv/app\tx", "whitespace"),
        ("/srv/*", "shell characters"),
        ("/srv/app\x7f", "control characters"),
        ("/srv/app\x85x", "control"),
        ("/" + "a" * 4096, "longer than 4096"),
        ("srv/repos/app", "not a valid CIDR range"),  # relative without ./ is not a path
        ("~/repos/app", "not a valid CIDR range"),
        ("file:///srv/repos/app", "URL scheme 'file'"),
    ],
)
def test_hostile_or_ambiguous_paths_are_refused(raw: str, problem: str) -> None:
    with pytest.raises(InvalidTarget, match=problem) as refused:
        validate_target(raw)
    assert repr(raw) in str(refused.value) or raw.strip() in str(refused.value)


def test_surrounding_blanks_are_trimmed_but_inner_line_breaks_refused() -> None:
    assert validate_target("/srv/app\n").value == "/srv/app"
    with pytest.raises(InvalidTarget, match="whitespace, control"):
        validate_target("./app\r/x")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("10.0.0.5", TargetKind.IP),
        ("10.0.0.0/24", TargetKind.CIDR),
        ("2001:db8::/120", TargetKind.CIDR),
        ("db.example.com", TargetKind.HOSTNAME),
        ("https://shop.example.com/cart", TargetKind.URL),
    ],
)
def test_network_targets_are_not_taken_for_paths(raw: str, kind: TargetKind) -> None:
    assert validate_target(raw).kind is kind


def test_a_firewall_is_never_asked_to_block_a_path() -> None:
    assert quarantine_addresses(["/srv/repos/app", "10.0.0.5", "./app"]) == ["10.0.0.5"]
    with pytest.raises(ValueError, match="has no asset_addresses"):
        quarantine_addresses(["/srv/repos/app"])

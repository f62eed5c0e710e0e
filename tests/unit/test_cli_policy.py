"""`autosec policy check` on every shipped policy, and on a broken one."""

from __future__ import annotations

import pytest

from autosec.cli import main
from tests_support import REPO_ROOT

SHIPPED = sorted((REPO_ROOT / "include" / "policies").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_policy_passes_the_check(path, capsys) -> None:
    assert main(["policy", "check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_a_broken_policy_prints_every_error_with_its_path(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "version: 1\n"
        "enforcement:\n"
        "  rules:\n"
        "    - id: r1\n"
        "      action: reboot\n"
        "      mode: in_the_loop\n"
        "      approvers: [alice]\n"
        "      quorum: 3\n"
        "  surprise: true\n"
    )
    assert main(["policy", "check", str(broken)]) == 1
    errors = capsys.readouterr().err
    assert "enforcement.rules.0.action" in errors and "reboot" in errors
    assert "enforcement.surprise" in errors
    assert errors.count(str(broken)) >= 2


def test_at_least_the_default_and_an_example_are_shipped() -> None:
    assert {p.name for p in SHIPPED} >= {"default.yaml", "strict.yaml"}

"""The secrets engine: credentials committed to repositories and folders, found by detect-secrets.

The argv it builds, one run per repository root::

    PYTHON -I -m autosec.engines.secrets.scan -- ROOT

- ``PYTHON``: the interpreter running the worker, where detect-secrets is installed with
  autosec; no separate executable has to be on the runner's clean ``PATH``.
- ``-I``: isolated mode. Python leaves the working directory out of ``sys.path`` (a
  ``detect_secrets.py`` lying in a scanned folder is never imported) and ignores ``PYTHON*``
  variables and the user's site packages.
- ``-m autosec.engines.secrets.scan``: checks that ROOT is a readable directory, then runs
  detect-secrets with fixed options (``scan.py`` lists them and says why); a missing folder is
  a failed run, never an empty report that would close every open finding.
- ``--``: ends the options; ROOT is a validated path (absolute, or ``./``-relative to the
  worker's working directory), so it never starts with ``-`` either.

Which assets: repositories with a local path among their addresses (a checkout on the worker or
a mounted volume). A repository's web URL is not something a file scanner can read, so the
scan stage leaves URLs out (``target_kinds``). detect-secrets reports file names relative to
one root, so a run scans exactly one root (``max_targets_per_run``) and the stage runs each
repository of a batch separately; one unreadable checkout fails only its own run.

The scan stage's ``ports`` option means nothing for files: it is accepted and ignored.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from autosec.domain.models import Asset, AssetKind, Observation
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import Capability, Engine, ScanScope
from autosec.engines.secrets import parser

SCAN_MODULE = "autosec.engines.secrets.scan"
OPTION_KEYS = frozenset({"ports"})


class SecretsEngine(Engine):
    """Credentials and keys stored in a repository's files (detect-secrets, no verification)."""

    name = "secrets"
    capabilities = (
        Capability("secrets committed to source code", parser.RULE_IDS, (AssetKind.REPOSITORY,)),
    )
    default_timeout_seconds = 900
    target_kinds = frozenset({TargetKind.PATH})
    max_targets_per_run = 1

    def version_command(self) -> list[str]:
        return [sys.executable, "-I", "-m", "detect_secrets", "--version"]

    def parse_version(self, output: str) -> str:
        return parser.parse_detect_secrets_version(output)

    def accepts(self, asset: Asset) -> bool:
        """A repository with at least one address that is a local path."""
        if asset.kind is not AssetKind.REPOSITORY:
            return False
        for address in asset.addresses:
            try:
                if validate_target(address).kind is TargetKind.PATH:
                    return True
            except InvalidTarget:
                continue
        return False

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """The argv for one root; the target is validated again and must be a path."""
        _check_options(options)
        root = _root(targets)
        return [sys.executable, "-I", "-m", SCAN_MODULE, "--", root]

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        """The one root the run reads; ports do not apply to files."""
        _check_options(options)
        return ScanScope((_root(targets),))

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Observations of the run's one root, for the asset ``asset_by_host`` names."""
        if len(asset_by_host) != 1:
            raise ValueError(
                f"a secrets run reads one root, but {len(asset_by_host)} were given: "
                f"{', '.join(sorted(asset_by_host)) or 'none'}"
            )
        (asset_id,) = asset_by_host.values()
        return parser.parse_detect_secrets(raw, asset_id, self.name)


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown secrets option(s) {', '.join(map(repr, unknown))}: "
            f"allowed are {', '.join(sorted(OPTION_KEYS))}"
        )


def _root(targets: Sequence[Target]) -> str:
    if isinstance(targets, str | bytes):
        raise ValueError(f"secrets targets must be a list of targets, not one string: {targets!r}")
    checked = [validate_target(t.value if isinstance(t, Target) else t) for t in targets]
    if len(checked) != 1:
        raise ValueError(
            f"a secrets run scans exactly one root, got {len(checked)}: "
            f"{', '.join(t.value for t in checked) or 'none'}"
        )
    (target,) = checked
    if target.kind is not TargetKind.PATH:
        raise ValueError(
            f"secrets scans folders: {target.value!r} is not a path but a "
            f"{target.kind.value} target"
        )
    if target.value == "/":
        raise ValueError("secrets will not scan the whole filesystem ('/'): name the repository")
    return target.value

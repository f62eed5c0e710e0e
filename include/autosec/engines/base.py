"""The Engine contract every scan engine implements.

An engine turns validated targets into an argv (never a shell string), and its pure parser
turns the raw artefact into observations. ``capabilities`` feed the coverage map and decide
which open findings a successful run may close (see ``covers``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from autosec.domain.models import Asset, AssetKind, Location, Observation, Severity
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target


@dataclass(frozen=True)
class Capability:
    """What an engine detects (its rule ids) on which kinds of asset.

    ``limited_on`` names the kinds where the detection is only partial (the coverage map
    shows LIMITED there rather than CHECK).
    """

    detects: str
    rule_ids: tuple[str, ...]
    asset_kinds: tuple[AssetKind, ...]
    limited_on: tuple[AssetKind, ...] = ()


@dataclass(frozen=True)
class ScanScope:
    """What one run actually looked at: a run only closes findings inside its scope.

    ``rule_ids``, when set, are the only rules the run checked (an engine whose optional
    checks were off for this run); empty means every rule of the engine.
    """

    targets: tuple[str, ...]
    ports: tuple[int, ...] = ()
    rule_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"targets": list(self.targets), "ports": list(self.ports)}
        if self.rule_ids:
            data["rule_ids"] = list(self.rule_ids)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanScope:
        return cls(
            tuple(data.get("targets", ())),
            tuple(int(p) for p in data.get("ports", ())),
            tuple(str(r) for r in data.get("rule_ids", ())),
        )


class EngineError(RuntimeError):
    """An engine could not run or its output could not be read."""


class Engine(abc.ABC):
    name: ClassVar[str]
    capabilities: ClassVar[tuple[Capability, ...]]
    default_timeout_seconds: ClassVar[int] = 600
    # An invasive engine sends more than a scan's usual probes; the planner runs it only on
    # assets whose environment the scan configuration allows, or that are tagged for it.
    invasive: ClassVar[bool] = False
    # The kinds of target the engine reads; the scan stage leaves other addresses of an asset
    # out of its runs (a repository's web URL is nothing a file scanner can read).
    target_kinds: ClassVar[frozenset[TargetKind]] = frozenset(TargetKind)
    # At most this many targets in one run (None: no limit); the stage splits larger groups.
    max_targets_per_run: ClassVar[int | None] = None

    @abc.abstractmethod
    def version_command(self) -> list[str]:
        """argv that prints the engine's version."""

    @abc.abstractmethod
    def parse_version(self, output: str) -> str:
        """Read the version from ``version_command`` output."""

    @abc.abstractmethod
    def accepts(self, asset: Asset) -> bool:
        """Whether this engine has anything to say about ``asset``."""

    @abc.abstractmethod
    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """The argv for one run over already validated ``targets``."""

    @abc.abstractmethod
    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Pure: raw artefact -> observations, assigned to assets by host."""

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        return ScanScope(tuple(t.value for t in targets), tuple(options.get("ports", ())))

    def rule_ids(self) -> frozenset[str]:
        return frozenset(r for c in self.capabilities for r in c.rule_ids)

    def covers(self, rule_id: str, location: Location, scope: ScanScope) -> bool:
        """Whether a successful run with ``scope`` would have reported this finding again.

        A finding outside what the run looked at (another rule, port or host) stays open.
        """
        if rule_id not in self.rule_ids():
            return False
        if scope.rule_ids and rule_id not in scope.rule_ids:
            return False
        return not (scope.ports and location.port is not None and location.port not in scope.ports)


def revalidate(targets: Sequence[Target], engine: str) -> list[Target]:
    """Validate targets again right before an argv is built from them.

    ``command()`` is the last wall before a process starts, so it never trusts that its
    caller validated: a bare string, an empty list or a hostile value is refused here.
    """
    if isinstance(targets, str | bytes):
        raise ValueError(f"{engine} targets must be a list of targets, not one string: {targets!r}")
    checked = [validate_target(t.value if isinstance(t, Target) else t) for t in targets]
    if not checked:
        raise ValueError(f"{engine} needs at least one target")
    return checked


def valid_targets(addresses: Sequence[str]) -> list[Target]:
    """The addresses of an asset that are valid targets; the others are left out (the scan
    stage records them as rejected input)."""
    targets = []
    for address in addresses:
        try:
            targets.append(validate_target(address))
        except InvalidTarget:
            continue
    return targets


@dataclass(frozen=True)
class RuleText:
    """What a parser says about one of its rules: the words people read, kept beside the code."""

    title: str
    severity: Severity
    cwe: str
    description: str


def check_ports_option(options: Mapping[str, Any], engine: str) -> None:
    """The scan configuration's ``ports``: a list of integers in 1..65535, or refused."""
    ports = options.get("ports", [])
    if isinstance(ports, str | bytes) or not isinstance(ports, Sequence | set | frozenset):
        raise ValueError(f"{engine} option 'ports' must be a list of port numbers, got {ports!r}")
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"{engine} option 'ports': {port!r} is not an integer in 1..65535")

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

from autosec.domain.models import Asset, AssetKind, Location, Observation
from autosec.domain.targets import Target


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
    """What one run actually looked at: a run only closes findings inside its scope."""

    targets: tuple[str, ...]
    ports: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"targets": list(self.targets), "ports": list(self.ports)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanScope:
        return cls(tuple(data.get("targets", ())), tuple(int(p) for p in data.get("ports", ())))


class EngineError(RuntimeError):
    """An engine could not run or its output could not be read."""


class Engine(abc.ABC):
    name: ClassVar[str]
    capabilities: ClassVar[tuple[Capability, ...]]
    default_timeout_seconds: ClassVar[int] = 600
    # An invasive engine sends more than a scan's usual probes; the planner runs it only on
    # assets whose environment the scan configuration allows, or that are tagged for it.
    invasive: ClassVar[bool] = False

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
        return not (scope.ports and location.port is not None and location.port not in scope.ports)

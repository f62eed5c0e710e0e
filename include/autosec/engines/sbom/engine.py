"""The sbom engine: known-vulnerable and outdated dependencies, from an SBOM file.

Subject. The engine reads SBOM files; it does not build them (that needs a generator such as
syft or cdxgen, which autosec does not ship). An asset is scanned when one of its addresses is
an absolute path to an SBOM: a name ending ``.cdx.json``, ``.cdx.xml``, ``.spdx.json``,
``.sbom.json`` or ``.sbom.xml``, or named ``bom.json``/``bom.xml``/``sbom.json`` (also with a
spec version, ``bom.1.4.json``). Usually that asset is a repository whose build publishes its
SBOM; a host or service with a published SBOM works the same way. Relative paths are refused:
they would depend on the worker's working directory.

The run, through the runner (argv, no shell, clean environment)::

    <python> -m autosec.engines.sbom.read /srv/sboms/shop.cdx.json [...]

validates and normalises each file (see ``read``) and prints one JSON inventory, kept as the
run's evidence.

Matching needs the advisories in the store, and an engine's ``parse`` is pure. So the lookup
is injected: ``engine.with_intel(lookup, max_age_days=..., today=...)`` returns an engine whose
``parse`` matches with it (the stage builds the lookup from the store, see
``autosec.stages.intel.bind_sbom_engine``). The registry's engine has no lookup, and its
``parse`` refuses to run: without advisories a run would "find" nothing and close every open
vulnerability finding it never checked. The refusal is a ``ValueError``, so the scan stage
records the run as failed and it closes nothing.

What a successful run closes (``covers``): findings of its rules on the SBOM files it read; the
freshness rule only when the run applied the freshness policy (``scope.rule_ids``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from autosec.domain.models import Asset, AssetKind, Location, Observation
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.base import Capability, Engine, ScanScope
from autosec.engines.sbom import parser
from autosec.intel.matching import AdvisoryLookup

READER_MODULE = "autosec.engines.sbom.read"
OPTION_KEYS = frozenset({"ports"})  # the scan stage passes its port list to every engine
_KINDS = (
    AssetKind.REPOSITORY,
    AssetKind.HOST,
    AssetKind.SERVICE,
    AssetKind.WEB_APP,
    AssetKind.DATABASE,
)
_SBOM_NAME = re.compile(
    r"(\.(cdx|spdx|sbom)\.json|\.(cdx|sbom)\.xml|^s?bom(\.[0-9.]+)?\.(json|xml))$", re.IGNORECASE
)


class SbomEngine(Engine):
    """Dependencies with known vulnerabilities (OSV), advisories it could not place, and
    dependencies older than the freshness policy allows."""

    name = "sbom"
    capabilities = (
        Capability("dependencies with known vulnerabilities", (parser.VULNERABLE,), _KINDS),
        Capability("advisories whose ranges could not be assessed", (parser.UNASSESSED,), _KINDS),
        Capability("dependencies older than the freshness policy", (parser.OUTDATED,), _KINDS),
    )
    target_kinds = frozenset({TargetKind.PATH})
    default_timeout_seconds = 300

    def __init__(
        self,
        advisories: AdvisoryLookup | None = None,
        *,
        max_age_days: int | None = None,
        today: date | None = None,
    ) -> None:
        if max_age_days is not None and today is None:
            raise ValueError("the freshness check (max_age_days) needs today's date")
        self.advisories = advisories
        self.max_age_days = max_age_days
        self.today = today

    def with_intel(
        self,
        advisories: AdvisoryLookup,
        *,
        max_age_days: int | None = None,
        today: date | None = None,
    ) -> SbomEngine:
        """This engine with an advisory lookup (and the freshness policy) for ``parse``."""
        return SbomEngine(advisories, max_age_days=max_age_days, today=today)

    def version_command(self) -> list[str]:
        return [sys.executable, "-m", READER_MODULE, "--version"]

    def parse_version(self, output: str) -> str:
        line = output.strip().splitlines()[0] if output.strip() else ""
        if not line.startswith("autosec-sbom-reader"):
            raise ValueError(f"not the sbom reader's version line: {output[:100]!r}")
        return line.removeprefix("autosec-sbom-reader").strip()

    def accepts(self, asset: Asset) -> bool:
        return asset.kind in _KINDS and any(_sbom_path(a) is not None for a in asset.addresses)

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """``<python> -m autosec.engines.sbom.read PATH...``; every path validated again."""
        return [sys.executable, "-m", READER_MODULE, *_paths(targets, options)]

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        rules = [parser.VULNERABLE, parser.UNASSESSED]
        if self.max_age_days is not None:
            rules.append(parser.OUTDATED)
        return ScanScope(tuple(_paths(targets, options)), rule_ids=tuple(rules))

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Observations for the SBOMs read; ``asset_by_host`` maps each path to its asset."""
        if self.advisories is None:
            raise parser.SbomParseError(
                "the sbom engine has no advisory lookup (use with_intel): without advisories "
                "the run would close vulnerability findings it never checked"
            )
        return parser.parse_sbom_output(
            raw,
            asset_by_host,
            self.advisories,
            self.name,
            max_age_days=self.max_age_days,
            today=self.today,
        )

    def covers(self, rule_id: str, location: Location, scope: ScanScope) -> bool:
        """Rules are per vulnerability (``sbom.vulnerable-component:CVE-...``): a run covers
        its rule families on the SBOM files it read, and freshness only when it checked it."""
        family = rule_id.split(":", 1)[0]
        if family not in parser.RULE_PREFIXES:
            return False
        checked = getattr(scope, "rule_ids", ()) or (parser.VULNERABLE, parser.UNASSESSED)
        if family not in checked:
            return False
        return location.file is not None and location.file in scope.targets


def _sbom_path(value: str) -> str | None:
    """The canonical absolute SBOM path in ``value``, or None when it is not one."""
    try:
        target = validate_target(value)
    except InvalidTarget:
        return None
    if target.kind is not TargetKind.PATH or not target.value.startswith("/"):
        return None
    return target.value if _SBOM_NAME.search(PurePosixPath(target.value).name) else None


def _paths(targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown sbom option(s) {', '.join(map(repr, unknown))}: the sbom engine takes none"
        )
    if isinstance(targets, str | bytes):
        raise ValueError(f"sbom targets must be a list of paths, not one string: {targets!r}")
    paths: list[str] = []
    for target in targets:
        value = target.value if isinstance(target, Target) else target
        path = _sbom_path(value)
        if path is None:
            raise InvalidTarget(
                str(value),
                "not an absolute path to an SBOM file (*.cdx.json, *.cdx.xml, *.spdx.json, "
                "*.sbom.json, *.sbom.xml, bom.json, bom.xml, sbom.json)",
            )
        if path not in paths:
            paths.append(path)
    if not paths:
        raise ValueError("the sbom engine needs at least one SBOM path")
    return paths

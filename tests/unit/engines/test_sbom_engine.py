"""The sbom engine: which assets it takes, the argv it builds, what it refuses and closes."""

from __future__ import annotations

import sys
from datetime import date

import pytest

from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.domain.targets import InvalidTarget, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.registry import get_engine
from autosec.engines.sbom.engine import READER_MODULE, SbomEngine
from autosec.engines.sbom.parser import SbomParseError
from autosec.intel.matching import AdvisoryIndex

ENGINE = SbomEngine()
SBOM = "/srv/sboms/shop.cdx.json"


def asset(kind: AssetKind, *addresses: str) -> Asset:
    return Asset(
        "shop", "shop", kind, "test", "team", Environment.PRODUCTION, Criticality.HIGH, addresses
    )


def test_the_registry_engine_is_this_one() -> None:
    engine = get_engine("sbom")
    assert isinstance(engine, SbomEngine) and engine.advisories is None


@pytest.mark.parametrize(
    ("addresses", "accepted"),
    [
        ((SBOM,), True),
        (("https://git.example.org/shop", "/srv/sboms/shop.spdx.json"), True),
        (("/srv/build/bom.xml",), True),
        (("/srv/build/bom.1.4.json",), True),
        (("/srv/build/sbom.json",), True),
        (("/srv/repos/shop",), False),  # a checkout: nothing here builds an SBOM
        (("/srv/build/package.json",), False),
        (("./relative/shop.cdx.json",), False),
        (("10.0.0.5", "https://shop.example.org"), False),
        (("/srv/sboms/x.cdx.json;rm -rf /",), False),
    ],
)
def test_assets_with_an_absolute_sbom_path_are_accepted(addresses, accepted: bool) -> None:
    assert ENGINE.accepts(asset(AssetKind.REPOSITORY, *addresses)) is accepted


def test_cloud_accounts_are_not_scanned() -> None:
    assert not ENGINE.accepts(asset(AssetKind.CLOUD_ACCOUNT, SBOM))


def test_the_argv_runs_the_reader_with_each_path_once() -> None:
    targets = [validate_target(SBOM), validate_target("/srv/sboms/api.spdx.json"), SBOM]
    argv = ENGINE.command(targets, {"ports": [443]})  # the stage's port list is ignored
    assert argv == [sys.executable, "-m", READER_MODULE, SBOM, "/srv/sboms/api.spdx.json"]
    assert ENGINE.version_command() == [sys.executable, "-m", READER_MODULE, "--version"]


@pytest.mark.parametrize(
    "value",
    ["--help", "/etc/passwd", "./shop.cdx.json", "$(id).cdx.json", "https://x.org/bom.json"],
)
def test_targets_that_are_not_absolute_sbom_paths_are_refused(value: str) -> None:
    with pytest.raises(InvalidTarget):
        ENGINE.command([value], {})


def test_options_and_empty_batches_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown sbom option"):
        ENGINE.command([SBOM], {"scripts": ["x"]})
    with pytest.raises(ValueError, match="at least one SBOM path"):
        ENGINE.command([], {})
    with pytest.raises(ValueError, match="not one string"):
        ENGINE.command(SBOM, {})  # type: ignore[arg-type]


def test_without_an_advisory_lookup_parse_refuses() -> None:
    """A run judged without advisories would close every vulnerability finding: fail it."""
    with pytest.raises(SbomParseError, match="no advisory lookup"):
        ENGINE.parse(b"{}", {SBOM: "shop"})
    assert isinstance(SbomParseError("x"), ValueError)  # the scan stage records it as failed


def test_a_bound_engine_keeps_the_registry_engine_unbound() -> None:
    bound = get_engine("sbom").with_intel(AdvisoryIndex().lookup, max_age_days=30,
                                          today=date(2026, 1, 1))  # fmt: skip
    assert bound.advisories is not None and get_engine("sbom").advisories is None
    assert bound.scope([SBOM], {}).rule_ids[-1] == "sbom.outdated-component"
    with pytest.raises(ValueError, match="needs today's date"):
        SbomEngine(AdvisoryIndex().lookup, max_age_days=30)


def test_a_run_covers_its_rules_on_the_files_it_read() -> None:
    scope = ENGINE.scope([SBOM], {})
    assert scope == ScanScope(
        (SBOM,), rule_ids=("sbom.vulnerable-component", "sbom.unassessed-advisory")
    )
    here = Location(file=SBOM, purl="pkg:npm/semver")
    elsewhere = Location(file="/srv/sboms/api.cdx.json", purl="pkg:npm/semver")
    assert ENGINE.covers("sbom.vulnerable-component:CVE-2022-25883", here, scope)
    assert ENGINE.covers("sbom.unassessed-advisory:OSV-1", here, scope)
    assert not ENGINE.covers("sbom.vulnerable-component:CVE-2022-25883", elsewhere, scope)
    assert not ENGINE.covers("nmap.open-port", here, scope)
    # Freshness findings close only after a run that applied the freshness policy.
    assert not ENGINE.covers("sbom.outdated-component", here, scope)
    checked = ScanScope.from_dict(
        SbomEngine(AdvisoryIndex().lookup, max_age_days=1, today=date(2026, 1, 1))
        .scope([SBOM], {})
        .as_dict()
    )
    assert ENGINE.covers("sbom.outdated-component", here, checked)


def test_the_version_line_is_read() -> None:
    line = "autosec-sbom-reader 1 (cyclonedx-python-lib 11.12.0)\n"
    assert ENGINE.parse_version(line) == "1 (cyclonedx-python-lib 11.12.0)"
    with pytest.raises(ValueError, match="not the sbom reader's version line"):
        ENGINE.parse_version("Nmap version 7.94")

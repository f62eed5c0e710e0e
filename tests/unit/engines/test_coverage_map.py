"""The coverage map: CHECK where an enabled engine covers a detection, LIMITED where it only
partly does, MISSING where nothing enabled does."""

from __future__ import annotations

from typing import ClassVar

from autosec.domain.models import AssetKind
from autosec.engines.base import Capability, Engine
from autosec.engines.coverage import Coverage, coverage_map, detections


class FakeEngine(Engine):
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[tuple[Capability, ...]] = ()

    def version_command(self):
        return ["true"]

    def parse_version(self, output):
        return "1"

    def accepts(self, asset):
        return True

    def command(self, targets, options):
        return ["true"]

    def parse(self, raw, asset_by_host):
        return []


def engine(name: str, *capabilities: Capability) -> Engine:
    cls = type(name, (FakeEngine,), {"name": name, "capabilities": capabilities})
    return cls()


SERVICES = Capability(
    "service versions",
    ("svc",),
    (AssetKind.HOST, AssetKind.SERVICE),
    limited_on=(AssetKind.SERVICE,),
)
HEADERS = Capability("web headers", ("hdr",), (AssetKind.WEB_APP,))


def test_enabled_full_capability_is_check_partial_is_limited_and_absent_is_missing() -> None:
    engines = {"scanner": engine("scanner", SERVICES), "web": engine("web", HEADERS)}
    cells = coverage_map(engines, enabled=["scanner", "web"])
    assert cells[AssetKind.HOST]["service versions"].coverage is Coverage.CHECK
    assert cells[AssetKind.HOST]["service versions"].engines == ("scanner",)
    limited = cells[AssetKind.SERVICE]["service versions"]
    assert limited.coverage is Coverage.LIMITED and "scanner" in limited.note
    assert cells[AssetKind.REPOSITORY]["service versions"].coverage is Coverage.MISSING
    assert cells[AssetKind.WEB_APP]["web headers"].coverage is Coverage.CHECK
    assert cells[AssetKind.HOST]["web headers"].coverage is Coverage.MISSING


def test_a_registered_engine_that_is_not_enabled_leaves_the_detection_missing_with_a_hint() -> None:
    engines = {"scanner": engine("scanner", SERVICES), "web": engine("web", HEADERS)}
    cell = coverage_map(engines, enabled=["scanner"])[AssetKind.WEB_APP]["web headers"]
    assert cell.coverage is Coverage.MISSING
    assert cell.note == "not enabled: web"


def test_a_full_engine_beside_a_limited_one_makes_check() -> None:
    full = Capability("service versions", ("svc2",), (AssetKind.SERVICE,))
    engines = {"scanner": engine("scanner", SERVICES), "deep": engine("deep", full)}
    cell = coverage_map(engines, enabled=["scanner", "deep"])[AssetKind.SERVICE]["service versions"]
    assert cell.coverage is Coverage.CHECK
    assert set(cell.engines) == {"scanner", "deep"}


def test_every_registered_engine_declares_capabilities_that_reach_the_map() -> None:
    from autosec.engines.registry import ENGINES, get_engine

    engines = {name: get_engine(name) for name in ENGINES}
    assert all(e.capabilities for e in engines.values())
    cells = coverage_map(engines, enabled=list(ENGINES))
    for name, e in engines.items():
        for capability in e.capabilities:
            for kind in capability.asset_kinds:
                assert name in cells[kind][capability.detects].engines
    assert len(detections(engines.values())) >= len(engines)

"""Every discovery source module is registered, and the registry resolves kinds lazily."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import autosec.discovery
from autosec.discovery import registry
from autosec.discovery.tcp_sweep import OpenPort

NOT_SOURCES = {"__init__", "registry", "blind_spots", "assignment"}


def test_every_module_in_the_package_is_registered():
    package = Path(autosec.discovery.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()
    }
    registered = {target.rsplit(".", 1)[-1] for target in registry.SOURCES.values()}
    assert modules - NOT_SOURCES - registered == set(), "add these modules to SOURCES"
    assert registered - modules == set(), "SOURCES names modules that do not exist"


def test_registered_source_has_get_and_a_pure_transform():
    module = registry.get_source("tcp_sweep")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    (spot,) = module.transform([OpenPort("10.0.0.1", 22, None, 1.0)], [], now)
    assert (spot.address, spot.port, spot.source) == ("10.0.0.1", 22, "tcp_sweep")
    assert callable(module.get)


def test_unknown_kind_names_the_registered_kinds():
    with pytest.raises(registry.UnknownSource) as info:
        registry.get_source("dns_zone")
    assert (
        "unknown discovery source kind 'dns_zone': registered kinds are billing, dns, scan_names, "
        "tcp_sweep" in str(info.value)
    )

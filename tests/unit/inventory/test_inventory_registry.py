"""Every inventory source module is registered, and the registry resolves kinds lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

import autosec.inventory
from autosec.inventory import registry

NOT_SOURCES = {"__init__", "registry", "quality"}


def test_every_module_in_the_package_is_registered():
    package = Path(autosec.inventory.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()
    }
    registered = {target.rsplit(".", 1)[-1] for target in registry.SOURCES.values()}
    assert modules - NOT_SOURCES - registered == set(), "add these modules to SOURCES"
    assert registered - modules == set(), "SOURCES names modules that do not exist"


def test_get_source_returns_a_module_with_get_and_transform():
    module = registry.get_source("file")
    assert module.__name__ == "autosec.inventory.file"
    assert callable(module.get) and callable(module.transform)


def test_unknown_kind_names_the_registered_kinds():
    with pytest.raises(registry.UnknownSource) as info:
        registry.get_source("ldap")
    assert (
        str(info.value)
        == "unknown inventory source kind 'ldap': registered kinds are backstage, file, http_cmdb"
    )

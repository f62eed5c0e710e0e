"""The engine registry is explicit: every engine folder is registered, every entry exists."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import autosec.engines
from autosec.engines.base import Engine
from autosec.engines.registry import ENGINES, UnknownEngine, get_engine

ENGINES_DIR = Path(autosec.engines.__file__).parent
NOT_ENGINES = {"importers", "__pycache__"}


def engine_folders(engines_dir: Path = ENGINES_DIR) -> set[str]:
    """Every package folder under engines/ except the importers: each must be an engine."""
    return {
        path.name
        for path in engines_dir.iterdir()
        if path.is_dir() and path.name not in NOT_ENGINES and any(path.glob("*.py"))
    }


def mismatches(engines_dir: Path, registry: dict[str, str]) -> tuple[set[str], set[str]]:
    """(folders missing from the registry, registry entries without a folder)."""
    folders = engine_folders(engines_dir)
    return folders - set(registry), set(registry) - folders


def test_every_engine_folder_is_registered_and_every_entry_has_a_folder() -> None:
    assert "nmap" in engine_folders()
    unregistered, orphaned = mismatches(ENGINES_DIR, ENGINES)
    assert unregistered == set(), "engine folders missing from registry.ENGINES"
    assert orphaned == set(), "registry.ENGINES entries without a folder"


def test_the_check_catches_a_missing_folder_or_entry(tmp_path: Path) -> None:
    for name in ("nmap", "tls", "importers", "__pycache__"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "engine.py").write_text("")
    (tmp_path / "empty").mkdir()  # no module: not an engine (yet)
    registry = {"nmap": "x:Y", "sbom": "x:Y"}
    assert mismatches(tmp_path, registry) == ({"tls"}, {"sbom"})


@pytest.mark.parametrize("name", sorted(engine_folders()))
def test_every_engine_folder_has_an_engine_module(name: str) -> None:
    assert (ENGINES_DIR / name / "engine.py").is_file(), f"engines/{name}/ has no engine.py"
    assert (ENGINES_DIR / name / "parser.py").is_file(), f"engines/{name}/ has no parser.py"


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_entry_points_into_its_own_folder_and_loads(name: str) -> None:
    module_name, _, class_name = ENGINES[name].partition(":")
    assert module_name == f"autosec.engines.{name}.engine"
    engine_class = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(engine_class, Engine)
    engine = get_engine(name)
    assert isinstance(engine, engine_class)
    assert engine.name == name
    assert engine.capabilities and engine.rule_ids()
    assert get_engine(name) is engine  # one instance per name


def test_get_engine_nmap() -> None:
    assert get_engine("nmap").name == "nmap"


def test_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(UnknownEngine) as info:
        get_engine("nessus")
    assert str(info.value).startswith("unknown engine 'nessus': registered engines are ")
    assert "nmap" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_every_engine_has_pool_slots_for_its_airflow_pool() -> None:
    from autosec.engines.registry import POOL_SLOTS

    assert set(POOL_SLOTS) == set(ENGINES)
    assert all(slots >= 1 for slots in POOL_SLOTS.values())

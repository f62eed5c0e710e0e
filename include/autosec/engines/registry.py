"""The explicit engine registry: name -> "module:Class", imported only when used."""

from __future__ import annotations

import importlib
from functools import cache

from autosec.engines.base import Engine

ENGINES: dict[str, str] = {
    "nmap": "autosec.engines.nmap.engine:NmapEngine",
    "tls": "autosec.engines.tls.engine:TlsEngine",
    "http": "autosec.engines.http.engine:HttpEngine",
    "sbom": "autosec.engines.sbom.engine:SbomEngine",
    "secrets": "autosec.engines.secrets.engine:SecretsEngine",
}

# Slots of each engine's Airflow pool: how many runs of it may go at once across all workers.
POOL_SLOTS: dict[str, int] = {"nmap": 4, "tls": 4, "http": 8, "sbom": 2, "secrets": 2}


class UnknownEngine(KeyError):
    def __str__(self) -> str:
        return (
            f"unknown engine {self.args[0]!r}: registered engines are {', '.join(sorted(ENGINES))}"
        )


@cache
def get_engine(name: str) -> Engine:
    try:
        module_name, class_name = ENGINES[name].split(":")
    except KeyError:
        raise UnknownEngine(name) from None
    engine_class = getattr(importlib.import_module(module_name), class_name)
    engine = engine_class()
    if engine.name != name:
        raise RuntimeError(f"engine registered as {name!r} calls itself {engine.name!r}")
    return engine


def closing_authority(engine_name: str):
    """Whatever decides which open findings a finished run of ``engine_name`` may close:
    the engine itself, or for imported reports (``import:<format>``) their importer."""
    from autosec.engines.importers.base import IMPORT_PREFIX
    from autosec.engines.importers.registry import get_importer

    if engine_name.startswith(IMPORT_PREFIX):
        # import:<format> or import:<format>:<tool> for formats many tools write
        return get_importer(engine_name.removeprefix(IMPORT_PREFIX).split(":", 1)[0])
    return get_engine(engine_name)

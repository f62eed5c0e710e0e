"""The explicit engine registry: name -> "module:Class", imported only when used."""

from __future__ import annotations

import importlib
from functools import cache

from autosec.engines.base import Engine

ENGINES: dict[str, str] = {
    "nmap": "autosec.engines.nmap.engine:NmapEngine",
}


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

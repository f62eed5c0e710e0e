"""The explicit discovery source registry: kind -> module, imported only when used.

Adding a source is a module in this package plus one line here; a test fails when a module in
the package is missing from this table, so nothing is found (or lost) by scanning directories.
"""

from __future__ import annotations

from types import ModuleType

from autosec.domain.registry import load_module, unknown_kind_message

SOURCES: dict[str, str] = {
    "billing": "autosec.discovery.billing",
    "dns": "autosec.discovery.dns",
    "scan_names": "autosec.discovery.scan_names",
    "tcp_sweep": "autosec.discovery.tcp_sweep",
}


class UnknownSource(KeyError):
    def __str__(self) -> str:
        return unknown_kind_message("discovery source", self.args[0], SOURCES)


def get_source(kind: str) -> ModuleType:
    """The module for ``kind``; it exposes ``get`` (I/O) and ``transform`` (pure)."""
    return load_module(
        SOURCES, kind, what="discovery source", unknown=UnknownSource, required=("get", "transform")
    )

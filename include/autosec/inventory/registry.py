"""The explicit inventory source registry: kind -> module, imported only when used.

Adding a source is a module in this package plus one line here; a test fails when a module in
the package is missing from this table, so nothing is found (or lost) by scanning directories.
"""

from __future__ import annotations

from types import ModuleType

from autosec.domain.registry import load_module, unknown_kind_message

SOURCES: dict[str, str] = {
    "backstage": "autosec.inventory.backstage",
    "file": "autosec.inventory.file",
    "http_cmdb": "autosec.inventory.http_cmdb",
}


class UnknownSource(KeyError):
    def __str__(self) -> str:
        return unknown_kind_message("inventory source", self.args[0], SOURCES)


def get_source(kind: str) -> ModuleType:
    """The module for ``kind``; it exposes ``get`` (I/O) and ``transform`` (pure)."""
    return load_module(
        SOURCES, kind, what="inventory source", unknown=UnknownSource, required=("get", "transform")
    )

"""The explicit discovery source registry: kind -> module, imported only when used.

Adding a source is a module in this package plus one line here; a test fails when a module in
the package is missing from this table, so nothing is found (or lost) by scanning directories.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCES: dict[str, str] = {
    "tcp_sweep": "autosec.discovery.tcp_sweep",
}


class UnknownSource(KeyError):
    def __str__(self) -> str:
        registered = ", ".join(sorted(SOURCES))
        return f"unknown discovery source kind {self.args[0]!r}: registered kinds are {registered}"


def get_source(kind: str) -> ModuleType:
    """The module for ``kind``; it exposes ``get`` (I/O) and ``transform`` (pure)."""
    try:
        module_name = SOURCES[kind]
    except (KeyError, TypeError):
        raise UnknownSource(kind) from None
    module = importlib.import_module(module_name)
    missing = [name for name in ("get", "transform") if not callable(getattr(module, name, None))]
    if missing:
        raise RuntimeError(
            f"discovery source {kind!r} ({module_name}) does not define {', '.join(missing)}"
        )
    return module

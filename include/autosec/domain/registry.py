"""Explicit lazy registries: a table of kind -> module path, imported only when a kind is asked for.

The inventory and discovery packages each keep such a table (one line per source module) and a
test that fails when a module is missing from it, so nothing is found or lost by scanning
directories. This module holds what they share: the lookup, the import on first use, the check
that the module defines what its kind promises, and the error that names the registered kinds.
Nothing is imported until a kind is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType


def unknown_kind_message(what: str, kind: object, table: Mapping[str, str]) -> str:
    """``unknown {what} kind 'x': registered kinds are a, b`` for a kind ``table`` lacks."""
    registered = ", ".join(sorted(table))
    return f"unknown {what} kind {kind!r}: registered kinds are {registered}"


def load_module(
    table: Mapping[str, str],
    kind: str,
    *,
    what: str,
    unknown: Callable[[object], KeyError],
    required: Sequence[str] = (),
) -> ModuleType:
    """The module registered as ``kind``, imported now; it must define each of ``required``.

    ``unknown(kind)`` is raised for a kind with no entry (or one that cannot be a key), and a
    RuntimeError naming ``what``, the kind and the module when a required callable is missing.
    """
    try:
        module_name = table[kind]
    except (KeyError, TypeError):
        raise unknown(kind) from None
    module = importlib.import_module(module_name)
    missing = [name for name in required if not callable(getattr(module, name, None))]
    if missing:
        raise RuntimeError(f"{what} {kind!r} ({module_name}) does not define {', '.join(missing)}")
    return module

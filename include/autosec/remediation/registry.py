"""The explicit action registry: name -> "module:Class", imported only when used.

Adding an action is a module in ``autosec.remediation.actions`` plus one line here; a test
fails when a module in that package is missing from this table. The policy file names actions
by these keys, so ``autosec policy check`` refuses an action nobody implemented.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autosec.remediation.actions.base import Action

ACTIONS: dict[str, str] = {
    "ticket": "autosec.remediation.actions.ticket:TicketAction",
    "notify": "autosec.remediation.actions.notify:NotifyAction",
    "quarantine": "autosec.remediation.actions.quarantine:QuarantineAction",
    "patch_request": "autosec.remediation.actions.patch_request:PatchRequestAction",
}


class UnknownAction(KeyError):
    def __str__(self) -> str:
        registered = ", ".join(sorted(ACTIONS))
        return f"unknown remediation action {self.args[0]!r}: registered actions are {registered}"


def get_action(name: str) -> type[Action]:
    """The Action class registered as ``name`` (instantiate it with its endpoint)."""
    from autosec.remediation.actions.base import Action

    try:
        target = ACTIONS[name]
    except (KeyError, TypeError):
        raise UnknownAction(name) from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Action)):
        raise RuntimeError(f"action {name!r}: {target} is not an Action subclass")
    if cls.name != name:
        raise RuntimeError(f"action {name!r}: {target} declares name {cls.name!r}")
    return cls

"""Every action module is registered, and the registry resolves names lazily."""

from __future__ import annotations

from pathlib import Path

import pytest

import autosec.remediation.actions
from autosec.remediation import registry
from autosec.remediation.actions.base import Action

NOT_ACTIONS = {"__init__", "base", "http"}


def test_every_module_in_the_actions_package_is_registered():
    package = Path(autosec.remediation.actions.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").is_file()
    }
    registered = {
        target.partition(":")[0].rsplit(".", 1)[-1] for target in registry.ACTIONS.values()
    }
    assert modules - NOT_ACTIONS - registered == set(), "add these modules to ACTIONS"
    assert registered - modules == set(), "ACTIONS names modules that do not exist"


@pytest.mark.parametrize("name", sorted(registry.ACTIONS))
def test_each_registered_action_loads_and_carries_its_name(name):
    cls = registry.get_action(name)
    assert issubclass(cls, Action)
    assert cls.name == name
    assert registry.ACTIONS[name].startswith("autosec.remediation.actions.")


def test_unknown_action_names_the_registered_ones():
    with pytest.raises(registry.UnknownAction) as info:
        registry.get_action("reboot")
    assert str(info.value) == (
        "unknown remediation action 'reboot': registered actions are "
        "notify, patch_request, quarantine, ticket"
    )


def test_a_registry_entry_must_point_at_an_action(monkeypatch):
    monkeypatch.setitem(
        registry.ACTIONS, "broken", "autosec.remediation.actions.base:idempotency_key"
    )
    with pytest.raises(RuntimeError, match="is not an Action subclass"):
        registry.get_action("broken")
    monkeypatch.setitem(
        registry.ACTIONS, "renamed", "autosec.remediation.actions.ticket:TicketAction"
    )
    with pytest.raises(RuntimeError, match="declares name 'ticket'"):
        registry.get_action("renamed")

"""Who owns a blind spot: ordered rules, first match wins, and the rule that matched is kept.

Pure: plain data in, plain data out. Three kinds of rule, one kind per rule:

- ``range``: a CIDR; matches a blind spot whose address is an IP inside it;
- ``zone``: a DNS suffix; matches a blind spot whose address, or one of the names in its
  evidence (DNS discovery lists them), is the zone or a name under it (case-insensitive);
- ``provider`` (with an optional ``account``): matches a billing blind spot
  (``<provider>:account:<id>`` or ``<provider>:project:<id>``) of that provider, and of that
  account or project id when one is given.

An unassigned blind spot stays ``new``: it is shown as unowned, never dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autosec.domain.models import BlindSpot

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_BILLING_KINDS = ("account", "project")
_KEYS = frozenset({"id", "owner", "range", "zone", "provider", "account"})


class InvalidAssignmentRule(ValueError):
    """An assignment rule that cannot be used; the message names the rule and the problem."""


@dataclass(frozen=True)
class AssignmentRule:
    """One rule: exactly one of ``range``, ``zone`` or ``provider`` (``account`` needs it)."""

    id: str
    owner: str
    range: str = ""
    zone: str = ""
    provider: str = ""
    account: str = ""

    def __post_init__(self) -> None:
        where = f"assignment rule {self.id!r}"
        if not self.id.strip():
            raise InvalidAssignmentRule("assignment rule without an id: every rule needs one")
        if not self.owner.strip():
            raise InvalidAssignmentRule(f"{where}: owner is empty")
        kinds = [k for k in ("range", "zone", "provider") if getattr(self, k)]
        if len(kinds) != 1:
            raise InvalidAssignmentRule(
                f"{where}: give exactly one of range, zone or provider (got {kinds or 'none'})"
            )
        if self.account and not self.provider:
            raise InvalidAssignmentRule(f"{where}: account {self.account!r} needs a provider")
        if self.range:
            try:
                ipaddress.ip_network(self.range, strict=False)
            except ValueError as exc:
                raise InvalidAssignmentRule(
                    f"{where}: range {self.range!r} is not a CIDR ({exc})"
                ) from exc
        if self.zone and not _zone(self.zone):
            raise InvalidAssignmentRule(f"{where}: zone {self.zone!r} is empty")
        if self.zone and any(c.isspace() or c in "/:@" for c in self.zone):
            raise InvalidAssignmentRule(f"{where}: zone {self.zone!r} is not a DNS name")

    @property
    def kind(self) -> str:
        return "range" if self.range else "zone" if self.zone else "billing"

    def matches(self, address: str, evidence: Mapping[str, Any]) -> bool:
        if self.range:
            ip = _ip(address)
            network = ipaddress.ip_network(self.range, strict=False)
            return ip is not None and ip.version == network.version and ip in network
        if self.zone:
            zone = _zone(self.zone)
            return any(_under(name, zone) for name in _names(address, evidence))
        billing = _billing(address)
        if billing is None:
            return False
        provider, identifier = billing
        if provider != self.provider.strip().lower():
            return False
        return not self.account or identifier == self.account.strip()


@dataclass(frozen=True)
class Assignment:
    """The owner a rule names, and the rule (by id) that named it."""

    owner: str
    rule_id: str


def rules_from_config(items: Iterable[Mapping[str, Any]]) -> tuple[AssignmentRule, ...]:
    """Rules from configuration mappings (e.g. the estate file), in order; ids must be unique."""
    rules: list[AssignmentRule] = []
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise InvalidAssignmentRule(f"assignment rule #{index}: expected a mapping")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise InvalidAssignmentRule(
                f"assignment rule #{index}: unknown keys {unknown} (known: {sorted(_KEYS)})"
            )
        values = {k: item.get(k, "") for k in _KEYS}
        bad = sorted(k for k, v in values.items() if not isinstance(v, str))
        if bad:
            raise InvalidAssignmentRule(f"assignment rule #{index}: {bad} must be strings")
        rule_id = values.pop("id") or f"#{index}"
        rule = AssignmentRule(id=rule_id, **values)
        if rule.id in seen:
            raise InvalidAssignmentRule(f"assignment rule {rule.id!r}: id used twice")
        seen.add(rule.id)
        rules.append(rule)
    return tuple(rules)


def assign(
    address: str, evidence: Mapping[str, Any], rules: Sequence[AssignmentRule]
) -> Assignment | None:
    """The first rule that matches names the owner; None when no rule does."""
    for rule in rules:
        if rule.matches(address, evidence):
            return Assignment(rule.owner.strip(), rule.id)
    return None


def assign_spot(spot: BlindSpot, rules: Sequence[AssignmentRule]) -> Assignment | None:
    return assign(spot.address, spot.evidence, rules)


def _ip(address: str):
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def _zone(name: str) -> str:
    return name.strip().strip(".").lower()


def _under(name: str, zone: str) -> bool:
    name = _zone(name)
    return bool(name) and (name == zone or name.endswith("." + zone))


def _names(address: str, evidence: Mapping[str, Any]) -> list[str]:
    if _billing(address) is not None:
        return []  # a billing spot's "names" are account names, not DNS names
    names = [] if _ip(address) is not None else [address]
    listed = evidence.get("names")
    if isinstance(listed, list | tuple):
        names += [n for n in listed if isinstance(n, str)]
    return names


def _billing(address: str) -> tuple[str, str] | None:
    """(provider, account or project id) of a billing blind spot address, else None."""
    if _ip(address) is not None:
        return None
    parts = address.split(":", 2)
    if len(parts) != 3 or parts[1] not in _BILLING_KINDS or not parts[0] or not parts[2]:
        return None
    return parts[0].lower(), parts[2]

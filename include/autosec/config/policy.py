"""The policy file: patching deadlines, black swan criteria, enforcement rules, break glass.

Validated by pydantic with unknown keys forbidden at every level, so a typo is an error naming
its path instead of a silently ignored safeguard. Every decision records the file's sha256, so
the hash is taken over the exact bytes that were validated.
"""

from __future__ import annotations

import hashlib
import re
import types
import typing
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from autosec.domain.models import Criticality, Environment, Severity
from autosec.remediation.registry import ACTIONS

Mode = Literal["out_of_loop", "on_the_loop", "in_the_loop"]
MODES: tuple[str, ...] = typing.get_args(Mode)
NO_ACTION = "none"
GROUP_PREFIX = "group:"

_RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
_EVENT_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_principals(values: list[str], what: str) -> list[str]:
    """User names or ``group:NAME``; no blanks, no duplicates (a duplicate would skew a quorum)."""
    cleaned: list[str] = []
    for value in values:
        name = value.strip()
        bare = name[len(GROUP_PREFIX) :] if name.startswith(GROUP_PREFIX) else name
        if not bare:
            raise ValueError(f"{what} entry {value!r} is empty")
        if any(ch.isspace() for ch in bare) or ":" in bare:
            raise ValueError(
                f"{what} entry {value!r} is not a user name or 'group:NAME' "
                "(no spaces, no other prefix)"
            )
        if name in cleaned:
            raise ValueError(f"{what} lists {name!r} twice")
        cleaned.append(name)
    return cleaned


def _duplicate_rule_ids(ids: list[Any]) -> str | None:
    seen: dict[Any, int] = {}
    for index, rule_id in enumerate(ids):
        if rule_id in seen:
            return (
                f"rule id {rule_id!r} is used by rules {seen[rule_id]} and {index}; "
                "ids must be unique"
            )
        seen[rule_id] = index
    return None


def _raw_duplicate_rule_ids(data: dict[str, Any]) -> str | None:
    """The duplicate-id check on unvalidated data, so it is reported beside other errors."""
    enforcement = data.get("enforcement")
    rules = enforcement.get("rules") if isinstance(enforcement, dict) else None
    if not isinstance(rules, list):
        return None
    ids = [r["id"] for r in rules if isinstance(r, dict) and isinstance(r.get("id"), str)]
    problem = _duplicate_rule_ids(ids)
    return f"enforcement.rules: {problem}" if problem else None


# --- patching ---------------------------------------------------------------------------------


class DueDays(_Strict):
    """Days from detection to the due date; None means no deadline."""

    critical: int | None = Field(7, ge=0)
    high: int | None = Field(30, ge=0)
    medium: int | None = Field(90, ge=0)
    low: int | None = Field(180, ge=0)
    info: int | None = Field(None, ge=0)


class PatchingPolicy(_Strict):
    due_days: DueDays = DueDays()
    kev_due_date_wins: bool = True

    def days_by_severity(self) -> dict[str, int | None]:
        """The mapping ``autosec.domain.due_dates.due_date`` takes, keyed by severity value."""
        return {s.value: getattr(self.due_days, s.value) for s in Severity}


# --- black swan, freshness, break glass (thin: validated now, used by later stages) ------------


class BlackSwanCriteria(_Strict):
    """Which conditions must all hold for a finding to count as a black swan."""

    known_exploited: bool = True
    automatable: bool = True
    total_impact: bool = True
    exposed_or_mission_critical: bool = True


class BlackSwanPolicy(_Strict):
    criteria: BlackSwanCriteria = BlackSwanCriteria()
    triggers: list[str] = Field(default_factory=list)

    @field_validator("triggers")
    @classmethod
    def _event_names(cls, triggers: list[str]) -> list[str]:
        bad = [t for t in triggers if not re.match(_EVENT_PATTERN, t)]
        if bad:
            raise ValueError(f"not event names (like 'finding.black_swan'): {bad}")
        if len(set(triggers)) != len(triggers):
            raise ValueError("an event is listed twice")
        return triggers


class FreshnessPolicy(_Strict):
    max_age_days: int | None = Field(None, ge=1)


class BreakGlassPolicy(_Strict):
    who: list[str] = Field(default_factory=list)
    max_minutes: int = Field(60, ge=1, le=24 * 60)
    suspends: list[str] = Field(default_factory=list)

    @field_validator("who")
    @classmethod
    def _principals(cls, who: list[str]) -> list[str]:
        return _check_principals(who, "break_glass.who")


# --- enforcement ------------------------------------------------------------------------------


class RuleMatch(_Strict):
    """What a rule applies to. Every given criterion must hold; within a list, any entry will do.

    An omitted criterion matches anything; an empty list is refused because it would match
    nothing and hide the rule without a word.
    """

    severities: list[Severity] | None = Field(None, min_length=1)
    min_severity: Severity | None = None
    environments: list[Environment] | None = Field(None, min_length=1)
    criticalities: list[Criticality] | None = Field(None, min_length=1)
    tags_any: list[str] | None = Field(None, min_length=1)
    engines: list[str] | None = Field(None, min_length=1)
    rule_ids: list[str] | None = Field(None, min_length=1)
    kev: bool | None = None


class SafetyRequirements(_Strict):
    """Signals that must all be present before a rule may act without an approval gate."""

    allowlisted: bool = False
    environments: list[Environment] | None = Field(None, min_length=1)
    max_criticality: Criticality | None = None

    def names_any(self) -> bool:
        return self.allowlisted or self.environments is not None or self.max_criticality is not None


class EnforcementRule(_Strict):
    id: str = Field(pattern=_RULE_ID_PATTERN, max_length=100)
    description: str = ""
    match: RuleMatch = RuleMatch()
    action: str
    mode: Mode = "in_the_loop"
    approvers: list[str] = Field(default_factory=list, validate_default=True)
    quorum: int = Field(1, ge=1, validate_default=True)
    requires: SafetyRequirements = SafetyRequirements()
    names_protected_assets: bool = False
    approval_expiry_hours: float = Field(72, gt=0, le=24 * 90)
    dry_run: bool = False

    @field_validator("action")
    @classmethod
    def _registered_action(cls, action: str) -> str:
        if action != NO_ACTION and action not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            raise ValueError(
                f"unknown action {action!r}: expected {NO_ACTION!r} or a registered action "
                f"({known})"
            )
        return action

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, approvers: list[str], info: ValidationInfo) -> list[str]:
        approvers = _check_principals(approvers, "approvers")
        if (
            info.data.get("mode") == "in_the_loop"
            and info.data.get("action", NO_ACTION) != NO_ACTION
            and not approvers
        ):
            raise ValueError("mode in_the_loop needs at least one approver")
        return approvers

    @field_validator("quorum")
    @classmethod
    def _quorum(cls, quorum: int, info: ValidationInfo) -> int:
        approvers = info.data.get("approvers")
        if approvers is None:  # approvers failed validation; that error is enough
            return quorum
        if quorum > max(1, len(approvers)):
            raise ValueError(
                f"quorum {quorum} is more than the {len(approvers)} approver(s) listed"
            )
        return quorum

    @model_validator(mode="after")
    def _automatic_rules_name_their_signals(self) -> EnforcementRule:
        if (
            self.action != NO_ACTION
            and self.mode != "in_the_loop"
            and not self.requires.names_any()
        ):
            raise ValueError(
                f"rule {self.id!r}: mode {self.mode} acts without approval, so 'requires' must "
                "name at least one safety signal (allowlisted, environments, max_criticality)"
            )
        return self

    @property
    def acts(self) -> bool:
        return self.action != NO_ACTION


class EnforcementPolicy(_Strict):
    rules: list[EnforcementRule] = Field(default_factory=list)
    auto_action_allowlist: list[str] = Field(default_factory=list)
    dry_run: bool = False
    # Who approves when a rule without approvers falls back to the loop (fail closed).
    fallback_approvers: list[str] = Field(default_factory=list, validate_default=True)
    fallback_quorum: int = Field(1, ge=1, validate_default=True)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[EnforcementRule]) -> list[EnforcementRule]:
        problem = _duplicate_rule_ids([r.id for r in rules])
        if problem:
            raise ValueError(problem)
        return rules

    @field_validator("auto_action_allowlist")
    @classmethod
    def _allowlist(cls, ids: list[str]) -> list[str]:
        blank = [i for i in ids if not i.strip()]
        if blank:
            raise ValueError("asset ids must not be empty")
        return ids

    @field_validator("fallback_approvers")
    @classmethod
    def _fallback(cls, approvers: list[str]) -> list[str]:
        return _check_principals(approvers, "fallback_approvers")

    @field_validator("fallback_quorum")
    @classmethod
    def _fallback_quorum(cls, quorum: int, info: ValidationInfo) -> int:
        approvers = info.data.get("fallback_approvers")
        if approvers is not None and quorum > max(1, len(approvers)):
            raise ValueError(
                f"fallback_quorum {quorum} is more than the {len(approvers)} fallback approver(s)"
            )
        return quorum

    @model_validator(mode="after")
    def _every_gate_has_approvers(self) -> EnforcementPolicy:
        if self.fallback_approvers:
            return self
        orphans = [r.id for r in self.rules if r.acts and not r.approvers]
        if orphans:
            raise ValueError(
                f"rules {orphans} have no approvers and fallback_approvers is empty: when a "
                "safety signal is missing the rule falls back to an approval nobody could give"
            )
        return self

    def approvers_for(self, rule: EnforcementRule) -> tuple[list[str], int]:
        """The rule's approvers and quorum, or the fallback ones when it lists none."""
        if rule.approvers:
            return list(rule.approvers), rule.quorum
        return list(self.fallback_approvers), self.fallback_quorum


# --- the file ---------------------------------------------------------------------------------


class Policy(_Strict):
    version: str = Field(min_length=1)
    patching: PatchingPolicy = PatchingPolicy()
    black_swan: BlackSwanPolicy = BlackSwanPolicy()
    freshness: FreshnessPolicy = FreshnessPolicy()
    enforcement: EnforcementPolicy = EnforcementPolicy()
    break_glass: BreakGlassPolicy = BreakGlassPolicy()

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # YAML reads `version: 3` as an int and `version: 2026-03-01` as a date.
        if isinstance(value, int | float | date) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _break_glass_names_known_rules(self) -> Policy:
        known = {r.id for r in self.enforcement.rules}
        unknown = [r for r in self.break_glass.suspends if r not in known]
        if unknown:
            raise ValueError(
                f"break_glass.suspends: unknown rule id(s) {unknown}; "
                f"enforcement rules are {sorted(known)}"
            )
        return self


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with the sha256 of the bytes it came from."""

    policy: Policy
    sha256: str
    path: Path

    @property
    def version(self) -> str:
        return self.policy.version


class PolicyError(ValueError):
    """The policy file cannot be used; ``errors`` lists every problem as 'path: message'."""

    def __init__(self, path: Path, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        super().__init__(f"policy file {path}: " + "; ".join(errors))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: the second copy of a rule must not win silently."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: let the default constructor report it
            duplicate = False
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        if not isinstance(key, list | dict):
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context}: {problem}" if context else problem
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax: {text}"
    return f"YAML syntax: {text}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (to list the keys it allows)."""
    model: Any = Policy
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner is not None else ""
        message = f"unknown key{f' (allowed: {allowed})' if allowed else ''}"
    return f"{path}: {message}" if path else message


def _parse(path: Path) -> tuple[Policy | None, str, list[str]]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, "", [f"cannot read the file: {exc.strerror or exc}"]
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        return None, digest, [f"not UTF-8 text (byte {exc.start})"]
    except yaml.YAMLError as exc:
        return None, digest, [_yaml_error(exc)]
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        return None, digest, [f"expected a mapping at the top level, found {found}"]
    try:
        return Policy.model_validate(data), digest, []
    except ValidationError as exc:
        errors = [_format_error(err) for err in exc.errors()]
        duplicate = _raw_duplicate_rule_ids(data)
        if duplicate and duplicate not in errors:
            errors.append(duplicate)
        return None, digest, errors


def check_policy(path: Path | str) -> list[str]:
    """Every problem in the policy file as 'path.to.field: message'; empty when it is valid."""
    return _parse(Path(path))[2]


def load_policy(path: Path | str) -> LoadedPolicy:
    """Load and validate the policy file; raise ``PolicyError`` listing every problem."""
    path = Path(path)
    policy, digest, errors = _parse(path)
    if policy is None:
        raise PolicyError(path, errors)
    return LoadedPolicy(policy=policy, sha256=digest, path=path)

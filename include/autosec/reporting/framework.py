"""Compliance frameworks as data: each YAML file in ``frameworks/`` maps controls to evidence.

A framework says how often its pack is due (monthly or quarterly), which share of the inventory
must be scanned in a period, the remediation deadlines it holds findings to (tiers of severities
with days from detection, or the patching policy's own due dates), and for each control the
evidence queries whose rows prove it. Evidence queries are named by id; the report stage keeps
the registry of those ids, and a framework naming an id the registry lacks is refused there.

The registry below is explicit: a framework is a YAML file plus one line here, and a test fails
when a file in the folder is missing from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autosec.domain.models import Severity

# framework id -> file in autosec/reporting/frameworks/
FRAMEWORKS: dict[str, str] = {
    "fedramp": "fedramp_conmon.yaml",
    "pci_dss": "pci_dss_v4.yaml",
    "soc2": "soc2_cc7_1.yaml",
    "iso27001": "iso27001_a8_8.yaml",
}
FRAMEWORK_FOLDER = "frameworks"
_ID = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlaTier(_Strict):
    """A remediation deadline: findings of these severities are due ``days`` after detection.

    ``days: null`` keeps the due date the patching policy gave the finding at triage.
    """

    name: str = Field(min_length=1)
    severities: list[Severity] = Field(min_length=1)
    days: int | None = Field(default=None, ge=1)

    @field_validator("severities", mode="before")
    @classmethod
    def _parse_severities(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [Severity.parse(v) if isinstance(v, str) else v for v in values]
        return values


class Control(_Strict):
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    requirement: str = Field(min_length=1)
    evidence: list[str] = Field(min_length=1)

    @field_validator("evidence")
    @classmethod
    def _evidence_ids(cls, ids: list[str]) -> list[str]:
        for evidence_id in ids:
            if not evidence_id or not evidence_id.replace("_", "").isalnum():
                raise ValueError(f"evidence id {evidence_id!r} is not a query id (a-z, 0-9, _)")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"evidence lists {duplicates} more than once")
        return ids


class Framework(_Strict):
    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    reference: str = ""
    cadence: Literal["monthly", "quarterly"]
    # The share of the inventory that must be scanned successfully in each period (null: none).
    coverage_target: float | None = Field(default=None, gt=0, le=1)
    kev_due_date_wins: bool = True
    sla_tiers: list[SlaTier] = Field(min_length=1)
    # The Controls column of the POA&M, and the least severity a POA&M item is opened for.
    poam_controls: list[str] = Field(min_length=1)
    poam_min_severity: Severity = Severity.LOW
    # Fixes of these severities must be confirmed by a successful rescan.
    verified_fix_severities: list[Severity] = Field(default_factory=list)
    controls: list[Control] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("poam_min_severity", mode="before")
    @classmethod
    def _parse_min_severity(cls, value: Any) -> Any:
        return Severity.parse(value) if isinstance(value, str) else value

    @field_validator("verified_fix_severities", mode="before")
    @classmethod
    def _parse_fix_severities(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [Severity.parse(v) if isinstance(v, str) else v for v in values]
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Framework:
        seen: dict[Severity, str] = {}
        for tier in self.sla_tiers:
            for severity in tier.severities:
                if severity in seen:
                    raise ValueError(
                        f"sla_tiers: severity {severity.value!r} is in tier {seen[severity]!r} "
                        f"and in tier {tier.name!r}"
                    )
                seen[severity] = tier.name
        names = [t.name for t in self.sla_tiers]
        if len(set(names)) != len(names) or KEV_TIER in names:
            raise ValueError(f"sla_tiers: tier names must be unique and not {KEV_TIER!r}: {names}")
        ids = [c.id for c in self.controls]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"controls: ids {duplicates} are used more than once")
        unknown = sorted(set(self.poam_controls) - set(ids))
        if unknown:
            raise ValueError(f"poam_controls: {unknown} are not controls of this framework")
        return self

    def tier_for(self, severity: Severity) -> SlaTier | None:
        for tier in self.sla_tiers:
            if severity in tier.severities:
                return tier
        return None

    @property
    def evidence_ids(self) -> list[str]:
        """Every evidence id the controls name, in order of first mention."""
        return list(dict.fromkeys(e for c in self.controls for e in c.evidence))

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.sla_tiers] + [KEV_TIER] * self.kev_due_date_wins


# Findings whose KEV due date is earlier than their tier's are held to it, and counted apart.
KEV_TIER = "KEV due date"


@dataclass(frozen=True)
class LoadedFramework:
    framework: Framework
    file: str
    sha256: str


class FrameworkError(ValueError):
    """A framework file that cannot be used; the message names the file and every problem."""

    def __init__(self, file: str, errors: list[str]) -> None:
        self.file = file
        self.errors = errors
        super().__init__(f"framework file {file}: " + "; ".join(errors))


class _UniqueKeys(yaml.SafeLoader):
    """A duplicate key in a control mapping would silently drop evidence: refuse it."""


def _mapping(loader: _UniqueKeys, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    for key in keys:
        if isinstance(key, str) and keys.count(key) > 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_framework(raw: bytes, file: str) -> LoadedFramework:
    """Validate one framework file's bytes; every problem is named with its field path."""
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        raise FrameworkError(file, [f"not UTF-8 text (byte {exc.start})"]) from None
    except yaml.YAMLError as exc:
        raise FrameworkError(file, [f"YAML syntax: {exc}"]) from None
    if not isinstance(data, dict):
        raise FrameworkError(file, ["expected a mapping at the top level"])
    try:
        framework = Framework.model_validate(data)
    except ValidationError as exc:
        errors = [
            ".".join(str(p) for p in err["loc"]) + ": " + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise FrameworkError(file, errors) from None
    return LoadedFramework(framework, file, hashlib.sha256(raw).hexdigest())


def framework_files() -> list[str]:
    """The YAML files in the frameworks folder (for the registry test; loading never lists)."""
    folder = resources.files("autosec.reporting").joinpath(FRAMEWORK_FOLDER)
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".yaml", ".yml")))


@cache
def load_framework(framework_id: str) -> LoadedFramework:
    if framework_id not in FRAMEWORKS:
        raise KeyError(f"unknown framework {framework_id!r}: expected one of {sorted(FRAMEWORKS)}")
    file = FRAMEWORKS[framework_id]
    raw = resources.files("autosec.reporting").joinpath(FRAMEWORK_FOLDER, file).read_bytes()
    loaded = parse_framework(raw, file)
    if loaded.framework.id != framework_id:
        raise FrameworkError(
            file, [f"id: {loaded.framework.id!r} does not match its registry key {framework_id!r}"]
        )
    return loaded


def cadences() -> dict[str, str]:
    """framework id -> cadence, for planning which packs are due."""
    return {fid: load_framework(fid).framework.cadence for fid in sorted(FRAMEWORKS)}


__all__ = [
    "FRAMEWORKS",
    "KEV_TIER",
    "Control",
    "Framework",
    "FrameworkError",
    "LoadedFramework",
    "SlaTier",
    "cadences",
    "framework_files",
    "load_framework",
    "parse_framework",
]

"""Pure domain models shared by every stage. No Airflow, no SQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(
                f"unknown severity {value!r}: expected one of {', '.join(s.value for s in cls)}"
            ) from None


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Environment(enum.StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"
    DEVELOPMENT = "development"
    TEST = "test"


class Criticality(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    BUSINESS_CRITICAL = "business_critical"


class AssetKind(enum.StrEnum):
    HOST = "host"
    SERVICE = "service"
    WEB_APP = "web_app"
    DATABASE = "database"
    REPOSITORY = "repository"
    CLOUD_ACCOUNT = "cloud_account"


class FindingStatus(enum.StrEnum):
    OPEN = "open"
    FIXED = "fixed"
    REOPENED = "reopened"
    ACCEPTED = "accepted"
    FALSE_POSITIVE = "false_positive"

    @property
    def is_open(self) -> bool:
        return self in (FindingStatus.OPEN, FindingStatus.REOPENED)


@dataclass(frozen=True)
class Asset:
    """One thing the organisation runs, as a source of record describes it."""

    id: str
    name: str
    kind: AssetKind
    source: str
    owner: str
    environment: Environment
    criticality: Criticality
    addresses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def identity(self) -> dict[str, Any]:
        """The fields whose change counts as an asset change."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "owner": self.owner,
            "environment": self.environment.value,
            "criticality": self.criticality.value,
            "addresses": sorted(self.addresses),
            "tags": sorted(self.tags),
        }


@dataclass(frozen=True)
class Location:
    """Where a finding sits; only these fields feed the fingerprint."""

    host: str | None = None
    port: int | None = None
    protocol: str | None = None
    url: str | None = None
    file: str | None = None
    line: int | None = None
    purl: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Observation:
    """What one engine reported in one run, before triage gives it an identity and a history."""

    asset_id: str
    engine: str
    rule_id: str
    title: str
    severity: Severity
    location: Location
    description: str = ""
    cvss_vector: str | None = None
    cvss_score: float | None = None
    cve_ids: tuple[str, ...] = ()
    cwe: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A triaged observation: fingerprinted, with due date and priority."""

    observation: Observation
    fingerprint: str
    fingerprint_version: int
    priority: str
    due_date: date | None
    owner: str | None


@dataclass(frozen=True)
class BlindSpot:
    """Something seen on the network that no inventory source knows about."""

    address: str
    port: int | None
    source: str
    evidence: dict[str, Any]
    seen_at: datetime

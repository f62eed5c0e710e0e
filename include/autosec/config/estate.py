"""The estate file: which inventory sources, discovery ranges and engines to use.

Validated by pydantic with unknown keys forbidden, so a typo is an error naming its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autosec.config.source_sync import SourceSyncSettings
from autosec.discovery.billing import BillingConfig
from autosec.discovery.dns import DnsConfig
from autosec.discovery.scan_names import ScanNamesConfig
from autosec.domain.cadence import CadencePolicy
from autosec.domain.models import Environment
from autosec.domain.targets import validate_target
from autosec.intel.config import IntelConfig
from autosec.inventory.backstage import BackstageSourceConfig
from autosec.inventory.http_cmdb import CmdbSourceConfig
from autosec.notifications.routes import NotificationRoute, check_routes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventorySourceConfig(SourceSyncSettings):
    """A file source (CSV, JSON or YAML), with its schedule and owner."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["file"]
    path: Path
    format: Literal["csv", "json", "yaml"] | None = None


# Every source kind, told apart by ``kind``; HTTP sources name their Airflow connection.
AnySourceConfig = Annotated[
    InventorySourceConfig | BackstageSourceConfig | CmdbSourceConfig,
    Field(discriminator="kind"),
]


class TcpSweepConfig(_Strict):
    ranges: list[str]
    ports: list[int]
    concurrency: int = Field(200, ge=1, le=2000)
    timeout_seconds: float = Field(0.5, gt=0, le=30)

    @field_validator("ranges")
    @classmethod
    def _ranges_are_targets(cls, ranges: list[str]) -> list[str]:
        return [validate_target(r).value for r in ranges]

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        bad = [p for p in ports if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports out of range 1-65535: {bad}")
        return ports


class DiscoveryConfig(_Strict):
    tcp_sweep: TcpSweepConfig | None = None
    dns: DnsConfig | None = None
    billing: list[BillingConfig] = []
    # Names in TLS certificates and HTTP redirects of recent scans, inside the zones below.
    scan_names: ScanNamesConfig = ScanNamesConfig()
    # Who owns a new blind spot: {id, owner, range | zone | provider[, account]}, first match wins.
    assignment_rules: list[dict] = []

    @field_validator("assignment_rules")
    @classmethod
    def _rules_are_valid(cls, rules: list[dict]) -> list[dict]:
        from autosec.discovery.assignment import rules_from_config

        rules_from_config(rules)
        return rules

    def rules(self):
        from autosec.discovery.assignment import rules_from_config

        return rules_from_config(self.assignment_rules)

    def zones(self) -> list[str]:
        """The organisation's DNS zones: DNS discovery's, the assignment rules', the extra ones
        for names seen by scans. A name outside all of them is somebody else's."""
        zones = list(self.dns.zones) if self.dns else []
        zones += [rule.zone.strip().strip(".").lower() for rule in self.rules() if rule.zone]
        zones += self.scan_names.zones
        return list(dict.fromkeys(z for z in zones if z))


# nmap NSE scripts a scan may run: a fixed allowlist of checks that only read what a service
# offers (handshakes, one HTTP request), never input-built script names.
NmapScript = Literal["ssl-enum-ciphers", "http-headers", "http-title", "ssh2-enum-algos"]


class ScanConfig(_Strict):
    engines: list[str] = ["nmap"]
    batch_size: int = Field(25, ge=1, le=1000)
    ports: list[int] = []
    timeout_seconds: int = Field(900, ge=10)
    cadence_days: int = Field(7, ge=1)
    internet_facing_cadence_days: int = Field(1, ge=1)
    critical_cadence_days: int = Field(3, ge=1, description="production or high criticality")
    quiet_after_days: int = Field(
        90, ge=1, description="an asset unchanged this long, with nothing open, is scanned less"
    )
    quiet_factor: int = Field(4, ge=1, description="how much less often a quiet asset is scanned")
    max_cadence_days: int = Field(30, ge=1, description="no asset waits longer than this")
    invasive_environments: list[Environment] = Field(
        default_factory=lambda: [Environment.DEVELOPMENT, Environment.TEST, Environment.STAGING],
        description="where invasive engines may run (elsewhere: assets tagged "
        "'invasive-scans-allowed' only)",
    )
    nmap_scripts: list[NmapScript] = Field(
        default_factory=lambda: ["ssh2-enum-algos"],
        description="NSE scripts the nmap engine runs. Default: weak SSH algorithms only, the one "
        "check no other engine makes (one handshake per SSH port). The TLS and HTTP header "
        "checks belong to the tls and http engines; add ssl-enum-ciphers (dozens of handshakes "
        "per TLS port, nmap counts it intrusive), http-headers and http-title where those "
        "engines do not run. Findings of a script are only closed by runs that ran it.",
    )

    def cadence_policy(self) -> CadencePolicy:
        return CadencePolicy(
            default_days=self.cadence_days,
            internet_facing_days=self.internet_facing_cadence_days,
            critical_days=self.critical_cadence_days,
            quiet_after_days=self.quiet_after_days,
            quiet_factor=self.quiet_factor,
            max_days=self.max_cadence_days,
        )


class RemediationConfig(_Strict):
    """The Airflow connection each action talks through; an action without one cannot apply."""

    ticket_conn_id: str = "autosec_ticketing"
    notify_conn_id: str = "autosec_notify"
    enforcement_conn_id: str = "autosec_enforcement"
    githost_conn_id: str = "autosec_githost"


class EstateConfig(_Strict):
    inventory: list[AnySourceConfig]
    discovery: DiscoveryConfig = DiscoveryConfig()
    scan: ScanConfig = ScanConfig()
    remediation: RemediationConfig = RemediationConfig()
    notifications: list[NotificationRoute] = Field(default_factory=lambda: [NotificationRoute()])
    intel: IntelConfig = IntelConfig()
    policy: Path
    base_dir: Path = Path()

    @field_validator("notifications")
    @classmethod
    def _routes_are_consistent(cls, routes: list[NotificationRoute]) -> list[NotificationRoute]:
        return list(check_routes(routes))

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.base_dir / path).resolve()


class EstateError(ValueError):
    pass


def load_estate(path: Path) -> EstateConfig:
    """Load and validate an estate file; relative paths are relative to the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EstateError(f"cannot read estate file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EstateError(f"estate file {path}: expected a mapping at the top level")
    try:
        return EstateConfig(**data, base_dir=Path(path).resolve().parent)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise EstateError(f"estate file {path}: {problems}") from exc

"""The nmap engine: TCP connect scan with service and version detection, XML to stdout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autosec.domain.models import Asset, AssetKind, Observation
from autosec.domain.targets import InvalidTarget, Target, TargetKind, host_of, validate_target
from autosec.engines.base import Capability, Engine
from autosec.engines.nmap import parser

DEFAULT_PORTS = (21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 1433, 1521, 3306, 3389, 5432,
                 5900, 6379, 8080, 8443, 9200, 11211, 27017)
OPTION_KEYS = frozenset({"ports", "host_timeout_seconds", "version_intensity"})


class NmapEngine(Engine):
    name = "nmap"
    capabilities = (
        Capability("open ports", (parser.OPEN_PORT,),
                   (AssetKind.HOST, AssetKind.SERVICE, AssetKind.DATABASE, AssetKind.WEB_APP)),
        Capability("service version disclosure", (parser.VERSION_DISCLOSED,),
                   (AssetKind.HOST, AssetKind.SERVICE, AssetKind.DATABASE, AssetKind.WEB_APP)),
        Capability("databases reachable on the network", (parser.DATABASE_EXPOSED,),
                   (AssetKind.HOST, AssetKind.SERVICE, AssetKind.DATABASE)),
    )
    default_timeout_seconds = 900

    def version_command(self) -> list[str]:
        return ["nmap", "--version"]

    def parse_version(self, output: str) -> str:
        return parser.parse_nmap_version(output)

    def accepts(self, asset: Asset) -> bool:
        for address in asset.addresses:
            try:
                validate_target(address)
            except InvalidTarget:
                continue
            return True
        return False

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        unknown = sorted(set(options) - OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown nmap option(s) {unknown}: allowed {sorted(OPTION_KEYS)}")
        checked = [validate_target(t.value) for t in targets]
        if not checked:
            raise ValueError("nmap needs at least one target")
        ports = _ports(options.get("ports") or DEFAULT_PORTS)
        host_timeout = int(options.get("host_timeout_seconds", 300))
        intensity = int(options.get("version_intensity", 7))
        if not 0 <= intensity <= 9:
            raise ValueError(f"nmap version_intensity {intensity} is not in 0..9")
        argv = [
            "nmap", "-sT", "-sV", "--version-intensity", str(intensity), "-Pn", "-T4",
            "--noninteractive", "--host-timeout", f"{host_timeout}s",
            "-p", ",".join(str(p) for p in ports), "-oX", "-",
        ]
        if all(t.kind in (TargetKind.IP, TargetKind.CIDR) for t in checked):
            argv.append("-n")
        argv.extend(host_of(t) for t in checked)
        return argv

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        return parser.parse_nmap_xml(raw, asset_by_host, self.name)

    def scope(self, targets, options):
        scope = super().scope(targets, options)
        if not scope.ports:
            return type(scope)(scope.targets, DEFAULT_PORTS)
        return scope


def _ports(ports: Sequence[Any]) -> list[int]:
    checked = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"nmap port {port!r} is not an integer in 1..65535")
        checked.append(port)
    return sorted(set(checked))

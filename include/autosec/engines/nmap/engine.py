"""The nmap engine: an unprivileged TCP connect scan with light version detection.

The argv it builds, and why each option is there::

    nmap -sT -sV --version-intensity 2 -T4 -Pn -n --noninteractive --host-timeout 300s
         -p PORTS -oX - -- TARGET...

- ``-sT``: a connect scan needs no raw sockets or root, so it runs on any worker.
- ``-sV --version-intensity 2`` (``--version-light``): reads banners (an HTTP ``Server`` header,
  a MySQL greeting) and still tries every probe registered for the port (PostgreSQL on 5432,
  Redis on 6379), while an unidentifiable service costs seconds instead of minutes.
- ``-T4``: the timing template for reliable networks. ``-Pn``: inventoried hosts are scanned
  even when they drop pings. ``-n``: no reverse DNS (slow, and a PTR name proves nothing);
  hostnames given as targets are still resolved.
- ``--host-timeout``: one slow host cannot hold the batch until the runner kills everything.
- ``-oX -``: the XML report on stdout, kept as evidence and parsed. ``--noninteractive``: no
  keyboard handling on a worker without a terminal.
- ``--``: ends the options. Targets are validated twice (by the scan stage and again here), so
  nothing starting with ``-`` gets this far; the separator is a third wall.

With the ``scripts`` option (the scan configuration's ``nmap_scripts``) the run adds
``--script NAME,... --script-timeout 180s`` before ``-p``. The names come from a fixed
allowlist (``parser.SCRIPTS``: ssl-enum-ciphers, http-headers, http-title, ssh2-enum-algos,
all of which only read what a service offers and need no network beyond the target); a name
outside it is refused, never passed on. The run's scope lists the rules of the scripts that
ran, so a run without a script never closes that script's findings.

nmap cannot mix IPv4 and IPv6 targets in one run (IPv6 needs ``-6``, and without it an IPv6
target is silently skipped), so a batch mixing the two is refused with a clear error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from autosec.domain.models import Asset, AssetKind, Observation
from autosec.domain.targets import Target, TargetKind, host_of
from autosec.engines.base import Capability, Engine, ScanScope, revalidate, valid_targets
from autosec.engines.nmap import parser

DEFAULT_PORTS: tuple[int, ...] = (
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587, 636, 993, 995,
    1433, 1521, 2049, 2375, 2376, 3000, 3306, 3389, 5000, 5432, 5601, 5672, 5900, 5984, 6379,
    8000, 8008, 8080, 8081, 8443, 8888, 9000, 9042, 9090, 9200, 9300, 11211, 15672, 27017,
)  # fmt: skip
DEFAULT_HOST_TIMEOUT_SECONDS = 300
DEFAULT_VERSION_INTENSITY = 2
# ssl-enum-ciphers makes dozens of handshakes per TLS port; a script stopped by its timeout
# leaves no output, which would read as "nothing weak", so the limit is generous.
DEFAULT_SCRIPT_TIMEOUT_SECONDS = 180
OPTION_KEYS = frozenset(
    {"ports", "host_timeout_seconds", "version_intensity", "scripts", "script_timeout_seconds"}
)

_KINDS = (AssetKind.HOST, AssetKind.SERVICE, AssetKind.DATABASE, AssetKind.WEB_APP)
_ADDRESSABLE = (TargetKind.IP, TargetKind.HOSTNAME, TargetKind.URL)
_SCRIPT_KINDS = (AssetKind.HOST, AssetKind.SERVICE, AssetKind.WEB_APP)


class NmapEngine(Engine):
    """Open ports, version-disclosing banners and reachable databases, from one nmap run;
    with scripts, also weak TLS, missing HTTP security headers and weak SSH algorithms."""

    name = "nmap"
    capabilities = (
        Capability("open TCP ports", (parser.OPEN_PORT,), _KINDS),
        Capability("services disclosing their version", (parser.VERSION_DISCLOSED,), _KINDS),
        Capability(
            "database services reachable on the network", (parser.DATABASE_EXPOSED,), _KINDS
        ),
        # Script checks run only when the scan configuration lists the script, so on their own
        # they count as partial coverage (LIMITED); the dedicated engines give the full check.
        Capability(
            "deprecated SSL/TLS protocol versions",
            (parser.TLS_WEAK_PROTOCOL,),
            _SCRIPT_KINDS,
            limited_on=_SCRIPT_KINDS,
        ),
        Capability(
            "weak cipher suites", (parser.TLS_WEAK_CIPHER,), _SCRIPT_KINDS, limited_on=_SCRIPT_KINDS
        ),
        Capability(
            "missing HTTP security headers",
            parser.SCRIPT_RULES["http-headers"],
            (AssetKind.WEB_APP, AssetKind.SERVICE),
            limited_on=(AssetKind.WEB_APP, AssetKind.SERVICE),
        ),
        Capability(
            "weak SSH algorithms",
            parser.SCRIPT_RULES["ssh2-enum-algos"],
            (AssetKind.HOST, AssetKind.SERVICE),
            limited_on=(AssetKind.HOST, AssetKind.SERVICE),
        ),
    )
    target_kinds = frozenset({TargetKind.IP, TargetKind.CIDR, TargetKind.HOSTNAME, TargetKind.URL})
    default_timeout_seconds = 900

    def version_command(self) -> list[str]:
        return ["nmap", "--version"]

    def parse_version(self, output: str) -> str:
        return parser.parse_nmap_version(output)

    def accepts(self, asset: Asset) -> bool:
        """A host-like asset with at least one address nmap can reach (IP, hostname, URL host)."""
        return asset.kind in _KINDS and any(
            t.kind in _ADDRESSABLE for t in valid_targets(asset.addresses)
        )

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """The argv for one run; every target is validated again, every option checked."""
        checked = _revalidate(targets)
        ports, host_timeout, intensity = _options(options)
        scripts, script_timeout = _script_options(options)
        hosts = _hosts(checked)
        argv = [
            "nmap",
            "-sT",
            "-sV",
            "--version-intensity",
            str(intensity),
            "-T4",
            "-Pn",
            "-n",
            "--noninteractive",
            "--host-timeout",
            f"{host_timeout}s",
        ]
        if scripts:
            argv += ["--script", ",".join(scripts), "--script-timeout", f"{script_timeout}s"]
        if _family(hosts) == 6:
            argv.append("-6")
        argv += ["-p", ",".join(map(str, _effective_ports(checked, ports))), "-oX", "-", "--"]
        return argv + hosts

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        """What the run looks at: the ports actually passed to nmap, defaults included, and
        the rules it checked (the scripts' rules only when the script ran)."""
        checked = _revalidate(targets)
        ports, _, _ = _options(options)
        scripts, _ = _script_options(options)
        rules = {*parser.RULE_IDS, *(r for s in scripts for r in parser.SCRIPT_RULES[s])}
        return ScanScope(
            tuple(t.value for t in checked), _effective_ports(checked, ports), tuple(sorted(rules))
        )

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Observations from this engine's XML; ``asset_by_host`` names this run's targets.

        Raises ``NmapIncompleteScan`` (a ``ValueError``) when a target was not scanned to the
        end, so the run is recorded as failed and closes nothing.
        """
        return parser.parse_nmap_xml(raw, asset_by_host, self.name, require_complete=True)


def _revalidate(targets: Sequence[Target]) -> list[Target]:
    checked = revalidate(targets, "nmap")
    paths = [t.value for t in checked if t.kind is TargetKind.PATH]
    if paths:
        raise ValueError(f"nmap scans network addresses, not paths: {', '.join(paths)}")
    return checked


def _options(options: Mapping[str, Any]) -> tuple[tuple[int, ...] | None, int, int]:
    """(explicit ports or None, host timeout, version intensity), each validated."""
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown nmap option(s) {', '.join(map(repr, unknown))}: "
            f"allowed are {', '.join(sorted(OPTION_KEYS))}"
        )
    ports = _ports(options["ports"]) if "ports" in options else None
    host_timeout = _bounded_int(
        "host_timeout_seconds", options.get("host_timeout_seconds", DEFAULT_HOST_TIMEOUT_SECONDS),
        1, 86400,
    )  # fmt: skip
    intensity = _bounded_int(
        "version_intensity", options.get("version_intensity", DEFAULT_VERSION_INTENSITY), 0, 9
    )
    return ports, host_timeout, intensity


def _script_options(options: Mapping[str, Any]) -> tuple[tuple[str, ...], int]:
    """(allowlisted scripts in allowlist order, script timeout); anything else is refused."""
    value = options.get("scripts", ())
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"nmap option 'scripts' must be a list of script names, got {value!r}")
    for name in value:
        if name not in parser.SCRIPT_RULES:
            raise ValueError(
                f"nmap option 'scripts': {name!r} is not an allowed script: allowed are "
                f"{', '.join(parser.SCRIPTS)}"
            )
    timeout = _bounded_int(
        "script_timeout_seconds",
        options.get("script_timeout_seconds", DEFAULT_SCRIPT_TIMEOUT_SECONDS),
        1,
        3600,
    )
    return tuple(s for s in parser.SCRIPTS if s in value), timeout


def _ports(value: Any) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"nmap option 'ports' must be a list of port numbers, got {value!r}")
    if not value:
        raise ValueError("nmap option 'ports' is empty: leave it out to scan the default ports")
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"nmap option 'ports': {port!r} is not an integer in 1..65535")
    return tuple(sorted(set(value)))


def _bounded_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"nmap option {name!r}: {value!r} is not an integer in {low}..{high}")
    return value


def _hosts(targets: Sequence[Target]) -> list[str]:
    """nmap's target arguments, in order, without duplicates (nmap would scan them twice)."""
    hosts: list[str] = []
    for target in targets:
        host = host_of(target)
        if host not in hosts:
            hosts.append(host)
    return hosts


def _family(hosts: Sequence[str]) -> int:
    """4 or 6; hostnames resolve as IPv4 (nmap's default). A mix cannot run as one scan."""
    families: set[int] = set()
    for host in hosts:
        try:
            families.add(ipaddress.ip_network(host, strict=False).version)
        except ValueError:
            families.add(4)
    if len(families) > 1:
        v6 = [h for h in hosts if ":" in h]
        raise ValueError(
            "nmap cannot scan IPv4 and IPv6 targets in one run; split the batch by address "
            f"family (IPv6 targets: {', '.join(v6)})"
        )
    return families.pop()


def _effective_ports(
    targets: Sequence[Target], explicit: tuple[int, ...] | None
) -> tuple[int, ...]:
    """Explicit ports as given; otherwise the defaults plus the port of every URL target."""
    if explicit is not None:
        return explicit
    ports = set(DEFAULT_PORTS)
    for target in targets:
        if target.kind is TargetKind.URL:
            parts = urlsplit(target.value)
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return tuple(sorted(ports))

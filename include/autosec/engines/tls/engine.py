"""The TLS engine: protocol versions, cipher suites and certificates, from one sslyze run.

The argv it builds, and why each option is there::

    PYTHON -I -m sslyze --json_out=- --mozilla_config=disable
           --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --certinfo -- HOST:PORT...

- ``PYTHON -I -m sslyze``: sslyze is a Python package installed with autosec; the interpreter
  that runs the worker runs it, so no separate executable has to be on the runner's clean
  ``PATH``. ``-I`` (isolated) keeps the worker's current directory and ``PYTHON*`` variables
  out of its import path, so a stray ``sslyze.py`` there cannot stand in for the scanner.
- ``--json_out=-``: the JSON report on stdout, kept as evidence and parsed (sslyze refuses
  ``--quiet`` together with ``-``, and prints only the JSON anyway).
- ``--mozilla_config=disable``: the Mozilla compliance check would queue every other scan
  command (ROBOT, Heartbleed, renegotiation, ...); the run asks only for what the rules use.
- ``--sslv2`` .. ``--tlsv1_3``: which versions and cipher suites the server accepts.
  ``--certinfo``: the certificate chain, validated against the trust stores bundled with sslyze
  (no network access beyond the target: OCSP is read only when the server staples it).
- ``--``: ends the options; targets are validated twice and never start with ``-``.

Which endpoints it scans: a TLS endpoint is named by an ``https://`` URL (``https://host/`` is
port 443, ``https://host:8443/`` port 8443). The target validator has no ``host:port`` form, and
guessing TLS on a bare host's ports would turn every closed port into a failed run, so bare
hosts, ranges and ``http://`` URLs among the targets are left out of the run and of its scope.
The scan stage's ``ports`` option names ports for host targets and is accepted but unused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from autosec.domain.models import Asset, AssetKind, Location, Observation
from autosec.domain.targets import (
    InvalidTarget,
    Target,
    TargetKind,
    canonical_host,
    validate_target,
)
from autosec.engines.base import (
    Capability,
    Engine,
    ScanScope,
    check_ports_option,
    revalidate,
    valid_targets,
)
from autosec.engines.tls import parser

SCAN_COMMANDS = (
    "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--certinfo",
)  # fmt: skip
OPTION_KEYS = frozenset({"ports"})
DEFAULT_HTTPS_PORT = 443

_KINDS = (AssetKind.WEB_APP, AssetKind.SERVICE)


class TlsEngine(Engine):
    """Deprecated protocols, weak cipher suites and certificate problems on https endpoints."""

    name = "tls"
    capabilities = (
        Capability("deprecated SSL/TLS protocol versions", parser.PROTOCOL_RULES, _KINDS),
        Capability("weak cipher suites", parser.CIPHER_RULES, _KINDS),
        Capability("expired or expiring certificates", parser.EXPIRY_RULES, _KINDS),
        Capability("self-signed or untrusted certificate chains", parser.TRUST_RULES, _KINDS),
        Capability(
            "certificates that do not match the hostname", (parser.CERT_HOSTNAME_MISMATCH,), _KINDS
        ),
        Capability("names seen in certificates (for discovery)", (parser.NAMES_SEEN,), _KINDS),
    )
    default_timeout_seconds = 600
    # the stage leaves bare hosts, ranges and paths out of this engine's runs
    target_kinds = frozenset({TargetKind.URL})

    def __init__(self, expiry_warning_days: int = parser.DEFAULT_EXPIRY_WARNING_DAYS) -> None:
        if isinstance(expiry_warning_days, bool) or not isinstance(expiry_warning_days, int):
            raise ValueError(f"expiry_warning_days must be an int, got {expiry_warning_days!r}")
        if not 0 <= expiry_warning_days <= 3650:
            raise ValueError(f"expiry_warning_days must be in 0..3650, got {expiry_warning_days}")
        self.expiry_warning_days = expiry_warning_days

    def version_command(self) -> list[str]:
        return [sys.executable, "-I", "-m", "sslyze", "--help"]

    def parse_version(self, output: str) -> str:
        return parser.parse_sslyze_version(output)

    def accepts(self, asset: Asset) -> bool:
        """A web app or service with at least one valid ``https://`` address."""
        return asset.kind in _KINDS and any(
            _endpoint(t) is not None for t in valid_targets(asset.addresses)
        )

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """The argv for one run; every target is validated again, every option checked."""
        _check_options(options)
        endpoints = _endpoints(revalidate(targets, "tls"))
        return [
            sys.executable,
            "-I",
            "-m",
            "sslyze",
            "--json_out=-",
            "--mozilla_config=disable",
            *SCAN_COMMANDS,
            "--",
            *(_server_string(host, port) for host, port in endpoints),
        ]

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        """The https URLs the run scans, and their ports."""
        _check_options(options)
        checked = revalidate(targets, "tls")
        ports = sorted({port for _, port in _endpoints(checked)})
        urls = (t.value for t in checked if _endpoint(t) is not None)
        return ScanScope(tuple(dict.fromkeys(urls)), tuple(ports))

    def covers(self, rule_id: str, location: Location, scope: ScanScope) -> bool:
        """A TLS rule on an endpoint (host and port) that the run scanned."""
        if location.host is None or location.port is None:
            return False
        if not super().covers(rule_id, location, scope):  # the rule and port checks
            return False
        scanned = set()
        for value in scope.targets:
            try:
                endpoint = _endpoint(validate_target(value))
            except InvalidTarget:
                continue
            if endpoint is not None:
                scanned.add(endpoint)
        return (canonical_host(location.host), location.port) in scanned

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Observations from sslyze's JSON; ``asset_by_host`` names this run's targets.

        Raises ``TlsIncompleteScan`` (a ``ValueError``) when a target was unreachable or a scan
        command failed, so the run is recorded as failed and closes nothing.
        """
        return parser.parse_sslyze_json(
            raw,
            asset_by_host,
            self.name,
            expiry_warning_days=self.expiry_warning_days,
            require_complete=True,
        )


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown tls option(s) {', '.join(map(repr, unknown))}: "
            f"allowed are {', '.join(sorted(OPTION_KEYS))}"
        )
    check_ports_option(options, "tls")


def _endpoint(target: Target) -> tuple[str, int] | None:
    """(host, port) of an https URL target; None for anything the engine does not scan."""
    if target.kind is not TargetKind.URL:
        return None
    parts = urlsplit(target.value)
    if parts.scheme != "https" or not parts.hostname:
        return None
    return canonical_host(parts.hostname), parts.port or DEFAULT_HTTPS_PORT


def _endpoints(targets: Sequence[Target]) -> list[tuple[str, int]]:
    endpoints = list(dict.fromkeys(e for t in targets if (e := _endpoint(t)) is not None))
    if not endpoints:
        given = ", ".join(t.value for t in targets)
        raise ValueError(
            f"tls scans https:// URL targets only, and none was given (targets: {given})"
        )
    return endpoints


def _server_string(host: str, port: int) -> str:
    """sslyze's ``host:port`` (``[addr]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

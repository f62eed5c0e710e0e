"""The http engine: security headers, cookie flags, disclosures and exposed files.

The argv it builds::

    PYTHON -I -m autosec.engines.http.probe --timeout S --max-body BYTES -- URL...

The probe (``probe.py``) is a standard-library module run as its own process through the
runner, like any other scanner (``-I``: isolated, so nothing in the worker's current directory
or ``PYTHON*`` variables can stand in for it): it gets the runner's timeout, output cap and clean
environment, and its raw JSON lines are kept as the run's evidence. It never follows a
redirect to another host and masks cookie values and ``.env`` values before printing.

Which targets it probes: ``http://`` and ``https://`` URL targets, as given (path and query
included). The target validator has no ``host:port`` form and a bare host says neither the
scheme nor the port, so bare hosts and ranges are left out of the run and of its scope. The
scan stage's ``ports`` option names ports for host targets and is accepted but unused.

What a run covers: page rules (headers, cookies, listing, redirects) on exactly the URLs it
probed; origin rules (version disclosure, TRACE, ``/.git/HEAD``, ``/.env``) on the origins
(scheme, host, port) of those URLs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from autosec.domain.models import Asset, AssetKind, Location, Observation
from autosec.domain.targets import Target, TargetKind
from autosec.engines.base import (
    Capability,
    Engine,
    ScanScope,
    check_ports_option,
    revalidate,
    valid_targets,
)
from autosec.engines.http import parser
from autosec.engines.http.probe import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_BODY_LIMIT,
    origin_of,
)

PROBE_MODULE = "autosec.engines.http.probe"
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10
OPTION_KEYS = frozenset({"ports", "request_timeout_seconds", "max_body_bytes"})

_KINDS = (AssetKind.WEB_APP, AssetKind.SERVICE)


class HttpEngine(Engine):
    """Web weaknesses visible from outside, from one probe run over http(s) URLs."""

    name = "http"
    capabilities = (
        Capability("missing HTTP security headers", parser.HEADER_RULES, _KINDS),
        Capability("cookies without Secure, HttpOnly or SameSite", parser.COOKIE_RULES, _KINDS),
        Capability("server or framework versions in headers", (parser.VERSION_DISCLOSED,), _KINDS),
        Capability("HTTP TRACE enabled", (parser.TRACE_ENABLED,), _KINDS),
        Capability(
            "directory listings, exposed .git and .env files", parser.EXPOSURE_RULES, _KINDS
        ),
        Capability("redirect targets (for discovery)", (parser.REDIRECT,), _KINDS),
    )
    default_timeout_seconds = 600
    # the stage leaves bare hosts, ranges and paths out of this engine's runs
    target_kinds = frozenset({TargetKind.URL})

    def version_command(self) -> list[str]:
        return [sys.executable, "-I", "-m", PROBE_MODULE, "--version"]

    def parse_version(self, output: str) -> str:
        return parser.parse_probe_version(output)

    def accepts(self, asset: Asset) -> bool:
        """A web app or service with at least one valid http(s) URL address."""
        return asset.kind in _KINDS and any(
            t.kind is TargetKind.URL for t in valid_targets(asset.addresses)
        )

    def command(self, targets: Sequence[Target], options: Mapping[str, Any]) -> list[str]:
        """The argv for one run; every target is validated again, every option checked."""
        timeout, max_body = _options(options)
        urls = _urls(revalidate(targets, "http"))
        return [
            sys.executable,
            "-I",
            "-m",
            PROBE_MODULE,
            "--timeout",
            str(timeout),
            "--max-body",
            str(max_body),
            "--",
            *urls,
        ]

    def scope(self, targets: Sequence[Target], options: Mapping[str, Any]) -> ScanScope:
        """The URLs the run probes, and their ports."""
        _options(options)
        urls = _urls(revalidate(targets, "http"))
        ports = sorted({_location_port(url) for url in urls})
        return ScanScope(tuple(urls), tuple(ports))

    def covers(self, rule_id: str, location: Location, scope: ScanScope) -> bool:
        """A page rule on a URL the run probed, or an origin rule on an origin it probed."""
        if not location.url or not super().covers(rule_id, location, scope):
            return False
        if rule_id in parser.ORIGIN_RULES:
            return origin_of(location.url) in {origin_of(url) for url in scope.targets}
        return location.url in scope.targets

    def parse(self, raw: bytes, asset_by_host: Mapping[str, str]) -> list[Observation]:
        """Observations from the probe's JSON lines; ``asset_by_host`` names the run's targets.

        Raises ``HttpIncompleteScan`` (a ``ValueError``) when a URL or origin could not be
        probed, so the run is recorded as failed and closes nothing.
        """
        return parser.parse_probe_output(raw, asset_by_host, self.name, require_complete=True)


def _urls(targets: Sequence[Target]) -> list[str]:
    urls = list(dict.fromkeys(t.value for t in targets if t.kind is TargetKind.URL))
    if not urls:
        given = ", ".join(t.value for t in targets)
        raise ValueError(
            f"http probes http:// and https:// URL targets only, and none was given "
            f"(targets: {given})"
        )
    return urls


def _location_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _options(options: Mapping[str, Any]) -> tuple[int, int]:
    """(request timeout in seconds, body bytes to read), each validated."""
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise ValueError(
            f"unknown http option(s) {', '.join(map(repr, unknown))}: "
            f"allowed are {', '.join(sorted(OPTION_KEYS))}"
        )
    check_ports_option(options, "http")
    timeout = _bounded_int(
        "request_timeout_seconds",
        options.get("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS),
        1,
        300,
    )
    max_body = _bounded_int(
        "max_body_bytes", options.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), 1024,
        MAX_BODY_LIMIT,
    )  # fmt: skip
    return timeout, max_body


def _bounded_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"http option {name!r}: {value!r} is not an integer in {low}..{high}")
    return value

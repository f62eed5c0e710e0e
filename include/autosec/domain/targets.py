"""Validate scan targets before they reach any argv.

Inventory values are untrusted input: a value such as ``a;rm -rf /``, ``$(id)`` or
``--script=x`` must be rejected here, with a reason, and never passed on to an engine.

A filesystem path (a repository checkout or a folder, for the file-reading engines) is told
apart from a CIDR range by its first characters: it is absolute (``/srv/repos/app``) or
explicitly relative (``./app``, ``../app``). It is normalised lexically (``/srv/x/../y`` is
``/srv/y``; ``./a//b/`` is ``./a/b``) without touching the filesystem, so validation stays pure,
and a relative path keeps its ``./`` so that validating the value again gives the same target.
The shell characters and whitespace refused everywhere are refused in paths too.
"""

from __future__ import annotations

import enum
import ipaddress
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit


class TargetKind(enum.StrEnum):
    IP = "ip"
    CIDR = "cidr"
    HOSTNAME = "hostname"
    URL = "url"
    PATH = "path"


class InvalidTarget(ValueError):
    """A value that may not be a scan target; the message names the value and the problem."""

    def __init__(self, value: str, problem: str) -> None:
        super().__init__(f"invalid target {value!r}: {problem}")
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class Target:
    value: str
    kind: TargetKind


_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_MAX_CIDR_ADDRESSES = 65536
_MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux


def validate_target(raw: object) -> Target:
    """Return the canonical target for ``raw`` or raise :class:`InvalidTarget`."""
    if not isinstance(raw, str):
        raise InvalidTarget(repr(raw), "not a string")
    value = raw.strip()
    if not value:
        raise InvalidTarget(raw, "empty")
    if value.startswith("-"):
        raise InvalidTarget(raw, "starts with '-' and could be read as an option")
    if any(ch.isspace() or ord(ch) < 32 or ch in ";|&$`<>\\\"'(){}*?!" for ch in value):
        raise InvalidTarget(raw, "contains whitespace, control or shell characters")
    if "://" in value:
        return _validate_url(raw, value)
    if _is_path(value):
        return Target(_validate_path(raw, value), TargetKind.PATH)
    try:
        return Target(str(ipaddress.ip_address(value)), TargetKind.IP)
    except ValueError:
        pass
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise InvalidTarget(raw, "not a valid CIDR range") from None
        if network.num_addresses > _MAX_CIDR_ADDRESSES:
            raise InvalidTarget(raw, f"range larger than {_MAX_CIDR_ADDRESSES} addresses")
        return Target(str(network), TargetKind.CIDR)
    return Target(_validate_hostname(raw, value), TargetKind.HOSTNAME)


def _validate_hostname(raw: str, value: str) -> str:
    name = value.rstrip(".").lower()
    if len(name) > 253:
        raise InvalidTarget(raw, "hostname longer than 253 characters")
    labels = name.split(".")
    if not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise InvalidTarget(raw, "not a valid hostname, IP address, CIDR range or URL")
    if labels[-1].isdigit():
        raise InvalidTarget(raw, "looks like a malformed IP address")
    return name


def _is_path(value: str) -> bool:
    return value in (".", "..") or value.startswith(("/", "./", "../"))


def _validate_path(raw: str, value: str) -> str:
    if len(value) > _MAX_PATH_LENGTH:
        raise InvalidTarget(raw, f"path longer than {_MAX_PATH_LENGTH} characters")
    if any(ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0 for ch in value):
        raise InvalidTarget(raw, "path contains control characters")
    normal = posixpath.normpath(value)
    if value.startswith("/"):
        return "/" + normal.lstrip("/")  # POSIX keeps a leading "//"; one is enough
    if normal in (".", "..") or normal.startswith("../"):
        return normal
    return "./" + normal


def _validate_url(raw: str, value: str) -> Target:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise InvalidTarget(raw, f"URL scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise InvalidTarget(raw, "URL has no host")
    if parts.username or parts.password:
        raise InvalidTarget(raw, "URL carries credentials")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        _validate_hostname(raw, parts.hostname)
    try:
        _ = parts.port
    except ValueError:
        raise InvalidTarget(raw, "URL port is not a number in range") from None
    return Target(value, TargetKind.URL)


def canonical_host(value: str) -> str:
    """An IP address in its canonical form, or a hostname in lower case without a final dot:
    how engine output is matched back to the hosts a run was given."""
    text = value.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.rstrip(".").lower()


def host_of(target: Target) -> str:
    """The host part of a target, for matching engine output back to assets."""
    if target.kind is TargetKind.URL:
        return urlsplit(target.value).hostname or target.value
    return target.value

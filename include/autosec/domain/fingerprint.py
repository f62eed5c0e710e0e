"""Finding fingerprints: stable identity across runs and engine versions.

Only identity fields go in: the asset, the rule, and the location (host, port, protocol, the
URL without its query and fragment, the file and line, the package name without its version).
Titles, descriptions, evidence, severity, CVSS, timestamps and scanner wording never do, so a
rescan in new words is the same finding.

Normalisation, so that spelling is not identity: the rule id, host, protocol and the URL's
scheme and host are compared case-insensitively and without surrounding blanks; a file path
uses forward slashes and loses a leading ``./``; a package URL keeps type, namespace and name.

Versions. Every algorithm that ever produced stored fingerprints stays in ``ALGORITHMS``, so a
stored ``fingerprint_version`` can always be recomputed and compared. Changing the algorithm is
a migration, never silent duplicates:

1. add ``_identity_vN`` and register it in ``ALGORITHMS``; set ``FINGERPRINT_VERSION = N``;
2. in the same release, a store migration calls
   ``autosec.store.findings.refingerprint_findings(conn, N)``: it recomputes the fingerprint of
   every stored finding at an older version from its stored identity fields, and refuses, writing
   nothing, when two stored findings would share a new fingerprint (it names them, so the merge
   is decided by a person rather than by a unique-key error halfway through);
3. only then does triage write version N fingerprints.

Version 1 stripped every leading ``.`` and ``/`` from file paths, so ``.env`` and ``env`` were the
same finding, and crashed on a URL that ``urlsplit`` refuses. Version 2 strips only ``./`` and
``/`` prefixes and falls back to plain text for URLs and package URLs it cannot parse; migration
0006 recomputes stored version 1 fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from autosec.domain.models import Location, Observation

FINGERPRINT_VERSION = 2

Identity = Callable[[str, str, Location], dict[str, object]]


def fingerprint(observation: Observation, version: int = FINGERPRINT_VERSION) -> str:
    """sha256 hex of the observation's identity fields under algorithm ``version``."""
    return fingerprint_of(observation.asset_id, observation.rule_id, observation.location, version)


def fingerprint_of(
    asset_id: str, rule_id: str, location: Location, version: int = FINGERPRINT_VERSION
) -> str:
    """The fingerprint of stored identity fields (what a refingerprinting migration has)."""
    try:
        identity = ALGORITHMS[version]
    except KeyError:
        raise ValueError(
            f"unknown fingerprint version {version}: known versions are {sorted(ALGORITHMS)}"
        ) from None
    encoded = json.dumps(
        identity(asset_id, rule_id, location), sort_keys=True, separators=(",", ":")
    ).encode()
    return hashlib.sha256(encoded).hexdigest()


# --- version 1 (kept so stored version 1 fingerprints can be recomputed) -----------------------


def _identity_v1(asset_id: str, rule_id: str, location: Location) -> dict[str, object]:
    identity: dict[str, object] = {}
    if location.host:
        identity["host"] = location.host.strip().lower()
    if location.port is not None:
        identity["port"] = int(location.port)
    if location.protocol:
        identity["protocol"] = location.protocol.strip().lower()
    if location.url:
        parts = urlsplit(location.url.strip())
        identity["url"] = urlunsplit(
            (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", "")
        )
    if location.file:
        identity["file"] = location.file.replace("\\", "/").lstrip("./")
    if location.line is not None:
        identity["line"] = int(location.line)
    if location.purl:
        identity["purl"] = _purl_v1(location.purl)
    return {"v": 1, "asset": asset_id, "rule": rule_id.strip().lower(), "location": identity}


def _purl_v1(purl: str) -> str:
    from packageurl import PackageURL

    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return purl.strip()
    return PackageURL(parsed.type, parsed.namespace, parsed.name).to_string()


# --- version 2 ---------------------------------------------------------------------------------


def _identity_v2(asset_id: str, rule_id: str, location: Location) -> dict[str, object]:
    identity: dict[str, object] = {}
    if location.host and location.host.strip():
        identity["host"] = location.host.strip().lower()
    if location.port is not None:
        identity["port"] = int(location.port)
    if location.protocol and location.protocol.strip():
        identity["protocol"] = location.protocol.strip().lower()
    if location.url and location.url.strip():
        identity["url"] = _url_without_query(location.url)
    if location.file and location.file.strip():
        identity["file"] = _file_path(location.file)
    if location.line is not None:
        identity["line"] = int(location.line)
    if location.purl and location.purl.strip():
        identity["purl"] = _purl_without_version(location.purl.strip())
    return {"v": 2, "asset": asset_id, "rule": rule_id.strip().lower(), "location": identity}


def _url_without_query(url: str) -> str:
    """Query strings and fragments carry session ids and cache busters: not identity."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: keep the text before ? and #
        return text.split("#", 1)[0].split("?", 1)[0]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def _file_path(path: str) -> str:
    """Forward slashes; a leading ``./`` or ``/`` is spelling, a leading ``.`` is a name."""
    normal = path.strip().replace("\\", "/")
    while normal.startswith(("./", "/")):
        normal = normal[2:] if normal.startswith("./") else normal[1:]
    return normal


@lru_cache(maxsize=65536)
def _purl_without_version(purl: str) -> str:
    """A package finding is identified by the package, not the version installed today."""
    from packageurl import PackageURL

    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        # Not a valid package URL: drop what would be its version, qualifiers and subpath.
        text = purl.split("#", 1)[0].split("?", 1)[0]
        name_start = text.rfind("/") + 1
        at = text.find("@", name_start)
        return text[:at] if at > 0 else text
    return PackageURL(parsed.type, parsed.namespace, parsed.name).to_string()


ALGORITHMS: dict[int, Identity] = {1: _identity_v1, 2: _identity_v2}

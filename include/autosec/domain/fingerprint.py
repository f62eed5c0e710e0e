"""Finding fingerprints: stable identity across runs and engine versions.

Only identity fields go in (asset, rule, location); descriptions, timestamps and scanner
wording never do. The algorithm is versioned: changing it means a new version and a store
migration that rewrites fingerprints, never silent duplicates.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit, urlunsplit

from autosec.domain.models import Location, Observation

FINGERPRINT_VERSION = 1


def fingerprint(observation: Observation) -> str:
    """sha256 hex of the observation's identity fields (algorithm version 1)."""
    identity = {
        "v": FINGERPRINT_VERSION,
        "asset": observation.asset_id,
        "rule": observation.rule_id.strip().lower(),
        "location": _location_identity(observation.location),
    }
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def _location_identity(location: Location) -> dict[str, object]:
    identity: dict[str, object] = {}
    if location.host:
        identity["host"] = location.host.strip().lower()
    if location.port is not None:
        identity["port"] = int(location.port)
    if location.protocol:
        identity["protocol"] = location.protocol.strip().lower()
    if location.url:
        identity["url"] = _url_without_query(location.url)
    if location.file:
        identity["file"] = location.file.replace("\\", "/").lstrip("./")
    if location.line is not None:
        identity["line"] = int(location.line)
    if location.purl:
        identity["purl"] = _purl_without_version(location.purl)
    return identity


def _url_without_query(url: str) -> str:
    """Query strings and fragments carry session ids and cache busters: not identity."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def _purl_without_version(purl: str) -> str:
    """A package finding is identified by the package, not the version installed today."""
    from packageurl import PackageURL

    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return purl.strip()
    return PackageURL(parsed.type, parsed.namespace, parsed.name).to_string()

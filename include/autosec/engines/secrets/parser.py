"""Pure parser for detect-secrets output (a ``scan`` report or a ``.secrets.baseline``).

The report maps each file, relative to the scanned root, to what the detectors found there::

    {"results": {"config/settings.py": [{"type": "AWS Access Key", "line_number": 3,
                                         "hashed_secret": "<sha1>", "is_verified": false}]}}

detect-secrets never writes the secret itself, only its SHA-1 (``hashed_secret``). The parser
copies the four fields above and nothing else, so a report that did carry clear text (a future
format, a hand-edited file) still puts none of it into an observation. There is no masked
preview to give: the preview needs the secret, and autosec never reads it.

Identity. One observation per detector and file: the rule is the detector type as a stable
slug (``AWS Access Key`` -> ``secrets.aws-access-key``) and the location is the file alone
(forward slashes, relative to the repository root), without a line. Line numbers move whenever
lines are added above a secret; with the line in the fingerprint every such edit would close
the finding as fixed and open a new one, resetting its due date, so a secret could outlive its
SLA through unrelated edits. The lines and the hashes of every occurrence are evidence instead
(``lines``, ``secret_sha1``): a file whose key was rotated in place still holds a secret and
stays one open finding; the finding is fixed when the detector no longer fires in that file.

The same string is often matched twice: by a detector that knows the provider (AWS, GitHub,
a private key) and by a generic one (high-entropy string, secret keyword). The generic match of
a hash that a specific detector already reported in that file is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autosec.domain.models import Location, Observation, Severity

RULE_PREFIX = "secrets."
# detect-secrets 1.5 detector types with their severity: a provider's credential is high,
# a generic match (keyword, entropy) is lower because it is often a test value or a hash.
DETECTOR_SEVERITY: Mapping[str, Severity] = {
    "AWS Access Key": Severity.HIGH,
    "Artifactory Credentials": Severity.HIGH,
    "Azure Storage Account access key": Severity.HIGH,
    "Base64 High Entropy String": Severity.LOW,
    "Basic Auth Credentials": Severity.MEDIUM,
    "Cloudant Credentials": Severity.HIGH,
    "Discord Bot Token": Severity.HIGH,
    "GitHub Token": Severity.HIGH,
    "GitLab Token": Severity.HIGH,
    "Hex High Entropy String": Severity.LOW,
    "IBM COS HMAC Credentials": Severity.HIGH,
    "IBM Cloud IAM Key": Severity.HIGH,
    "JSON Web Token": Severity.MEDIUM,
    "Mailchimp Access Key": Severity.HIGH,
    "NPM tokens": Severity.HIGH,
    "OpenAI Token": Severity.HIGH,
    "Private Key": Severity.HIGH,
    "Public IP (ipv4)": Severity.INFO,
    "PyPI Token": Severity.HIGH,
    "Secret Keyword": Severity.MEDIUM,
    "SendGrid API Key": Severity.HIGH,
    "Slack Token": Severity.HIGH,
    "SoftLayer Credentials": Severity.HIGH,
    "Square OAuth Secret": Severity.HIGH,
    "Stripe Access Key": Severity.HIGH,
    "Telegram Bot Token": Severity.HIGH,
    "Twilio API Key": Severity.HIGH,
}
GENERIC_DETECTORS = frozenset(
    {"Base64 High Entropy String", "Hex High Entropy String", "Secret Keyword"}
)
UNKNOWN_DETECTOR_SEVERITY = Severity.MEDIUM

_SLUG = re.compile(r"[^a-z0-9]+")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_VERSION = re.compile(r"^\s*(\d+\.\d+(?:\.\d+)?)\s*$", re.MULTILINE)

_DESCRIPTION = (
    "A credential is stored in the repository's files. Anyone who can read the repository (its "
    "clones, forks, CI logs, backups) can use it, and removing it from the latest commit does "
    "not remove it from history. Revoke and rotate the credential first, then remove it from "
    "the code (load it from a secret store or the environment) and purge it from history "
    "where the repository is shared."
)


class SecretsParseError(ValueError):
    """Output that is not a readable detect-secrets report; the message says why."""


def rule_id_for(detector: str) -> str:
    """The stable rule id of a detector type: ``secrets.`` and the type as a slug."""
    slug = _SLUG.sub("-", detector.strip().lower()).strip("-")
    if not slug:
        raise SecretsParseError(f"detector type {detector!r} has no letters or digits")
    return RULE_PREFIX + slug


RULE_IDS: tuple[str, ...] = tuple(sorted(rule_id_for(d) for d in DETECTOR_SEVERITY))


@dataclass
class _Hits:
    hashes: dict[str, set[int]] = field(default_factory=dict)  # sha1 -> the lines it is on
    verified: bool = False

    def lines(self) -> list[int]:
        return sorted(set().union(*self.hashes.values()))


def parse_detect_secrets(
    raw: bytes | str, asset_id: str, engine_name: str = "secrets"
) -> list[Observation]:
    """One observation per (detector, file) in a detect-secrets report, for ``asset_id``."""
    report = _load(raw)
    results = report.get("results")
    if not isinstance(results, dict):
        raise SecretsParseError(
            "not a detect-secrets report: 'results' must be an object mapping files to findings"
        )
    found: dict[tuple[str, str], _Hits] = {}
    for filename, entries in results.items():
        file = _relative_file(filename)
        if not isinstance(entries, list):
            raise SecretsParseError(f"results for {filename!r}: expected a list of findings")
        for index, entry in enumerate(entries):
            detector, line, sha1, verified = _entry(entry, f"results[{filename!r}][{index}]")
            hits = found.setdefault((detector, file), _Hits())
            hits.hashes.setdefault(sha1, set()).add(line)
            hits.verified = hits.verified or verified
    _drop_generic_duplicates(found)
    return [
        _observation(asset_id, engine_name, detector, file, hits)
        for (detector, file), hits in sorted(
            found.items(), key=lambda item: (item[0][1], item[0][0])
        )
        if hits.hashes
    ]


def parse_detect_secrets_version(output: str) -> str:
    """The version ``detect-secrets --version`` prints (``1.5.0``)."""
    match = _VERSION.search(output or "")
    if match is None:
        raise SecretsParseError(f"no version in detect-secrets --version output {output[:120]!r}")
    return match.group(1)


def _load(raw: bytes | str) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray | memoryview):
        text = bytes(raw).decode("utf-8-sig", errors="strict")
    elif isinstance(raw, str):
        text = raw.removeprefix("\ufeff")
    else:
        raise TypeError(f"detect-secrets output must be bytes or str, not {type(raw).__name__}")
    if not text.strip():
        raise SecretsParseError("empty detect-secrets output: expected a JSON report")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretsParseError(
            f"malformed detect-secrets JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(report, dict):
        raise SecretsParseError(
            f"not a detect-secrets report: the top level is {type(report).__name__}, not an object"
        )
    return report


def _relative_file(filename: object) -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise SecretsParseError(f"results key {filename!r} is not a file name")
    file = filename.replace("\\", "/")
    while file.startswith("./"):
        file = file[2:]
    return file


def _entry(entry: object, where: str) -> tuple[str, int, str, bool]:
    """(detector, line, sha1, verified) of one finding; only these fields are ever read."""
    if not isinstance(entry, dict):
        raise SecretsParseError(f"{where}: expected an object, got {type(entry).__name__}")
    detector = entry.get("type")
    if not isinstance(detector, str) or not detector.strip():
        raise SecretsParseError(f"{where}: 'type' must be the detector's name, got {detector!r}")
    line = entry.get("line_number")
    if isinstance(line, bool) or not isinstance(line, int) or line < 0:
        raise SecretsParseError(f"{where}: 'line_number' must be a line number, got {line!r}")
    sha1 = entry.get("hashed_secret")
    if not isinstance(sha1, str) or not _SHA1.match(sha1.lower()):
        raise SecretsParseError(f"{where}: 'hashed_secret' must be a SHA-1 hex digest")
    return detector.strip(), line, sha1.lower(), entry.get("is_verified") is True


def _drop_generic_duplicates(found: dict[tuple[str, str], _Hits]) -> None:
    specific: dict[str, set[str]] = {}
    for (detector, file), hits in found.items():
        if detector not in GENERIC_DETECTORS:
            specific.setdefault(file, set()).update(hits.hashes)
    for (detector, file), hits in found.items():
        if detector in GENERIC_DETECTORS:
            for sha1 in specific.get(file, set()) & set(hits.hashes):
                del hits.hashes[sha1]


def _observation(
    asset_id: str, engine_name: str, detector: str, file: str, hits: _Hits
) -> Observation:
    lines = hits.lines()
    count = len(hits.hashes)
    where = f"{file}:{lines[0]}" + (f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else "")
    severity = DETECTOR_SEVERITY.get(detector, UNKNOWN_DETECTOR_SEVERITY)
    if hits.verified:
        severity = Severity.CRITICAL  # the provider confirmed the credential works
    return Observation(
        asset_id=asset_id,
        engine=engine_name,
        rule_id=rule_id_for(detector),
        title=f"{detector} in {where}",
        severity=severity,
        location=Location(file=file),
        description=_DESCRIPTION,
        cwe="CWE-798",
        evidence={
            "detector": detector,
            "file": file,
            "lines": lines,
            "secrets": count,
            "secret_sha1": sorted(hits.hashes, key=lambda h: (min(hits.hashes[h]), h)),
            "verified": hits.verified,
        },
    )

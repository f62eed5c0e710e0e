"""Pure parser for sslyze's JSON report (``--json_out``): protocols, ciphers, certificates.

Each TLS endpoint (host and port) yields one observation per problem found on it:

- a deprecated protocol version it accepts (SSL 2.0, SSL 3.0, TLS 1.0, TLS 1.1);
- a class of weak cipher suite it accepts (NULL, EXPORT, anonymous, DES, RC4, 3DES, and CBC
  suites under TLS 1.0), one observation per class with the suites in the evidence;
- a certificate that has expired or expires within ``expiry_warning_days`` of the scan, that is
  self-signed, whose chain no trust store accepts, or whose names do not cover the hostname;
- ``tls.names-seen`` (info): the DNS names in the certificate, for discovery.

Every observation of an endpoint carries the certificate names in ``evidence["names_seen"]``
(lower case, sorted; wildcards keep their ``*.`` prefix), so discovery can read them from any
finding. Expiry is measured against the time sslyze finished the scan (``date_scans_completed``),
which keeps parsing pure and a re-parse of old evidence reproducible.

A target sslyze could not reach or resolve, or a scan command that failed, is a failed target,
not a clean one: read with ``require_complete=True`` (as the engine does), such a report raises
:class:`TlsIncompleteScan`, so the run closes nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from autosec.domain.models import Location, Observation, Severity
from autosec.domain.targets import canonical_host
from autosec.engines.base import RuleText

SSL_2_0 = "tls.sslv2-enabled"
SSL_3_0 = "tls.sslv3-enabled"
TLS_1_0 = "tls.tls1_0-enabled"
TLS_1_1 = "tls.tls1_1-enabled"
PROTOCOL_RULES = (SSL_2_0, SSL_3_0, TLS_1_0, TLS_1_1)

WEAK_NULL = "tls.weak-cipher.null"
WEAK_EXPORT = "tls.weak-cipher.export"
WEAK_ANONYMOUS = "tls.weak-cipher.anonymous"
WEAK_DES = "tls.weak-cipher.des"
WEAK_RC4 = "tls.weak-cipher.rc4"
WEAK_3DES = "tls.weak-cipher.3des"
WEAK_CBC_TLS_1_0 = "tls.weak-cipher.cbc-tls1_0"
CIPHER_RULES = (
    WEAK_NULL, WEAK_EXPORT, WEAK_ANONYMOUS, WEAK_DES, WEAK_RC4, WEAK_3DES, WEAK_CBC_TLS_1_0,
)  # fmt: skip

CERT_EXPIRED = "tls.cert-expired"
CERT_EXPIRING = "tls.cert-expiring"
CERT_SELF_SIGNED = "tls.cert-self-signed"
CERT_UNTRUSTED = "tls.cert-untrusted"
CERT_HOSTNAME_MISMATCH = "tls.cert-hostname-mismatch"
EXPIRY_RULES = (CERT_EXPIRED, CERT_EXPIRING)
TRUST_RULES = (CERT_SELF_SIGNED, CERT_UNTRUSTED)

NAMES_SEEN = "tls.names-seen"
NAMES_SEEN_KEY = "names_seen"

RULE_IDS = (
    *PROTOCOL_RULES, *CIPHER_RULES, *EXPIRY_RULES, *TRUST_RULES, CERT_HOSTNAME_MISMATCH,
    NAMES_SEEN,
)  # fmt: skip
DEFAULT_EXPIRY_WARNING_DAYS = 30

# sslyze scan command (JSON key) -> (protocol label, rule when the version is accepted).
PROTOCOL_COMMANDS: Mapping[str, tuple[str, str | None]] = {
    "ssl_2_0_cipher_suites": ("SSL 2.0", SSL_2_0),
    "ssl_3_0_cipher_suites": ("SSL 3.0", SSL_3_0),
    "tls_1_0_cipher_suites": ("TLS 1.0", TLS_1_0),
    "tls_1_1_cipher_suites": ("TLS 1.1", TLS_1_1),
    "tls_1_2_cipher_suites": ("TLS 1.2", None),
    "tls_1_3_cipher_suites": ("TLS 1.3", None),
}
CERTIFICATE_COMMAND = "certificate_info"
# What a run must have completed for its absence of findings to mean anything.
REQUIRED_COMMANDS = (*PROTOCOL_COMMANDS, CERTIFICATE_COMMAND)
# The trust store whose verdict counts; the others are used only when it is missing.
REFERENCE_TRUST_STORE = "Mozilla"

_VERSION_LINE = re.compile(r"SSLyze version (\S+)")
_CIPHER_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (WEAK_NULL, re.compile(r"(^|_)NULL(_|$)")),
    (WEAK_EXPORT, re.compile(r"EXPORT")),
    (WEAK_ANONYMOUS, re.compile(r"_anon_", re.IGNORECASE)),
    # single DES (56-bit or 40-bit); 3DES names say "3DES" or "DES_192_EDE3"
    (WEAK_DES, re.compile(r"_DES(40)?_CBC|_DES_64_CBC")),
    (WEAK_RC4, re.compile(r"_RC4_")),
    (WEAK_3DES, re.compile(r"3DES|_DES_192_EDE3_")),
)


_PROTOCOL_TEXT = (
    "The server still negotiates {protocol}, a protocol version with known cryptographic "
    "weaknesses that current browsers and standards (RFC 8996, PCI DSS) no longer allow. A "
    "client that can be pushed down to it is exposed to downgrade and decryption attacks. "
    "Disable it and keep TLS 1.2 and TLS 1.3."
)
RULE_TEXT: Mapping[str, RuleText] = {
    SSL_2_0: RuleText("SSL 2.0 enabled", Severity.HIGH, "CWE-327", _PROTOCOL_TEXT),
    SSL_3_0: RuleText("SSL 3.0 enabled", Severity.HIGH, "CWE-327", _PROTOCOL_TEXT),
    TLS_1_0: RuleText("TLS 1.0 enabled", Severity.MEDIUM, "CWE-327", _PROTOCOL_TEXT),
    TLS_1_1: RuleText("TLS 1.1 enabled", Severity.MEDIUM, "CWE-327", _PROTOCOL_TEXT),
    WEAK_NULL: RuleText(
        "NULL cipher suites accepted (no encryption)", Severity.HIGH, "CWE-319",
        "The server accepts cipher suites that authenticate but do not encrypt: traffic on "
        "such a connection is readable by anyone on the path. Remove every NULL suite.",
    ),
    WEAK_EXPORT: RuleText(
        "EXPORT cipher suites accepted", Severity.HIGH, "CWE-327",
        "The server accepts 1990s export-grade suites (40- or 56-bit keys), which FREAK and "
        "Logjam showed can be broken in hours. Remove every EXPORT suite.",
    ),
    WEAK_ANONYMOUS: RuleText(
        "Anonymous cipher suites accepted (no server authentication)", Severity.HIGH,
        "CWE-287",
        "The server accepts anonymous Diffie-Hellman suites, which send no certificate: any "
        "machine on the path can impersonate the server. Remove every anon suite.",
    ),
    WEAK_DES: RuleText(
        "Single-DES cipher suites accepted", Severity.HIGH, "CWE-327",
        "The server accepts DES with a 56-bit (or 40-bit) key, which can be brute-forced. "
        "Remove every DES suite.",
    ),
    WEAK_RC4: RuleText(
        "RC4 cipher suites accepted", Severity.MEDIUM, "CWE-327",
        "RC4 has biases that let an attacker recover plaintext from many connections "
        "(RFC 7465 prohibits it). Remove every RC4 suite.",
    ),
    WEAK_3DES: RuleText(
        "3DES cipher suites accepted (SWEET32)", Severity.MEDIUM, "CWE-327",
        "Triple-DES has a 64-bit block, so long-lived connections leak plaintext through "
        "birthday collisions (SWEET32, CVE-2016-2183). Prefer AES-GCM or ChaCha20-Poly1305.",
    ),
    WEAK_CBC_TLS_1_0: RuleText(
        "CBC cipher suites accepted under TLS 1.0 (BEAST)", Severity.LOW, "CWE-327",
        "Under TLS 1.0 a CBC suite uses a predictable IV, the weakness behind BEAST. Disable "
        "TLS 1.0, or at least its CBC suites.",
    ),
    CERT_EXPIRED: RuleText(
        "Certificate has expired", Severity.HIGH, "CWE-324",
        "The server presents a certificate past its notAfter date. Clients reject it (or "
        "users learn to click through warnings, which trains them to accept a forged one). "
        "Renew it and automate renewal.",
    ),
    CERT_EXPIRING: RuleText(
        "Certificate expires soon", Severity.MEDIUM, "CWE-324",
        "The server's certificate expires within the warning window: renew it before clients "
        "start rejecting the service, and automate renewal.",
    ),
    CERT_SELF_SIGNED: RuleText(
        "Self-signed certificate", Severity.MEDIUM, "CWE-295",
        "The certificate is signed by its own key, so no client can tell it from one an "
        "attacker made. Use a certificate from a public CA or from your organisation's CA, "
        "distributed to the clients that must trust it.",
    ),
    CERT_UNTRUSTED: RuleText(
        "Certificate chain not trusted", Severity.MEDIUM, "CWE-295",
        "No trust store accepts the chain the server sends (an unknown or private CA, a "
        "missing intermediate, or a bad signature). Clients must either fail or skip "
        "verification. Serve the full chain up to a trusted root.",
    ),
    CERT_HOSTNAME_MISMATCH: RuleText(
        "Certificate does not match the hostname", Severity.MEDIUM, "CWE-297",
        "None of the certificate's names (subjectAltName, or the common name when there is "
        "none) covers the name the service is reached by, so clients that verify reject it "
        "and clients that do not cannot detect impersonation. Issue a certificate that "
        "names this host.",
    ),
    NAMES_SEEN: RuleText(
        "Names seen in the TLS certificate", Severity.INFO, "",
        "The DNS names this endpoint's certificate was issued for. Names that no inventory "
        "source knows are candidates for discovery.",
    ),
}  # fmt: skip


class TlsParseError(ValueError):
    """sslyze output that is not a readable sslyze JSON report; the message says why."""


class TlsIncompleteScan(TlsParseError):
    """A readable report in which some target was not scanned to the end.

    ``unscanned`` lists each such target with the reason; ``observations`` holds what was found
    on the others, for a caller that records partial results without closing anything.
    """

    def __init__(self, unscanned: list[str], observations: list[Observation]) -> None:
        super().__init__("sslyze did not scan every target: " + "; ".join(unscanned))
        self.unscanned = unscanned
        self.observations = observations


def parse_sslyze_json(
    raw: bytes,
    asset_by_host: Mapping[str, str],
    engine_name: str = "tls",
    *,
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS,
    require_complete: bool = False,
) -> list[Observation]:
    """Observations for every scanned endpoint whose host belongs to an asset.

    ``asset_by_host`` maps a hostname or IP address to an asset id; an endpoint matches by the
    name sslyze was given, then by the address it connected to. Endpoints that match no asset
    are skipped.
    """
    if isinstance(expiry_warning_days, bool) or not isinstance(expiry_warning_days, int):
        raise TypeError(f"expiry_warning_days must be an int, got {expiry_warning_days!r}")
    report = _load(raw)
    scanned_at = _scan_time(report)
    index = {canonical_host(str(k)): v for k, v in asset_by_host.items()}
    unscanned: list[str] = []
    for invalid in _list(report.get("invalid_server_strings"), "invalid_server_strings"):
        invalid = invalid if isinstance(invalid, Mapping) else {}
        unscanned.append(
            f"{invalid.get('server_string', '?')}: {invalid.get('error_message') or 'invalid'}"
        )
    found: dict[tuple[str, str, Location], Observation] = {}
    servers = _list(report.get("server_scan_results"), "server_scan_results")
    for position, server in enumerate(servers):
        if not isinstance(server, Mapping):
            raise TlsParseError(f"server_scan_results[{position}] is not an object")
        endpoint = _Endpoint.of(server, position)
        unreachable = _unreachable(server)
        if unreachable:
            unscanned.append(f"{endpoint.label}: {unreachable}")
            continue
        unscanned.extend(
            f"{endpoint.label}: {p}" for p in _failed_commands(server, require_complete)
        )
        asset_id = index.get(endpoint.hostname) or index.get(endpoint.ip_address or "")
        if asset_id is None:
            continue
        for observation in _endpoint_observations(
            asset_id, endpoint, server, scanned_at, expiry_warning_days, engine_name
        ):
            found.setdefault(
                (observation.asset_id, observation.rule_id, observation.location), observation
            )
    observations = list(found.values())
    if require_complete and unscanned:
        raise TlsIncompleteScan(unscanned, observations)
    return observations


def parse_sslyze_version(output: str) -> str:
    """The version from ``python -m sslyze --help`` (``SSLyze version 6.3.1``)."""
    match = _VERSION_LINE.search(output or "")
    if match is None:
        raise TlsParseError(f"no 'SSLyze version' line in sslyze output {output[:120]!r}")
    return match.group(1)


def names_in(raw: bytes) -> dict[str, list[str]]:
    """Certificate names per scanned endpoint (``host:port``), whether or not it is inventoried.

    For discovery: a name in a certificate that no asset carries is a blind-spot candidate.
    """
    report = _load(raw)
    names: dict[str, list[str]] = {}
    for position, server in enumerate(
        _list(report.get("server_scan_results"), "server_scan_results")
    ):
        if not isinstance(server, Mapping) or _unreachable(server):
            continue
        endpoint = _Endpoint.of(server, position)
        certificate = _command_result(server, CERTIFICATE_COMMAND)
        if certificate is not None:
            names[endpoint.label] = _names_seen(_leaves(certificate))
    return names


# ------------------------------------------------------------------------------------ reading


def _load(raw: bytes) -> Mapping[str, Any]:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"sslyze output must be bytes, not {type(raw).__name__}")
    text = bytes(raw).decode("utf-8-sig", errors="replace").strip()
    if not text:
        raise TlsParseError("empty sslyze output: expected a JSON report (--json_out=-)")
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TlsParseError(
            f"malformed sslyze JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(report, dict) or "server_scan_results" not in report:
        kind = type(report).__name__
        raise TlsParseError(
            f"not an sslyze JSON report: expected an object with 'server_scan_results', "
            f"got {kind}" + (f" with keys {sorted(report)[:8]}" if isinstance(report, dict) else "")
        )
    return report


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TlsParseError(f"sslyze report field {name!r} is {type(value).__name__}, not a list")
    return value


def _scan_time(report: Mapping[str, Any]) -> datetime:
    for key in ("date_scans_completed", "date_scans_started"):
        value = report.get(key)
        if isinstance(value, str) and value:
            return _timestamp(value, key)
    raise TlsParseError(
        "sslyze report has no date_scans_completed or date_scans_started: "
        "certificate expiry cannot be judged without the scan time"
    )


def _timestamp(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TlsParseError(f"{what} is not an ISO 8601 timestamp: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Endpoint:
    hostname: str
    port: int
    ip_address: str | None

    @classmethod
    def of(cls, server: Mapping[str, Any], position: int) -> _Endpoint:
        location = server.get("server_location")
        if not isinstance(location, Mapping):
            raise TlsParseError(f"server_scan_results[{position}] has no server_location")
        hostname = location.get("hostname")
        port = location.get("port")
        if not isinstance(hostname, str) or not hostname:
            raise TlsParseError(f"server_scan_results[{position}] has no hostname")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise TlsParseError(f"server_scan_results[{position}] has a bad port: {port!r}")
        address = location.get("ip_address")
        return cls(
            canonical_host(hostname),
            port,
            canonical_host(address) if isinstance(address, str) and address else None,
        )

    @property
    def label(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


def _unreachable(server: Mapping[str, Any]) -> str | None:
    """Why sslyze has no results for this server at all, or None."""
    if server.get("connectivity_status") != "COMPLETED":
        return f"not reachable over TLS ({_last_line(server.get('connectivity_error_trace'))})"
    if server.get("scan_status") != "COMPLETED":
        return f"scan status {server.get('scan_status')!r}"
    if not isinstance(server.get("scan_result"), Mapping):
        return "no scan_result"
    return None


def _failed_commands(server: Mapping[str, Any], require_complete: bool) -> list[str]:
    """Scan commands that failed (or, when ``require_complete``, were not run at all)."""
    results = server["scan_result"]
    problems = []
    for name, attempt in results.items():
        if isinstance(attempt, Mapping) and attempt.get("status") == "ERROR":
            reason = attempt.get("error_reason") or _last_line(attempt.get("error_trace"))
            problems.append(f"{name} failed ({reason})")
    if require_complete:
        for name in REQUIRED_COMMANDS:
            attempt = results.get(name)
            if not isinstance(attempt, Mapping) or attempt.get("status") not in (
                "COMPLETED",
                "ERROR",
            ):
                problems.append(f"{name} was not run")
    return problems


def _last_line(trace: Any) -> str:
    """The exception line at the end of a Python traceback (sslyze's error traces)."""
    if not isinstance(trace, str) or not trace.strip():
        return "no reason given"
    return trace.strip().splitlines()[-1].strip()[:300]


def _command_result(server: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    attempt = (server.get("scan_result") or {}).get(name)
    if not isinstance(attempt, Mapping) or attempt.get("status") != "COMPLETED":
        return None
    result = attempt.get("result")
    return result if isinstance(result, Mapping) else None


# ------------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class _Emitter:
    """Builds the observations of one endpoint, each with the endpoint's shared evidence."""

    asset_id: str
    engine_name: str
    endpoint: _Endpoint
    common: Mapping[str, Any]

    def __call__(self, rule_id: str, title: str | None = None, **evidence: Any) -> Observation:
        text = RULE_TEXT[rule_id]
        return Observation(
            asset_id=self.asset_id,
            engine=self.engine_name,
            rule_id=rule_id,
            title=f"{title or text.title} on {self.endpoint.label}",
            severity=text.severity,
            location=Location(host=self.endpoint.hostname, port=self.endpoint.port, protocol="tcp"),
            description=text.description.format(protocol=text.title.removesuffix(" enabled")),
            cwe=text.cwe or None,
            evidence={**self.common, **evidence},
        )


def _endpoint_observations(
    asset_id: str,
    endpoint: _Endpoint,
    server: Mapping[str, Any],
    scanned_at: datetime,
    warning_days: int,
    engine_name: str,
) -> list[Observation]:
    accepted = _accepted_suites(server)
    certificate = _command_result(server, CERTIFICATE_COMMAND)
    leaves = _leaves(certificate) if certificate is not None else []
    supported = [
        label
        for command, (label, _) in PROTOCOL_COMMANDS.items()
        if accepted.get(label) or _version_supported(server, command)
    ]
    emit = _Emitter(
        asset_id,
        engine_name,
        endpoint,
        {
            "hostname": endpoint.hostname,
            "port": endpoint.port,
            "ip_address": endpoint.ip_address,
            "supported_protocols": supported,
            NAMES_SEEN_KEY: _names_seen(leaves),
        },
    )
    found: list[Observation] = []
    for label, rule_id in PROTOCOL_COMMANDS.values():
        if rule_id and label in supported:
            suites = [suite.name for suite in accepted.get(label, ())]
            found.append(emit(rule_id, accepted_cipher_suites=suites))
    for rule_id, suites in _weak_suites(accepted).items():
        found.append(emit(rule_id, cipher_suites=suites))
    if leaves:
        sni = certificate.get("hostname_used_for_server_name_indication") if certificate else None
        found.extend(_certificate_observations(emit, leaves, sni, scanned_at, warning_days))
        found.append(emit(NAMES_SEEN, certificates=[_summary(leaf) for leaf in leaves]))
    return found


@dataclass(frozen=True)
class _Suite:
    name: str
    anonymous: bool


def _accepted_suites(server: Mapping[str, Any]) -> dict[str, list[_Suite]]:
    """Protocol label -> the cipher suites the server accepted with it, as sslyze lists them."""
    accepted: dict[str, list[_Suite]] = {}
    for command, (label, _) in PROTOCOL_COMMANDS.items():
        result = _command_result(server, command)
        if result is None:
            continue
        suites = []
        for entry in _list(result.get("accepted_cipher_suites"), f"{command}.accepted"):
            suite = entry.get("cipher_suite") if isinstance(entry, Mapping) else None
            if isinstance(suite, Mapping) and isinstance(suite.get("name"), str):
                suites.append(_Suite(suite["name"], bool(suite.get("is_anonymous"))))
        accepted[label] = suites
    return accepted


def _version_supported(server: Mapping[str, Any], command: str) -> bool:
    result = _command_result(server, command)
    return bool(result and result.get("is_tls_version_supported"))


def classify_cipher_suite(name: str, protocol: str, anonymous: bool = False) -> list[str]:
    """The weak-cipher rules a suite (IANA or SSL 2.0 name, as sslyze reports it) falls under."""
    rules = [rule for rule, pattern in _CIPHER_CLASSES if pattern.search(name)]
    if anonymous and WEAK_ANONYMOUS not in rules:
        rules.append(WEAK_ANONYMOUS)
    if protocol == "TLS 1.0" and "_CBC_" in name:
        rules.append(WEAK_CBC_TLS_1_0)
    return [rule for rule in CIPHER_RULES if rule in rules]


def _weak_suites(accepted: Mapping[str, Sequence[_Suite]]) -> dict[str, list[str]]:
    """Weak-cipher rule -> ``"<protocol> <suite>"`` entries, in the order sslyze listed them."""
    weak: dict[str, list[str]] = {}
    for protocol, suites in accepted.items():
        for suite in suites:
            for rule_id in classify_cipher_suite(suite.name, protocol, suite.anonymous):
                weak.setdefault(rule_id, []).append(f"{protocol} {suite.name}")
    return {rule: weak[rule] for rule in CIPHER_RULES if rule in weak}


# ------------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class _Leaf:
    """The leaf certificate of one deployment, with the facts the rules need."""

    subject: str
    issuer: str
    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None
    fingerprint_sha256: str | None
    chain_length: int
    trusted: bool
    validation_error: str | None

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def _leaves(certificate: Mapping[str, Any]) -> list[_Leaf]:
    leaves = []
    deployments = _list(certificate.get("certificate_deployments"), "certificate_deployments")
    for deployment in deployments:
        if not isinstance(deployment, Mapping):
            continue
        chain = _list(deployment.get("received_certificate_chain"), "received_certificate_chain")
        if not chain or not isinstance(chain[0], Mapping):
            continue
        leaf = chain[0]
        san = leaf.get("subject_alternative_name") or {}
        trusted, error = _trust(deployment)
        leaves.append(
            _Leaf(
                subject=_rfc4514(leaf.get("subject")),
                issuer=_rfc4514(leaf.get("issuer")),
                common_names=tuple(_common_names(leaf.get("subject"))),
                dns_names=tuple(str(n) for n in san.get("dns_names") or ()),
                ip_addresses=tuple(str(a) for a in san.get("ip_addresses") or ()),
                not_before=_optional_time(leaf.get("not_valid_before"), "not_valid_before"),
                not_after=_optional_time(leaf.get("not_valid_after"), "not_valid_after"),
                fingerprint_sha256=leaf.get("fingerprint_sha256"),
                chain_length=len(chain),
                trusted=trusted,
                validation_error=error,
            )
        )
    return leaves


def _rfc4514(name: Any) -> str:
    return str(name.get("rfc4514_string") or "") if isinstance(name, Mapping) else ""


def _common_names(name: Any) -> list[str]:
    if not isinstance(name, Mapping):
        return []
    names = []
    for attribute in name.get("attributes") or ():
        oid = attribute.get("oid") if isinstance(attribute, Mapping) else None
        if isinstance(oid, Mapping) and (
            oid.get("name") == "commonName" or oid.get("dotted_string") == "2.5.4.3"
        ):
            names.append(str(attribute.get("value") or ""))
    return [n for n in names if n]


def _optional_time(value: Any, what: str) -> datetime | None:
    return _timestamp(value, what) if isinstance(value, str) and value else None


def _trust(deployment: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(trusted, the reference store's validation error) from sslyze's path validation."""
    results = [
        r
        for r in _list(deployment.get("path_validation_results"), "path_validation_results")
        if isinstance(r, Mapping)
    ]
    reference = [
        r for r in results if (r.get("trust_store") or {}).get("name") == REFERENCE_TRUST_STORE
    ]
    judged = reference or results
    if not judged:
        return False, "no trust store validated the chain"
    trusted = any(r.get("was_validation_successful") for r in judged)
    errors = [str(r.get("validation_error")) for r in judged if r.get("validation_error")]
    return trusted, None if trusted else (errors[0] if errors else "validation failed")


def _names_seen(leaves: Iterable[_Leaf]) -> list[str]:
    names: set[str] = set()
    for leaf in leaves:
        for name in (*leaf.dns_names, *leaf.common_names):
            text = name.strip().rstrip(".").lower()
            if _looks_like_dns_name(text):
                names.add(text)
    return sorted(names)


_DNS_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9-]{1,63}$")


def _looks_like_dns_name(text: str) -> bool:
    if not text or len(text) > 253 or not _DNS_NAME.match(text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return True
    return False  # an address in a CN is not a name to discover


def hostname_matches(
    hostname: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    common_names: Sequence[str] = (),
) -> bool:
    """RFC 6125 matching: IP SANs for an address, DNS SANs (else the CN) for a name.

    A wildcard covers exactly one leftmost label (``*.example.com`` covers ``a.example.com``,
    not ``example.com`` or ``a.b.example.com``) and never a public suffix alone (``*.com``).
    """
    host = canonical_host(hostname)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        for candidate in ip_addresses:
            try:
                if ipaddress.ip_address(candidate.strip()) == address:
                    return True
            except ValueError:
                continue
        return False
    patterns = list(dns_names) if dns_names else list(common_names)
    return any(_dns_name_matches(host, pattern) for pattern in patterns)


def _dns_name_matches(host: str, pattern: str) -> bool:
    pattern = pattern.strip().rstrip(".").lower()
    if not pattern.startswith("*."):
        return host == pattern
    suffix = pattern[1:]  # ".example.com"
    if suffix.count(".") < 2 or "*" in suffix:
        return False
    label, dot, rest = host.partition(".")
    return bool(label and dot) and f".{rest}" == suffix


def _summary(leaf: _Leaf) -> dict[str, Any]:
    return {
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "dns_names": list(leaf.dns_names),
        "ip_addresses": list(leaf.ip_addresses),
        "not_valid_before": leaf.not_before.isoformat() if leaf.not_before else None,
        "not_valid_after": leaf.not_after.isoformat() if leaf.not_after else None,
        "fingerprint_sha256": leaf.fingerprint_sha256,
        "chain_length": leaf.chain_length,
        "trusted": leaf.trusted,
    }


def _certificate_observations(
    emit: _Emitter,
    leaves: Sequence[_Leaf],
    sni: str | None,
    scanned_at: datetime,
    warning_days: int,
) -> list[Observation]:
    """Expiry, trust and name problems; each rule once per endpoint, over all deployments."""
    found: list[Observation] = []
    expired = [leaf for leaf in leaves if leaf.not_after and leaf.not_after <= scanned_at]
    soon = scanned_at + timedelta(days=warning_days)
    expiring = [
        leaf
        for leaf in leaves
        if leaf.not_after and scanned_at < leaf.not_after <= soon and leaf not in expired
    ]
    if expired:
        found.append(
            emit(
                CERT_EXPIRED,
                f"Certificate expired on {_day(expired[0].not_after)}",
                certificates=[_summary(x) for x in expired],
                scanned_at=scanned_at.isoformat(),
            )
        )
    elif expiring:
        found.append(
            emit(
                CERT_EXPIRING,
                f"Certificate expires on {_day(expiring[0].not_after)}",
                certificates=[_summary(x) for x in expiring],
                scanned_at=scanned_at.isoformat(),
                warning_days=warning_days,
            )
        )
    # sslyze validates the chain for the hostname at the scan time: a chain that fails only
    # because the leaf expired or names another host is reported as that, not also as untrusted.
    self_signed = [leaf for leaf in leaves if not leaf.trusted and leaf.self_signed]
    untrusted = [
        leaf
        for leaf in leaves
        if not leaf.trusted
        and not leaf.self_signed
        and not _is_expiry_or_name_error(leaf.validation_error)
    ]
    if self_signed:
        found.append(
            emit(
                CERT_SELF_SIGNED,
                certificates=[_summary(x) for x in self_signed],
                validation_error=self_signed[0].validation_error,
            )
        )
    elif untrusted:
        found.append(
            emit(
                CERT_UNTRUSTED,
                certificates=[_summary(x) for x in untrusted],
                validation_error=untrusted[0].validation_error,
            )
        )
    checked = emit.endpoint.hostname
    mismatched = [
        leaf
        for leaf in leaves
        if not hostname_matches(checked, leaf.dns_names, leaf.ip_addresses, leaf.common_names)
    ]
    if mismatched:
        found.append(
            emit(
                CERT_HOSTNAME_MISMATCH,
                f"Certificate does not match {checked}",
                checked_name=checked,
                server_name_indication=sni,
                certificates=[_summary(x) for x in mismatched],
            )
        )
    return found


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else "an unknown date"


_EXPIRY_OR_NAME_ERROR = re.compile(
    r"expired|not valid at validation time|no matching subjectaltname|hostname|name mismatch",
    re.IGNORECASE,
)


def _is_expiry_or_name_error(error: str | None) -> bool:
    return bool(error and _EXPIRY_OR_NAME_ERROR.search(error))

"""The tls engine with the real sslyze, through the runner, against TLS servers on loopback.

Certificates are made at test time with ``cryptography``: self-signed and valid, expired,
expiring within the warning window, issued for other names, and signed by a private CA. One
server also allows TLS 1.0/1.1 with NULL and anonymous suites, where this machine's OpenSSL
still permits it at security level 0 (OpenSSL 3.0 here does; RC4, 3DES, EXPORT, SSL 2.0/3.0
are gone from it, so those rules are tested on a recorded report in the unit tests).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import (
    Asset,
    AssetKind,
    Criticality,
    Environment,
    Location,
    Observation,
)
from autosec.domain.targets import validate_target
from autosec.engines.base import ScanScope
from autosec.engines.runner import Runner, RunResult
from autosec.engines.tls import parser
from autosec.engines.tls.engine import TlsEngine
from autosec.engines.tls.parser import TlsIncompleteScan
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.scan import Batch, run_batch
from autosec.store import scans
from autosec.triage.history import OpenFinding, findings_to_close
from support.store import sync_inventory
from support.tls_servers import (
    TlsServer,
    closed_port,
    issue,
    legacy_tls_available,
    server_context,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("sslyze") is None, reason="sslyze is missing"),
]

ENGINE = TlsEngine()
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
HOSTS = {"127.0.0.1": "host:127.0.0.1"}
LEGACY_RULES = {
    parser.TLS_1_0, parser.TLS_1_1, parser.WEAK_NULL, parser.WEAK_ANONYMOUS,
    parser.WEAK_CBC_TLS_1_0,
}  # fmt: skip
NO_LEGACY_TLS = (
    "this machine's OpenSSL does not let a server offer TLS 1.0 even at SECLEVEL 0; the "
    "protocol and cipher rules are covered by the recorded sslyze_legacy.json report"
)


@dataclass
class Scanned:
    servers: dict[str, TlsServer]
    result: RunResult
    observations: list[Observation]
    scope: ScanScope

    def rules_at(self, name: str) -> dict[str, Observation]:
        port = self.servers[name].port
        found = [o for o in self.observations if o.location.port == port]
        assert len({o.rule_id for o in found}) == len(found), "a rule reported twice"
        return {o.rule_id: o for o in found}


def scan(*urls: str) -> RunResult:
    """One engine run through the real runner (argv only, timeout, clean environment)."""
    return Runner()(ENGINE.command([validate_target(url) for url in urls], {}), timeout=300)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls-certificates")
    now = datetime.now(UTC)
    ca = issue("autosec test root", is_ca=True)
    made = {
        "valid": issue("localhost", dns_names=["localhost", "www.example.test"],
                       ip_addresses=["127.0.0.1"]),
        "expired": issue("127.0.0.1", ip_addresses=["127.0.0.1"],
                         not_before=now - timedelta(days=400), not_after=now - timedelta(days=3)),
        "expiring": issue("soon.example.test", dns_names=["soon.example.test"],
                          ip_addresses=["127.0.0.1"], not_after=now + timedelta(days=10)),
        "mismatch": issue("other.example.test", dns_names=["other.example.test"]),
        "private_ca": issue("api.example.test", dns_names=["api.example.test"],
                            ip_addresses=["127.0.0.1"], issuer=ca),
    }  # fmt: skip
    chains = {name: cert.write_chain(folder, name) for name, cert in made.items()}
    chains["private_ca"] = made["private_ca"].write_chain(folder, "private_ca_chain", ca)
    return chains


@pytest.fixture(scope="module")
def scanned(certificates: dict[str, Path]) -> Iterator[Scanned]:
    """One sslyze run over every server, as a scan batch would run it."""
    contexts = {
        "self_signed": server_context(certificates["valid"]),
        "expired": server_context(certificates["expired"]),
        "expiring": server_context(certificates["expiring"]),
        "mismatch": server_context(certificates["mismatch"]),
        "untrusted": server_context(certificates["private_ca"]),
    }
    if legacy_tls_available():
        contexts["legacy"] = server_context(certificates["valid"], legacy=True)
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(TlsServer(c)) for name, c in contexts.items()}
        result = scan(*(s.url for s in servers.values()))
        assert result.ok, result.stderr.decode(errors="replace")[-2000:]
        targets = [validate_target(s.url) for s in servers.values()]
        yield Scanned(
            servers, result, ENGINE.parse(result.stdout, HOSTS), ENGINE.scope(targets, {})
        )


def test_one_run_scans_every_endpoint_named_in_its_argv(scanned: Scanned) -> None:
    argv = scanned.result.argv
    assert argv[0] == sys.executable or Path(argv[0]).resolve() == Path(sys.executable).resolve()
    assert argv[argv.index("--") + 1 :] == tuple(
        f"127.0.0.1:{s.port}" for s in scanned.servers.values()
    )
    assert {o.location.port for o in scanned.observations} == {
        s.port for s in scanned.servers.values()
    }
    assert {o.engine for o in scanned.observations} == {"tls"}
    assert {o.asset_id for o in scanned.observations} == {"host:127.0.0.1"}


def test_a_modern_self_signed_server(scanned: Scanned) -> None:
    found = scanned.rules_at("self_signed")
    assert set(found) == {parser.CERT_SELF_SIGNED, parser.NAMES_SEEN}
    assert found[parser.NAMES_SEEN].evidence["names_seen"] == ["localhost", "www.example.test"]
    assert set(found[parser.CERT_SELF_SIGNED].evidence["supported_protocols"]) <= {
        "TLS 1.2", "TLS 1.3"
    }  # fmt: skip


def test_an_expired_certificate(scanned: Scanned) -> None:
    found = scanned.rules_at("expired")
    assert set(found) == {parser.CERT_EXPIRED, parser.CERT_SELF_SIGNED, parser.NAMES_SEEN}
    assert found[parser.CERT_EXPIRED].severity.value == "high"


def test_a_certificate_expiring_within_the_window(scanned: Scanned) -> None:
    found = scanned.rules_at("expiring")
    assert set(found) == {parser.CERT_EXPIRING, parser.CERT_SELF_SIGNED, parser.NAMES_SEEN}
    assert found[parser.CERT_EXPIRING].evidence["warning_days"] == 30


def test_a_certificate_for_another_name(scanned: Scanned) -> None:
    found = scanned.rules_at("mismatch")
    assert set(found) == {
        parser.CERT_HOSTNAME_MISMATCH, parser.CERT_SELF_SIGNED, parser.NAMES_SEEN
    }  # fmt: skip
    mismatch = found[parser.CERT_HOSTNAME_MISMATCH]
    assert mismatch.evidence["checked_name"] == "127.0.0.1"
    assert mismatch.evidence["names_seen"] == ["other.example.test"]


def test_a_chain_from_a_private_ca(scanned: Scanned) -> None:
    found = scanned.rules_at("untrusted")
    assert set(found) == {parser.CERT_UNTRUSTED, parser.NAMES_SEEN}
    assert found[parser.CERT_UNTRUSTED].evidence["certificates"][0]["chain_length"] == 2


def test_tls_1_0_and_weak_suites(scanned: Scanned) -> None:
    if "legacy" not in scanned.servers:
        pytest.skip(NO_LEGACY_TLS)
    found = scanned.rules_at("legacy")
    assert set(found) == LEGACY_RULES | {parser.CERT_SELF_SIGNED, parser.NAMES_SEEN}
    assert "TLS 1.0" in found[parser.TLS_1_0].evidence["supported_protocols"]
    assert found[parser.TLS_1_0].evidence["accepted_cipher_suites"]


def test_the_run_covers_each_scanned_endpoint_and_nothing_else(scanned: Scanned) -> None:
    for observation in scanned.observations:
        assert ENGINE.covers(observation.rule_id, observation.location, scanned.scope)
    elsewhere = Location("127.0.0.1", 1, "tcp")
    assert not ENGINE.covers(parser.CERT_EXPIRED, elsewhere, scanned.scope)


def test_an_unreachable_target_fails_the_run_without_inventing_findings(
    certificates: dict[str, Path],
) -> None:
    with TlsServer(server_context(certificates["valid"])) as alive, closed_port() as port:
        result = scan(f"https://127.0.0.1:{port}/", alive.url)
    assert result.ok  # sslyze itself exits 0: the report says what failed
    with pytest.raises(TlsIncompleteScan) as caught:
        ENGINE.parse(result.stdout, HOSTS)
    assert caught.value.unscanned == [
        f"127.0.0.1:{port}: not reachable over TLS (sslyze.errors.ServerRejectedConnection: "
        f'127.0.0.1:{port} -> "Server rejected the connection".)'
    ]
    assert {o.location.port for o in caught.value.observations} == {alive.port}


def _key(observation: Observation) -> str:
    location = observation.location
    return f"{observation.rule_id}|{location.host}|{location.port}"


def test_a_rescan_of_a_fixed_server_closes_only_what_it_looked_at(
    certificates: dict[str, Path],
) -> None:
    """The legacy server is reconfigured (TLS 1.2+ only): a rescan closes the protocol and
    cipher findings, keeps the certificate findings it sees again, and leaves a finding on an
    endpoint it did not scan alone."""
    if not legacy_tls_available():
        pytest.skip(NO_LEGACY_TLS)
    with TlsServer(server_context(certificates["valid"], legacy=True)) as server:
        before = scan(server.url)
        first = ENGINE.parse(before.stdout, HOSTS)
        server.context = server_context(certificates["valid"])
        after = scan(server.url)
        second = ENGINE.parse(after.stdout, HOSTS)
    assert {o.rule_id for o in first} == LEGACY_RULES | {
        parser.CERT_SELF_SIGNED, parser.NAMES_SEEN
    }  # fmt: skip
    unscanned = Observation(
        "host:127.0.0.1", "tls", parser.TLS_1_0, "TLS 1.0 enabled", first[0].severity,
        Location("127.0.0.1", 8443, "tcp"),
    )  # fmt: skip
    open_findings = [
        OpenFinding(i, _key(o), o.asset_id, o.rule_id, o.location)
        for i, o in enumerate([*first, unscanned])
    ]
    scope = ENGINE.scope([validate_target(server.url)], {})
    closed = findings_to_close(
        open_findings,
        {_key(o) for o in second},
        ENGINE,
        ScanScope.from_dict(scope.as_dict()),
        run_succeeded=True,
        scanned_asset_ids={"host:127.0.0.1"},
    )
    assert {f.rule_id for f in closed} == LEGACY_RULES
    assert all(f.location.port == server.port for f in closed)


def test_the_version_comes_from_the_same_interpreter() -> None:
    result = Runner()(ENGINE.version_command(), timeout=60)
    assert result.ok
    version = ENGINE.parse_version(result.stdout.decode())
    assert version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 6


def test_the_scan_stage_scans_the_https_urls_of_an_asset(
    conn, tmp_path: Path, certificates: dict[str, Path]
) -> None:
    """Through the scan stage and the store: an asset's https URL is scanned even when its
    http URL on the same host comes first; the bare host name is left out."""
    host = "127.0.0.62"
    with TlsServer(server_context(certificates["expired"]), host=host) as server:
        api = Asset(
            "api", "api", AssetKind.WEB_APP, "cmdb", "team-api", Environment.PRODUCTION,
            Criticality.HIGH, (f"http://{host}:8080/", server.url, "api.internal"),
        )  # fmt: skip
        sync_inventory(conn, [api], T0)
        outcome = run_batch(
            conn,
            Batch("tls", ("api",)),
            ScanConfig(engines=["tls"], ports=[443], timeout_seconds=300),
            LocalBlobStore(tmp_path),
            Runner(),
            lambda: T0,
        )
    assert outcome.status == "succeeded", outcome.error
    [(argv, scope)] = conn.execute(
        "SELECT argv, scope FROM scan_runs WHERE id = %s", (outcome.scan_run_id,)
    )
    assert argv[argv.index("--") + 1 :] == [f"{host}:{server.port}"]
    assert scope["targets"] == [server.url]
    observations = scans.load_observations(conn, outcome.scan_run_id)
    assert {o.asset_id for o in observations} == {"api"}
    assert {o.rule_id for o in observations} == {
        parser.CERT_EXPIRED, parser.CERT_SELF_SIGNED, parser.CERT_HOSTNAME_MISMATCH,
        parser.NAMES_SEEN,
    }  # fmt: skip

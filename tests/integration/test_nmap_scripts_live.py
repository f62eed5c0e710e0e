"""The nmap engine's NSE scripts, for real, against services started on loopback.

Four services on ephemeral ports of 127.0.0.1: an HTTP server that sends no security headers,
one that sends them all, an HTTPS server that still offers TLS 1.0 and anonymous key exchange
(this OpenSSL build has no 3DES left to offer), and an SSH
stand-in that sends OpenSSH's greeting and a key-exchange offer with legacy algorithms (all
``ssh2-enum-algos`` reads; no sshd is installed here). The engine's argv runs through the real
runner; the parser must turn the script output into the script findings, and a run without
scripts must neither report nor close them.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.domain.targets import validate_target
from autosec.engines.nmap import parser
from autosec.engines.nmap.engine import NmapEngine
from autosec.engines.runner import Runner
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.scan import Batch, run_batch
from autosec.store import inventory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/usr/bin/nmap").exists(), reason="/usr/bin/nmap is missing"),
]

HOST = "127.0.0.1"
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
SCRIPTS = ["ssl-enum-ciphers", "http-headers", "http-title", "ssh2-enum-algos"]
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
WEAK_SSH_OFFER = {
    "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "curve25519-sha256"],
    "hostkey": ["ssh-dss", "ssh-rsa", "ssh-ed25519"],
    "cipher": ["aes128-cbc", "3des-cbc", "arcfour", "aes128-ctr", "chacha20-poly1305@openssh.com"],
    "mac": ["hmac-md5", "hmac-sha1-96", "hmac-sha2-256"],
}


class WebPage(BaseHTTPRequestHandler):
    """A page titled "Orders"; ``extra_headers`` decides which security headers it sends."""

    protocol_version = "HTTP/1.1"
    timeout = 15
    extra_headers: ClassVar[dict[str, str]] = {}

    def version_string(self) -> str:
        return "nginx"

    def _answer(self, with_body: bool) -> None:
        body = b"<html><head><title>Orders</title></head><body>orders</body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HardenedPage(WebPage):
    extra_headers: ClassVar[dict[str, str]] = SECURITY_HEADERS


class _Quiet:
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # scanners hang up mid-handshake: that is the point, not an error


class QuietHTTPServer(_Quiet, ThreadingHTTPServer):
    pass


class LegacyTLSServer(QuietHTTPServer):
    """HTTPS that still offers TLS 1.0/1.1 and every cipher OpenSSL has (anonymous ECDH too)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__((HOST, 0), WebPage)
        self.context = context

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        sock.settimeout(15)
        return self.context.wrap_socket(sock, server_side=True), address


def legacy_tls_context(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orders.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(cert_file, key_file)
    return context


def _name_list(names: list[str]) -> bytes:
    text = ",".join(names).encode()
    return struct.pack(">I", len(text)) + text


def ssh_kexinit(offer: dict[str, list[str]]) -> bytes:
    """An SSH binary packet holding SSH_MSG_KEXINIT (RFC 4253, 7.1) with ``offer``."""
    payload = b"".join(
        [
            b"\x14",  # SSH_MSG_KEXINIT
            os.urandom(16),
            _name_list(offer["kex"]),
            _name_list(offer["hostkey"]),
            _name_list(offer["cipher"]),
            _name_list(offer["cipher"]),
            _name_list(offer["mac"]),
            _name_list(offer["mac"]),
            _name_list(["none"]),
            _name_list(["none"]),
            _name_list([]),
            _name_list([]),
            b"\x00",
            b"\x00\x00\x00\x00",
        ]
    )
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\x00" * padding


class SSHGreeting(socketserver.BaseRequestHandler):
    """What an OpenSSH 7.4 server sends first: its version line, then its KEXINIT."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.sendall(b"SSH-2.0-OpenSSH_7.4\r\n")
            sock.settimeout(5)
            sock.recv(256)  # the client's version line
            sock.sendall(ssh_kexinit(WEAK_SSH_OFFER))
            while sock.recv(4096):
                pass
        except OSError:
            pass


class QuietTCPServer(_Quiet, socketserver.ThreadingTCPServer):
    pass


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    servers = {
        "plain_http": QuietHTTPServer((HOST, 0), WebPage),
        "hardened_http": QuietHTTPServer((HOST, 0), HardenedPage),
        "legacy_tls": LegacyTLSServer(legacy_tls_context(tmp_path_factory.mktemp("tls"))),
        "ssh": QuietTCPServer((HOST, 0), SSHGreeting),
    }
    for server in servers.values():
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
    try:
        yield {name: server.server_address[1] for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


def _scan(engine: NmapEngine, ports: list[int], scripts: list[str]) -> tuple[bytes, float]:
    options = {"ports": ports, "host_timeout_seconds": 120, "scripts": scripts}
    argv = engine.command([validate_target(HOST)], options)
    started = time.monotonic()
    result = Runner()(argv, timeout=180)
    elapsed = time.monotonic() - started
    assert result.ok, result.stderr.decode(errors="replace")
    return result.stdout, elapsed


def test_scripts_find_weak_tls_missing_headers_and_weak_ssh(services: dict[str, int]) -> None:
    engine = NmapEngine()
    ports = sorted(services.values())
    raw, elapsed = _scan(engine, ports, SCRIPTS)
    assert elapsed < 120, f"the scan with scripts took {elapsed:.1f}s"
    observations = engine.parse(raw, {HOST: "asset-1"})
    found = {(o.rule_id, o.location.port): o for o in observations}

    plain, hardened, tls, ssh = (
        services[k] for k in ("plain_http", "hardened_http", "legacy_tls", "ssh")
    )
    # the plain HTTP page misses every header that matters over HTTP; HSTS only counts on TLS
    for rule in (
        parser.HTTP_NO_CSP,
        parser.HTTP_NO_FRAME_OPTIONS,
        parser.HTTP_NO_CONTENT_TYPE_OPTIONS,
    ):
        assert (rule, plain) in found and (rule, tls) in found
        assert (rule, hardened) not in found
    assert (parser.HTTP_NO_HSTS, tls) in found
    assert (parser.HTTP_NO_HSTS, plain) not in found
    assert found[(parser.OPEN_PORT, plain)].evidence["http_title"] == "Orders"

    protocols = found[(parser.TLS_WEAK_PROTOCOL, tls)]
    assert {"TLSv1.0", "TLSv1.1"} <= set(protocols.evidence["weak_protocols"])
    weak_cipher = found[(parser.TLS_WEAK_CIPHER, tls)]
    assert weak_cipher.evidence["least_strength"] == "F" and weak_cipher.severity == "high"
    assert any("_anon_" in c for c in weak_cipher.evidence["weak_ciphers"])
    assert all((parser.TLS_WEAK_PROTOCOL, p) not in found for p in (plain, hardened, ssh))

    assert found[(parser.SSH_WEAK_KEX, ssh)].evidence["weak"] == ["diffie-hellman-group1-sha1"]
    assert found[(parser.SSH_WEAK_HOSTKEY, ssh)].evidence["weak"] == ["ssh-dss"]
    assert set(found[(parser.SSH_WEAK_CIPHER, ssh)].evidence["weak"]) == {
        "aes128-cbc",
        "3des-cbc",
        "arcfour",
    }
    assert set(found[(parser.SSH_WEAK_MAC, ssh)].evidence["weak"]) == {"hmac-md5", "hmac-sha1-96"}
    assert {o.location for o in observations if o.rule_id in parser.SCRIPT_RULE_IDS} <= {
        Location(host=HOST, port=p, protocol="tcp") for p in ports
    }


def test_a_run_without_scripts_neither_reports_nor_closes_script_findings(
    services: dict[str, int],
) -> None:
    engine = NmapEngine()
    ports = sorted(services.values())
    raw, _ = _scan(engine, ports, [])
    observations = engine.parse(raw, {HOST: "asset-1"})
    assert not {o.rule_id for o in observations} & parser.SCRIPT_RULE_IDS
    scope = engine.scope([validate_target(HOST)], {"ports": ports})
    weak_tls = Location(host=HOST, port=services["legacy_tls"], protocol="tcp")
    assert not engine.covers(parser.TLS_WEAK_PROTOCOL, weak_tls, scope)
    assert engine.covers(parser.OPEN_PORT, weak_tls, scope)


def test_the_scan_stage_passes_the_configured_scripts_and_records_their_rules(
    conn, tmp_path: Path, services: dict[str, int]
) -> None:
    web = Asset(
        "web-orders",
        "web-orders",
        AssetKind.WEB_APP,
        "cmdb",
        "team-orders",
        Environment.STAGING,
        Criticality.MEDIUM,
        (HOST,),
    )
    sync = inventory.start_sync(conn, "cmdb", "file")
    inventory.apply_source_snapshot(conn, sync, "cmdb", [web], T0)
    conn.commit()
    blobs = LocalBlobStore(tmp_path)
    for scripts in (["http-headers"], []):
        config = ScanConfig(ports=[services["plain_http"]], nmap_scripts=scripts)
        outcome = run_batch(
            conn, Batch("nmap", ("web-orders",)), config, blobs, Runner(), lambda: T0
        )
        assert outcome.status == "succeeded", outcome.error

    runs = conn.execute("SELECT id, argv, scope FROM scan_runs ORDER BY id").fetchall()
    (with_id, with_argv, with_scope), (without_id, without_argv, without_scope) = runs
    assert with_argv[with_argv.index("--script") + 1] == "http-headers"
    assert "--script" not in without_argv
    assert set(parser.SCRIPT_RULES["http-headers"]) <= set(with_scope["rule_ids"])
    assert set(without_scope["rule_ids"]) == set(parser.RULE_IDS)
    rules = conn.execute(
        "SELECT scan_run_id, payload->>'rule_id' FROM observations ORDER BY 1, 2"
    ).fetchall()
    assert (with_id, parser.HTTP_NO_CSP) in rules
    assert not [r for run_id, r in rules if run_id == without_id and r in parser.SCRIPT_RULE_IDS]

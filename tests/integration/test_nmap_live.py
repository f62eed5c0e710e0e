"""The real nmap, through the runner, against real services on loopback (ephemeral ports).

An HTTP server that announces ``Apache/2.4.49 (Unix)`` and a TCP server that sends a MySQL
protocol v10 greeting for ``5.5.62-log``: the engine's argv must identify both, and the parser
must turn them into the version-disclosure and exposed-database findings.
"""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autosec.domain.targets import validate_target
from autosec.engines.nmap.engine import NmapEngine
from autosec.engines.nmap.parser import (
    DATABASE_EXPOSED,
    OPEN_PORT,
    VERSION_DISCLOSED,
    hosts_in,
)
from autosec.engines.runner import Runner

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/usr/bin/nmap").exists(), reason="/usr/bin/nmap is missing"),
]

HOST = "127.0.0.1"
MYSQL_VERSION = "5.5.62-log"


class ApacheLookalike(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15

    def version_string(self) -> str:
        return "Apache/2.4.49 (Unix)"

    def do_GET(self) -> None:
        body = b"<html><body><h1>It works!</h1></body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def mysql_greeting(version: str, connection_id: int) -> bytes:
    """A MySQL protocol v10 initial handshake packet, as mysqld sends it on connect."""
    salt = os.urandom(20).replace(b"\x00", b"\x01")
    capabilities = 0xF7FF | (0x81BF << 16)
    payload = b"".join(
        [
            b"\x0a",  # protocol version 10
            version.encode() + b"\x00",
            struct.pack("<I", connection_id),
            salt[:8] + b"\x00",
            struct.pack("<H", capabilities & 0xFFFF),
            b"\x08",  # latin1_swedish_ci
            struct.pack("<H", 0x0002),  # SERVER_STATUS_AUTOCOMMIT
            struct.pack("<H", capabilities >> 16),
            bytes([len(salt) + 1]),
            b"\x00" * 10,
            salt[8:] + b"\x00",
            b"mysql_native_password\x00",
        ]
    )
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


class MySQLGreeting(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.sendall(mysql_greeting(MYSQL_VERSION, threading.get_ident() & 0xFFFF))
            sock.settimeout(2)
            while sock.recv(4096):
                pass
        except OSError:
            pass


class _Quiet:
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # nmap probes hang up mid-request: that is the point, not an error


class QuietHTTPServer(_Quiet, ThreadingHTTPServer):
    pass


class QuietTCPServer(_Quiet, socketserver.ThreadingTCPServer):
    pass


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, int]]:
    servers = [
        QuietHTTPServer((HOST, 0), ApacheLookalike),
        QuietTCPServer((HOST, 0), MySQLGreeting),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
    with socket.socket() as probe:  # a port that was free a moment ago: expected closed
        probe.bind((HOST, 0))
        closed = probe.getsockname()[1]
    try:
        yield {
            "http": servers[0].server_address[1],
            "mysql": servers[1].server_address[1],
            "closed": closed,
        }
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_nmap_finds_the_banner_and_the_database(services: dict[str, int]) -> None:
    engine = NmapEngine()
    targets = [validate_target(HOST)]
    ports = sorted(services.values())
    argv = engine.command(targets, {"ports": ports, "host_timeout_seconds": 60})

    started = time.monotonic()
    result = Runner()(argv, timeout=120)
    elapsed = time.monotonic() - started

    assert result.ok, result.stderr.decode(errors="replace")
    assert result.argv == ("/usr/bin/nmap", *argv[1:])
    assert elapsed < 30, f"the live scan took {elapsed:.1f}s"
    assert engine.parse_version(Runner()(engine.version_command(), timeout=30).stdout.decode())

    observations = engine.parse(result.stdout, {HOST: "asset-1"})
    by_rule_port = {(o.rule_id, o.location.port): o for o in observations}
    assert set(by_rule_port) == {
        (OPEN_PORT, services["http"]),
        (VERSION_DISCLOSED, services["http"]),
        (OPEN_PORT, services["mysql"]),
        (VERSION_DISCLOSED, services["mysql"]),
        (DATABASE_EXPOSED, services["mysql"]),
    }
    banner = by_rule_port[(VERSION_DISCLOSED, services["http"])]
    assert banner.title == "Service discloses its version: Apache httpd 2.4.49"
    assert banner.asset_id == "asset-1" and banner.location.host == HOST
    assert banner.evidence["cpe"] == ["cpe:/a:apache:http_server:2.4.49"]
    database = by_rule_port[(DATABASE_EXPOSED, services["mysql"])]
    assert database.title == (
        f"Database service reachable on the network: MySQL {MYSQL_VERSION} "
        f"on {services['mysql']}/tcp"
    )
    assert database.severity == "high" and database.cwe == "CWE-668"
    assert hosts_in(result.stdout) == {HOST}

"""The demo estate: loopback services with known weaknesses, run in background threads.

Each "host" gets its own loopback address (Linux answers on all of 127.0.0.0/8), so discovery,
inventory matching and scanning behave as they would on a real network:

- ``web``    127.0.0.11:18080 an HTTP server that discloses ``Apache/2.4.49 (Unix)`` (a release with
  known path traversal CVEs) and sends none of the usual security headers;
- ``db``     127.0.0.12:13306 a MySQL 5.5.62 greeting (an end-of-life release) to every connection;
- ``shadow`` 127.0.0.13:18080 an ``nginx/1.18.0`` HTTP service no inventory lists: a blind spot.

Ports (and addresses) are configurable so tests can bind ephemeral ports. Nothing starts at import
time: ``DemoEstate.start()`` (or ``with DemoEstate() as estate:``) binds and serves.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import signal
import socket
import socketserver
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self

log = logging.getLogger(__name__)

WEB_SERVER_HEADER = "Apache/2.4.49 (Unix)"
SHADOW_SERVER_HEADER = "nginx/1.18.0"
MYSQL_SERVER_VERSION = "5.5.62-log"


@dataclass(frozen=True)
class ServiceSpec:
    """Where one demo service listens by default and what it is."""

    name: str
    host: str
    port: int
    description: str


DEFAULT_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("web", "127.0.0.11", 18080, f"HTTP, Server: {WEB_SERVER_HEADER}"),
    ServiceSpec("db", "127.0.0.12", 13306, f"MySQL {MYSQL_SERVER_VERSION} greeting"),
    ServiceSpec(
        "shadow", "127.0.0.13", 18080, f"HTTP, Server: {SHADOW_SERVER_HEADER}, not inventoried"
    ),
)
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in DEFAULT_SERVICES)


# --------------------------------------------------------------------------------------- HTTP


class _DisclosingHandler(BaseHTTPRequestHandler):
    """A tiny static site whose only job is to look like a particular web server."""

    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive connections must not pin a thread for long
    server_header: ClassVar[str] = WEB_SERVER_HEADER
    index_html: ClassVar[bytes] = b""
    not_found_html: ClassVar[bytes] = b""

    def version_string(self) -> str:
        return self.server_header

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s - %s", self.server_header, self.address_string(), format % args)

    def send_response(self, code: int, message: str | None = None) -> None:
        # Real servers send Date before Server; keep that order so fingerprints look familiar.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", self.version_string())

    def _reply(self, status: HTTPStatus, body: bytes, *, head: bool = False) -> None:
        self.send_response(status)
        if status is HTTPStatus.OK:
            self.send_header("Last-Modified", "Mon, 11 Oct 2021 12:00:00 GMT")
            self.send_header("ETag", '"2d-5ce0e3c1a4c00"')
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/html; charset=iso-8859-1")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._reply(HTTPStatus.OK, self.index_html)
        else:
            self._reply(HTTPStatus.NOT_FOUND, self.not_found_html)

    def do_HEAD(self) -> None:
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            self._reply(HTTPStatus.OK, self.index_html, head=True)
        else:
            self._reply(HTTPStatus.NOT_FOUND, self.not_found_html, head=True)

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Allow", "GET,POST,OPTIONS,HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _ApacheHandler(_DisclosingHandler):
    server_header = WEB_SERVER_HEADER
    index_html = b"<html><body><h1>It works!</h1></body></html>\n"
    not_found_html = (
        b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n'
        b"<html><head>\n<title>404 Not Found</title>\n</head><body>\n"
        b"<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n"
        b"</body></html>\n"
    )


class _NginxHandler(_DisclosingHandler):
    server_header = SHADOW_SERVER_HEADER
    index_html = (
        b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n"
        b"<h1>Welcome to nginx!</h1>\n<p>Internal metrics dashboard (staging copy).</p>\n"
        b"</body>\n</html>\n"
    )
    not_found_html = (
        b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
        b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
        b"</body>\r\n</html>\r\n"
    )

    def do_OPTIONS(self) -> None:
        # nginx answers OPTIONS on static files with 405.
        body = (
            b"<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n"
            b"<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
            b"</body>\r\n</html>\r\n"
        )
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, body)


class _QuietErrorsMixin:
    """Scanners hang up mid-request all the time; that is not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver calls this inside its except block, so exc_info is the live exception.
        log.debug("demo connection from %s ended abruptly", client_address, exc_info=True)  # noqa: LOG014


class _DemoHTTPServer(_QuietErrorsMixin, ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


# -------------------------------------------------------------------------------------- MySQL

# Capability flags of a stock MySQL 5.5 server (CLIENT_LONG_PASSWORD ... CLIENT_PLUGIN_AUTH).
_MYSQL_CAPABILITIES = 0x807FF7FF
_MYSQL_CHARSET_LATIN1 = 0x08
_MYSQL_STATUS_AUTOCOMMIT = 0x0002


def _scramble(length: int) -> bytes:
    """Random printable salt, as MySQL generates it (no NUL bytes)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@"
    return bytes(secrets.choice(alphabet) for _ in range(length))


def mysql_greeting(server_version: str, connection_id: int) -> bytes:
    """The protocol v10 handshake packet a MySQL server sends first on every connection."""
    salt = _scramble(20)
    payload = b"".join(
        [
            b"\x0a",
            server_version.encode("ascii") + b"\x00",
            struct.pack("<I", connection_id & 0xFFFFFFFF),
            salt[:8],
            b"\x00",
            struct.pack("<H", _MYSQL_CAPABILITIES & 0xFFFF),
            bytes([_MYSQL_CHARSET_LATIN1]),
            struct.pack("<H", _MYSQL_STATUS_AUTOCOMMIT),
            struct.pack("<H", _MYSQL_CAPABILITIES >> 16),
            bytes([len(salt) + 1]),
            b"\x00" * 10,
            salt[8:] + b"\x00",
            b"mysql_native_password\x00",
        ]
    )
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


class _MySQLGreetingHandler(socketserver.BaseRequestHandler):
    """Send the greeting, wait briefly for the client to hang up, then close."""

    server: _MySQLGreetingServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.sendall(mysql_greeting(self.server.server_version, self.server.next_id()))
            sock.settimeout(self.server.linger_seconds)
            while sock.recv(4096):  # drain whatever the client sends until it closes or we time out
                pass
        except OSError:
            pass


class _MySQLGreetingServer(_QuietErrorsMixin, socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], server_version: str, linger_seconds: float
    ) -> None:
        self.server_version = server_version
        self.linger_seconds = linger_seconds
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        super().__init__(address, _MySQLGreetingHandler)

    def next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)


# ------------------------------------------------------------------------------------- estate


class DemoEstate:
    """Start the demo services in background threads; stop them cleanly.

    ``ports`` and ``hosts`` override the defaults per service name (port 0 = ephemeral);
    ``only`` limits which services run. ``endpoints`` gives the addresses actually bound.
    """

    def __init__(
        self,
        ports: Mapping[str, int] | None = None,
        hosts: Mapping[str, str] | None = None,
        *,
        only: Iterable[str] | None = None,
        db_linger_seconds: float = 1.0,
    ) -> None:
        ports = dict(ports or {})
        hosts = dict(hosts or {})
        selected = tuple(only) if only is not None else SERVICE_NAMES
        for label, names in (("ports", ports), ("hosts", hosts), ("only", selected)):
            unknown = sorted(set(names) - set(SERVICE_NAMES))
            if unknown:
                raise ValueError(
                    f"DemoEstate {label}: unknown service(s) {', '.join(unknown)}; "
                    f"expected {', '.join(SERVICE_NAMES)}"
                )
        self._specs = [
            ServiceSpec(
                s.name, hosts.get(s.name, s.host), int(ports.get(s.name, s.port)), s.description
            )
            for s in DEFAULT_SERVICES
            if s.name in selected
        ]
        self._db_linger_seconds = db_linger_seconds
        self._servers: dict[str, socketserver.BaseServer] = {}
        self._threads: list[threading.Thread] = []

    def _make_server(self, spec: ServiceSpec) -> socketserver.TCPServer:
        address = (spec.host, spec.port)
        if spec.name == "web":
            return _DemoHTTPServer(address, _ApacheHandler)
        if spec.name == "shadow":
            return _DemoHTTPServer(address, _NginxHandler)
        return _MySQLGreetingServer(address, MYSQL_SERVER_VERSION, self._db_linger_seconds)

    def start(self) -> Self:
        if self._servers:
            raise RuntimeError("DemoEstate is already running")
        try:
            for spec in self._specs:
                try:
                    server = self._make_server(spec)
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"demo service {spec.name!r} cannot listen on {spec.host}:{spec.port}: "
                        f"{exc.strerror}",
                    ) from exc
                self._servers[spec.name] = server
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"autosec-demo-{spec.name}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
                log.info(
                    "demo service %s listening on %s:%s", spec.name, *self.endpoints[spec.name]
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Shut the servers down side by side: each shutdown() waits for one poll interval.
        stoppers = [
            threading.Thread(target=server.shutdown, daemon=True)
            for server in self._servers.values()
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for server in self._servers.values():
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    @property
    def running(self) -> bool:
        return bool(self._servers)

    @property
    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Service name -> (host, port); the bound port once running, the configured one before."""
        result: dict[str, tuple[str, int]] = {}
        for spec in self._specs:
            server = self._servers.get(spec.name)
            if isinstance(server, socketserver.TCPServer):
                host, port = server.server_address[:2]
                result[spec.name] = (str(host), int(port))
            else:
                result[spec.name] = (spec.host, spec.port)
        return result

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    """Run the demo estate in the foreground until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping the demo estate", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with DemoEstate() as estate:
            for name, (host, port) in estate.endpoints.items():
                print(f"{name:<7} {host}:{port}", flush=True)
            print(
                f"demo estate running (pid {os.getpid()}); stop with SIGTERM or Ctrl-C", flush=True
            )
            while not stop.wait(0.5):
                pass
        print("demo estate stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "DEFAULT_SERVICES",
    "MYSQL_SERVER_VERSION",
    "SERVICE_NAMES",
    "SHADOW_SERVER_HEADER",
    "WEB_SERVER_HEADER",
    "DemoEstate",
    "ServiceSpec",
    "main",
    "mysql_greeting",
]

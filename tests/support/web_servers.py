"""Web servers on loopback with known weaknesses (and one without), for the http engine.

- :class:`WeakSite`: every weakness the engine looks for: no security headers, a cookie
  without flags, ``Server``/``X-Powered-By`` with versions, TRACE echoed, a directory listing
  at ``/``, ``/.git/HEAD`` and ``/.env`` served, plus redirects: ``/old`` to ``/`` (same host),
  ``/away`` to another name (``other_host``, the same machine under a name the probe must not
  follow), ``/loop`` to itself.
- :class:`HardenedSite`: all headers set, a cookie with every flag, no version, TRACE refused,
  ``/.git/HEAD`` 404 and ``/.env`` answered by the application's HTML catch-all page.
- :class:`SlowSite`: answers ``/`` one byte every half second, forever (a hard timeout test).
- :class:`HugeSite`: answers ``/`` with a 16 MiB body (a body cap test), and hangs up on TRACE
  without answering.

Every site records the ``Host`` header and path of each request it receives, and serves over
https when given a server TLS context.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

ENV_BODY = "# settings\nDB_PASSWORD=hunter2-not-for-logs\nAPI_KEY=sk_live_0123456789\nDEBUG=true\n"
SESSION_VALUE = "s3ss10n-v4lue-not-for-logs"
CATCH_ALL_PAGE = "<!doctype html><html><head><title>App</title></head><body>app</body></html>"


class Site(ThreadingHTTPServer):
    """A threading HTTP(S) server on loopback that records each request's method, Host, path.

    ``RequestHandlerClass`` is read for every request: assign another site's ``handler`` to
    change what the server answers (a fix, for a rescan)."""

    daemon_threads = True
    handler: ClassVar[type[BaseHTTPRequestHandler]]

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        other_host: str = "localhost",
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__((host, 0), self.handler)
        self.host = host
        self.context = context
        self.other_host = other_host
        self.requests: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        if self.context is not None:
            # the handshake happens on the handler's thread, at its first read
            connection = self.context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base(self) -> str:
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def record(self, method: str, host: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, host, path))


class _Handler(BaseHTTPRequestHandler):
    server: Site
    protocol_version = "HTTP/1.1"
    timeout = 15

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle_one_request(self) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.record(self.command, self.headers.get("Host", ""), self.path)
        return ok

    def reply(
        self,
        status: int,
        body: str = "",
        content_type: str = "text/html; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)


class _WeakHandler(_Handler):
    server_version = "Apache/2.4.49"
    sys_version = "(Unix)"

    def end_headers(self) -> None:
        self.send_header("X-Powered-By", "PHP/7.4.3")
        super().end_headers()

    def do_GET(self) -> None:
        if self.path == "/":
            listing = (
                "<html><head><title>Index of /</title></head><body><h1>Index of /</h1>"
                '<a href="backup.zip">backup.zip</a></body></html>'
            )
            self.reply(
                200, listing, headers=(("Set-Cookie", f"PHPSESSID={SESSION_VALUE}; path=/"),)
            )
        elif self.path == "/.git/HEAD":
            self.reply(200, "ref: refs/heads/main\n", "text/plain")
        elif self.path == "/.env":
            self.reply(200, ENV_BODY, "application/octet-stream")
        elif self.path == "/old":
            self.reply(301, headers=(("Location", "/"),))
        elif self.path == "/away":
            target = f"http://{self.server.other_host}:{self.server.port}/landing"
            self.reply(302, headers=(("Location", target),))
        elif self.path == "/loop":
            self.reply(302, headers=(("Location", "/loop"),))
        else:
            self.reply(404, "not found")

    def do_TRACE(self) -> None:
        echo = f"{self.requestline}\r\n{self.headers}"
        self.reply(200, echo, "message/http")


class WeakSite(Site):
    handler = _WeakHandler


HARDENED_HEADERS = (
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)


class _HardenedHandler(_Handler):
    server_version = "web"
    sys_version = ""

    def end_headers(self) -> None:
        for name, value in HARDENED_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        if self.path == "/":
            cookie = f"sid={SESSION_VALUE}; Path=/; Secure; HttpOnly; SameSite=Lax"
            self.reply(200, CATCH_ALL_PAGE, headers=(("Set-Cookie", cookie),))
        elif self.path.startswith("/.git"):
            self.reply(404, "not found", "text/plain")
        else:
            self.reply(200, CATCH_ALL_PAGE)  # a single-page application answers every path

    def do_TRACE(self) -> None:
        self.reply(405, "method not allowed", "text/plain", (("Allow", "GET, HEAD"),))


class HardenedSite(Site):
    handler = _HardenedHandler


class _SlowHandler(_Handler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(120):  # at most a minute, then the thread ends on its own
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.5)

    do_TRACE = do_GET


class SlowSite(Site):
    handler = _SlowHandler


class _HugeHandler(_Handler):
    def do_GET(self) -> None:
        chunk = b"A" * 65536
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(chunk) * 256))
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(256):
                self.wfile.write(chunk)

    def do_TRACE(self) -> None:
        self.close_connection = True  # hang up without an answer: the client sees a reset


class HugeSite(Site):
    handler = _HugeHandler


@contextlib.contextmanager
def serving(site: Site) -> Iterator[Site]:
    """Serve ``site`` on a thread until the block ends."""
    thread = threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield site
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

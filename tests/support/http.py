"""Loopback HTTP servers for the tests: one that records and answers, one that forwards."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import requests

Reply = tuple[int, Any]
Responder = Callable[[str, str, dict, Any], Reply]
Forward = Callable[[], tuple[int, bytes]]
_Server = TypeVar("_Server", bound=ThreadingHTTPServer)


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server on a free loopback port."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)  # the client may have given up (the timeout tests)


class RecordingServer(LoopbackServer):
    """Records every request and answers with ``respond(method, path, query, body)``: a string
    answer is sent as it is, anything else as JSON."""

    def __init__(self, respond: Responder | None = None) -> None:
        super().__init__(_RecordingHandler)
        if respond is not None:
            self.respond = respond  # type: ignore[method-assign]
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def respond(self, method: str, path: str, query: dict, body: Any) -> Reply:
        return 404, {"error": "no route"}


class _RecordingHandler(QuietHandler):
    server: RecordingServer

    def _handle(self) -> None:
        raw = self._read_body()
        url = urlsplit(self.path)
        body = json.loads(raw) if raw else None
        query = parse_qs(url.query)
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": url.path,
                    "query": query,
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
            )
        status, answer = self.server.respond(self.command, url.path, query, body)
        self._send(
            status, answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        )

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class ForwardingGateway(LoopbackServer):
    """In front of an upstream API: ``answer`` decides each request, by default forwarding it
    with only its Authorization and Content-Type headers."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        super().__init__(_GatewayHandler)

    def answer(self, method: str, path: str, forward: Forward) -> tuple[int, bytes]:
        return forward()


class _GatewayHandler(QuietHandler):
    server: ForwardingGateway
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        body = self._read_body() or None
        method = self.command

        def forward() -> tuple[int, bytes]:
            forwarded = requests.request(
                method,
                self.server.upstream + self.path,
                data=body,
                headers={
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                },
                timeout=5,
            )
            return forwarded.status_code, forwarded.content

        status, data = self.server.answer(method, self.path.split("?")[0], forward)
        self._send(status, data)

    do_GET = do_POST = _handle


def failure(message: str) -> tuple[int, bytes]:
    """A 500 answer whose JSON body names ``message``."""
    return 500, json.dumps({"error": message}).encode()


@contextlib.contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    """Serve ``server`` on a thread until the block ends, then shut it down and close it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""A chat webhook stand-in for the demo: receives Slack-style JSON posts and keeps them.

``with ChatServer() as chat: chat.url, chat.messages()``; ``python -m autosec.demo.chat``.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from autosec.demo.http_server import BackgroundServer

MAX_BODY = 256 * 1024


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _ChatHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._reply(HTTPStatus.BAD_REQUEST, b"invalid_payload")
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._reply(HTTPStatus.BAD_REQUEST, b"invalid_payload")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            self._reply(HTTPStatus.BAD_REQUEST, b"no_text")
            return
        with self.server.lock:
            self.server.received.append({"path": self.path, **payload})
        self._reply(HTTPStatus.OK, b"ok")

    def _reply(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ChatHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _WebhookHandler)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class ChatServer(BackgroundServer[_ChatHTTPServer]):
    """An incoming-webhook endpoint on loopback that records every message."""

    poll_interval = 0.2

    def start(self) -> Self:
        return self._serve(_ChatHTTPServer((self.host, self.port)))

    @property
    def url(self) -> str:
        return f"{super().url}/hooks/autosec"

    def messages(self) -> list[dict[str, Any]]:
        server = self._running()
        with server.lock:
            return list(server.received)

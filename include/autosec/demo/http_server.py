"""The plumbing the demo's stand-in HTTP APIs share (ticketing, enforcement, Git hosting, chat).

Each stand-in is a handler (its routes and the shape of its error bodies), a store (its records,
written through to a JSON file so they survive a restart) and a server object that runs them in
a background thread. What they have in common lives here: JSON answers, bearer token checks with
a constant-time comparison, request bodies read within a size limit so a keep-alive connection
stays in step, atomic store files, the thread's start and stop, and the foreground command.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import SplitResult, urlsplit

MAX_BODY_BYTES = 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class ApiError(Exception):
    """A request the API refuses; carries the HTTP status and a JSON body."""

    def __init__(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or body.get("error"))
        self.status = status
        self.body = body


# --- handlers -------------------------------------------------------------------------------------


class JsonApiHandler(BaseHTTPRequestHandler):
    """JSON in, JSON out. Subclasses route requests and raise ``ApiError`` to refuse one.

    ``error`` builds the refusals this class raises itself (a bad token, a bad body length, a
    body that is not JSON); an API whose error bodies look different overrides it and the
    message attributes.
    """

    server: ApiHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 30
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)
    log_name: ClassVar[str] = "api"
    content_type: ClassVar[str] = "application/json"
    token_schemes: ClassVar[tuple[str, ...]] = ("bearer",)
    www_authenticate: ClassVar[str] = "Bearer"
    error_type: ClassVar[type[ApiError]] = ApiError
    unauthorised_message: ClassVar[str] = "a valid 'Authorization: Bearer' token is required"
    bad_length_message: ClassVar[str] = "Content-Length is not a number: {header!r}"
    too_large_message: ClassVar[str] = "body larger than {limit} bytes"

    def log_message(self, format: str, *args: Any) -> None:
        self.logger.debug("%s %s - %s", self.log_name, self.address_string(), format % args)

    def error(self, status: HTTPStatus, code: str, message: str) -> ApiError:
        """The refusal with ``status``; ``code`` is its short machine-readable name."""
        return self.error_type(status, {"error": code, "message": message})

    def bad_request(self, message: str) -> ApiError:
        return self.error(HTTPStatus.BAD_REQUEST, "invalid", message)

    def send_json(
        self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body, sort_keys=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def authorise(self) -> None:
        """Refuse a request without the server's token (any request when the server has one)."""
        token = self.server.token
        if token is None:
            return
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in self.token_schemes or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise self.error(HTTPStatus.UNAUTHORIZED, "unauthorized", self.unauthorised_message)

    def content_length(self) -> int | None:
        """The body's length, None without a header; refused when it is not a number or is over
        the limit (which also closes the connection: that body is never read)."""
        header = self.headers.get("Content-Length")
        if header is None:
            return None
        try:
            length = int(header)
        except ValueError:
            raise self.bad_request(self.bad_length_message.format(header=header)) from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise self.error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                self.too_large_message.format(limit=MAX_BODY_BYTES),
            )
        return length

    def read_body(self) -> bytes:
        """Read the whole request body first, so an early refusal keeps the connection in step."""
        try:
            length = self.content_length()
        except ApiError:
            self.close_connection = True
            raise
        return self.rfile.read(length) if length else b""

    def parse_json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self.bad_request(f"request body is not valid JSON: {exc}") from None

    def route(self, method: str, url: SplitResult) -> None:
        """Answer one request, or raise ApiError."""
        raise NotImplementedError

    def refused(self, error: ApiError) -> None:
        """Called before a refusal is sent (a handler that reads bodies lazily drains it here)."""

    def _handle(self, method: str) -> None:
        try:
            self.route(method, urlsplit(self.path))
        except ApiError as exc:
            self.refused(exc)
            unauthorised = exc.status == HTTPStatus.UNAUTHORIZED
            headers = {"WWW-Authenticate": self.www_authenticate} if unauthorised else {}
            self.send_json(exc.status, exc.body, headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class ApiHTTPServer(ThreadingHTTPServer):
    """A threading server whose handlers reach the API's store and token through it."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        store: Any,
        token: str | None,
    ) -> None:
        self.store = store
        self.token = token
        super().__init__(address, handler)


# --- stores ---------------------------------------------------------------------------------------


class JsonRecordStore:
    """Records in memory, written through to a JSON file ``{key: [records]}`` when one is given.

    The file is replaced atomically, so a crash mid-write leaves the previous version.
    """

    key: ClassVar[str]  # the file's list: "tickets"
    what: ClassVar[str]  # names the store in an error: "ticket store"

    def __init__(self, path: Path | None, clock: Callable[[], datetime]) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._records = self._load(path)

    @classmethod
    def _valid(cls, record: Any) -> bool:
        """Whether a record read from the file is one this store can serve."""
        return isinstance(record, dict) and isinstance(record.get("id"), str)

    @classmethod
    def _expected(cls) -> str:
        return f"an object with a {cls.key!r} list"

    @classmethod
    def _load(cls, path: Path) -> list[dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{cls.what} {path}: cannot read it as JSON: {exc}") from exc
        records = data.get(cls.key) if isinstance(data, dict) else None
        if not isinstance(records, list) or not all(cls._valid(r) for r in records):
            raise ValueError(f"{cls.what} {path}: expected {cls._expected()}")
        return records

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.key}-", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({self.key: self._records}, fh, indent=2, sort_keys=True)
            Path(tmp).replace(self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="seconds")

    @staticmethod
    def _copy(value: Any) -> Any:
        """A deep copy through JSON: what a client would get, never the stored object."""
        return json.loads(json.dumps(value))


# --- servers --------------------------------------------------------------------------------------

S = TypeVar("S", bound=ThreadingHTTPServer)


class BackgroundServer(ABC, Generic[S]):
    """An HTTP server in a daemon thread: ``start``/``stop``, or ``with ... as server``."""

    thread_name: ClassVar[str | None] = None
    poll_interval: ClassVar[float] = 0.1

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: S | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def start(self) -> Self:
        """Bind and serve (through ``_serve``); the address is known once this returns."""

    def _serve(self, server: S) -> Self:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def _running(self) -> S:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._server

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._running().server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ApiServer(BackgroundServer[ApiHTTPServer]):
    """A stand-in API with an optional bearer token and a store file that survives restarts."""

    label: ClassVar[str]  # names the server when it cannot listen: "ticketing server"
    handler: ClassVar[type[JsonApiHandler]]
    server_type: ClassVar[type[ApiHTTPServer]] = ApiHTTPServer

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None,
        store_path: str | os.PathLike[str] | None,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError(f"{type(self).__name__} token must be non-empty when given")
        super().__init__(host, port)
        self.token = token
        self.store_path = Path(store_path) if store_path is not None else None

    @abstractmethod
    def _open_store(self) -> Any:
        """The store, read from ``store_path`` when the file exists."""

    def _bind(self, store: Any) -> ApiHTTPServer:
        """The HTTP server on ``(host, port)``, serving ``store`` with ``handler``."""
        return self.server_type((self.host, self.port), self.handler, store, self.token)

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        store = self._open_store()
        try:
            server = self._bind(store)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"{self.label} cannot listen on {self.host}:{self.port}: {exc.strerror}",
            ) from exc
        return self._serve(server)

    def _store(self) -> Any:
        return self._running().store


# --- the foreground command -----------------------------------------------------------------------


def api_argument_parser(
    module: str,
    description: str,
    *,
    port: int,
    token_env: str,
    store_help: str | None,
    credential_kind: str = "bearer token",
) -> argparse.ArgumentParser:
    """``--host``, ``--port``, ``--token`` (default from ``token_env``) and, with ``store_help``,
    ``--store``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument(
        "--token",
        default=os.environ.get(token_env),
        help=f"{credential_kind} clients must present (default: ${token_env}; none: no auth)",
    )
    if store_help is not None:
        parser.add_argument("--store", type=Path, help=store_help)
    return parser


def serve_in_foreground(server: BackgroundServer[Any], name: str, auth: str) -> int:
    """Run ``server`` until SIGTERM or SIGINT, saying where it listens and when it stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with server:
            print(f"{name} at {server.url} ({auth})", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"{name} stopped", flush=True)
    return 0

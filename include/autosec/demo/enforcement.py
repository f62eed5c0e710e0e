"""A small enforcement (quarantine) REST API: the demo's stand-in for a firewall or NAC.

The quarantine action blocks an asset through an Airflow HTTP connection; in the demo that
connection points here. It behaves like the real thing where autosec depends on it: bearer
token authentication, validation with clear 400s (every address is checked again here, so a
hostile value is refused at the enforcement point too), idempotency by ``external_id`` (409
with the existing block), release, and blocks that survive a restart when a store file is set.

API (JSON in, JSON out):

- ``POST   /api/quarantine``               block; 201 with the block ({"id", "state": "blocked"})
- ``GET    /api/quarantine[?external_id=&state=&asset_id=]``  list (a JSON array, oldest first)
- ``GET    /api/quarantine/{id}``          one block or 404
- ``DELETE /api/quarantine/{id}``          release; 200 with the block; releasing twice is a no-op
- ``POST   /api/quarantine/{id}/release``  the same, for clients that cannot send DELETE
- ``GET    /healthz``                      liveness, no token needed
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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from autosec.domain.targets import InvalidTarget, TargetKind, validate_target

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
MAX_ADDRESSES = 256
TOKEN_ENV = "AUTOSEC_ENFORCEMENT_TOKEN"  # noqa: S105 (the variable's name, not a secret)
_REQUIRED_STRINGS = ("asset_id", "external_id")
_KNOWN_FIELDS = frozenset(
    {"asset_id", "addresses", "reason", "finding_fingerprint", "external_id", "expires_at"}
)
_MAX_FIELD_CHARS = {
    "asset_id": 200,
    "external_id": 200,
    "reason": 2000,
    "finding_fingerprint": 200,
}


class EnforcementError(Exception):
    """A request the API refuses; carries the HTTP status and a JSON body."""

    def __init__(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or body.get("error"))
        self.status = status
        self.body = body


def _bad_request(message: str) -> EnforcementError:
    return EnforcementError(HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": message})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def validate_new_block(payload: Any) -> dict[str, Any]:
    """Check a block request and return the normalised fields; raise a 400 naming the field."""
    if not isinstance(payload, dict):
        raise _bad_request("request body must be a JSON object")
    unknown = sorted(set(payload) - _KNOWN_FIELDS)
    if unknown:
        raise _bad_request(f"unknown field(s): {', '.join(unknown)}")
    fields: dict[str, Any] = {}
    for name in _REQUIRED_STRINGS:
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip():
            raise _bad_request(f"field {name!r} is required and must be a non-empty string")
        fields[name] = value.strip()
    for name in ("reason", "finding_fingerprint"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad_request(f"field {name!r} must be a string, got {type(value).__name__}")
        fields[name] = value or ""
    for name, limit in _MAX_FIELD_CHARS.items():
        if len(fields[name]) > limit:
            raise _bad_request(f"field {name!r} is longer than {limit} characters")
    addresses = payload.get("addresses")
    if (
        not isinstance(addresses, list)
        or not addresses
        or not all(isinstance(a, str) for a in addresses)
    ):
        raise _bad_request("field 'addresses' must be a non-empty list of strings")
    if len(addresses) > MAX_ADDRESSES:
        raise _bad_request(f"field 'addresses' has more than {MAX_ADDRESSES} entries")
    canonical = []
    for address in addresses:
        try:
            target = validate_target(address)
        except InvalidTarget as exc:
            raise _bad_request(f"field 'addresses': {exc}") from None
        if target.kind is TargetKind.URL:
            raise _bad_request(
                f"field 'addresses': {address!r} is a URL; block an IP, a CIDR range or a host"
            )
        canonical.append(target.value)
    fields["addresses"] = list(dict.fromkeys(canonical))
    expires = payload.get("expires_at")
    if expires is not None:
        if not isinstance(expires, str):
            raise _bad_request("field 'expires_at' must be an ISO date-time string")
        try:
            moment = datetime.fromisoformat(expires)
        except ValueError:
            raise _bad_request(f"field 'expires_at' is not an ISO date-time: {expires!r}") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise _bad_request(f"field 'expires_at' has no time zone: {expires!r}")
        fields["expires_at"] = moment.astimezone(UTC).isoformat(timespec="seconds")
    else:
        fields["expires_at"] = None
    return fields


class BlockStore:
    """Blocks in memory, written through to a JSON file when one is given."""

    def __init__(
        self, path: Path | None = None, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._blocks: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._blocks = self._load(path)

    @staticmethod
    def _load(path: Path) -> list[dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"block store {path}: cannot read it as JSON: {exc}") from exc
        blocks = data.get("blocks") if isinstance(data, dict) else None
        if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and isinstance(b.get("id"), str) for b in blocks
        ):
            raise ValueError(f"block store {path}: expected an object with a 'blocks' list")
        return blocks

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".blocks-", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"blocks": self._blocks}, fh, indent=2, sort_keys=True)
            Path(tmp).replace(self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="seconds")

    @staticmethod
    def _copy(value: Any) -> Any:
        return json.loads(json.dumps(value))

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for block in self._blocks:
                if block["external_id"] == fields["external_id"]:
                    raise EnforcementError(
                        HTTPStatus.CONFLICT,
                        {
                            "error": "duplicate",
                            "message": f"a block with external_id {fields['external_id']!r} exists",
                            **self._copy(block),
                        },
                    )
            number = 1 + max((int(b["id"]) for b in self._blocks if b["id"].isdigit()), default=0)
            now = self._now()
            block = {
                "id": str(number),
                **fields,
                "state": "blocked",
                "created_at": now,
                "updated_at": now,
                "released_at": None,
            }
            self._blocks.append(block)
            self._save()
            return self._copy(block)

    def _find(self, block_id: str) -> dict[str, Any]:
        for block in self._blocks:
            if block["id"] == block_id:
                return block
        raise EnforcementError(
            HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no block {block_id!r}"}
        )

    def get(self, block_id: str) -> dict[str, Any]:
        with self._lock:
            return self._copy(self._find(block_id))

    def query(self, **filters: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return self._copy(
                [
                    b
                    for b in self._blocks
                    if all(v is None or b.get(k) == v for k, v in filters.items())
                ]
            )

    def release(self, block_id: str) -> dict[str, Any]:
        with self._lock:
            block = self._find(block_id)
            if block["state"] != "released":
                now = self._now()
                block["state"] = "released"
                block["released_at"] = now
                block["updated_at"] = now
                self._save()
            return self._copy(block)


class _EnforcementHandler(BaseHTTPRequestHandler):
    server: _EnforcementHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "autosec-enforcement/1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("enforcement %s - %s", self.address_string(), format % args)

    def _send_json(
        self, status: HTTPStatus, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body, sort_keys=True).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorise(self) -> None:
        token = self.server.token
        if token is None:
            return
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise EnforcementError(
                HTTPStatus.UNAUTHORIZED,
                {
                    "error": "unauthorized",
                    "message": "a valid 'Authorization: Bearer' token is required",
                },
            )

    def _content_length(self) -> int | None:
        header = self.headers.get("Content-Length")
        if header is None:
            return None
        try:
            length = int(header)
        except ValueError:
            self.close_connection = True
            raise _bad_request(f"Content-Length is not a number: {header!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise EnforcementError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": "too_large", "message": f"body larger than {MAX_BODY_BYTES} bytes"},
            )
        return length

    def _read_body(self) -> bytes:
        """Read the whole request body first, so an early refusal keeps the connection in step."""
        length = self._content_length()
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _parse_json(raw: bytes) -> Any:
        if not raw:
            raise EnforcementError(
                HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": "a JSON body is required"}
            )
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad_request(f"request body is not valid JSON: {exc}") from None

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            raw = self._read_body()
            if parts == ["healthz"] and method == "GET":
                self._send_json(HTTPStatus.OK, {"status": "ok"})
                return
            if parts[:2] != ["api", "quarantine"] or len(parts) > 4:
                raise EnforcementError(
                    HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {url.path}"}
                )
            self._authorise()
            store = self.server.store
            if len(parts) == 2 and method == "POST":
                block = store.create(validate_new_block(self._parse_json(raw)))
                location = f"/api/quarantine/{block['id']}"
                self._send_json(HTTPStatus.CREATED, block, {"Location": location})
            elif len(parts) == 2 and method == "GET":
                query = parse_qs(url.query, keep_blank_values=True)
                filters = {
                    name: query.get(name, [None])[-1]
                    for name in ("external_id", "state", "asset_id")
                }
                self._send_json(HTTPStatus.OK, store.query(**filters))
            elif len(parts) == 3 and method == "GET":
                self._send_json(HTTPStatus.OK, store.get(parts[2]))
            elif (len(parts) == 3 and method == "DELETE") or (
                len(parts) == 4 and parts[3] == "release" and method == "POST"
            ):
                self._send_json(HTTPStatus.OK, store.release(parts[2]))
            else:
                raise EnforcementError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"error": "method_not_allowed", "message": f"{method} {url.path}"},
                )
        except EnforcementError as exc:
            headers = (
                {"WWW-Authenticate": "Bearer"} if exc.status == HTTPStatus.UNAUTHORIZED else {}
            )
            self._send_json(exc.status, exc.body, headers)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _EnforcementHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: BlockStore, token: str | None) -> None:
        self.store = store
        self.token = token
        super().__init__(address, _EnforcementHandler)


class EnforcementServer:
    """The enforcement API in a background thread: ``with EnforcementServer() as es: es.url``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("EnforcementServer token must be non-empty when given")
        self.host = host
        self.port = port
        self.token = token
        self.store_path = Path(store_path) if store_path is not None else None
        self._clock = clock
        self._server: _EnforcementHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("EnforcementServer is already running")
        store = BlockStore(self.store_path, clock=self._clock)
        try:
            self._server = _EnforcementHTTPServer((self.host, self.port), store, self.token)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"enforcement server cannot listen on {self.host}:{self.port}: {exc.strerror}",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="autosec-demo-enforcement",
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

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("EnforcementServer is not running")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def blocks(self) -> list[dict[str, Any]]:
        """Every block, oldest first (a copy)."""
        if self._server is None:
            raise RuntimeError("EnforcementServer is not running")
        return self._server.store.query()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the enforcement API in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m autosec.demo.enforcement", description="Demo enforcement REST API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token clients must present (default: ${TOKEN_ENV}; none: no auth)",
    )
    parser.add_argument("--store", type=Path, help="JSON file the blocks persist to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EnforcementServer(args.host, args.port, args.token or None, args.store) as server:
            auth = "bearer token required" if args.token else "no authentication"
            print(f"enforcement API at {server.url} ({auth})", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("enforcement API stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A small ticketing REST API: the demo's stand-in for a real ticketing system.

The remediation stage files tickets through an Airflow HTTP connection; in the demo that
connection points here. It behaves like the real thing where autosec depends on it: bearer
token authentication, validation with clear 400s, idempotency by ``external_id`` (409 with
the existing ticket's id and key), and tickets that survive a restart when a store file is set.

API (JSON in, JSON out):

- ``POST /api/tickets``                 create; 201 with the ticket
- ``GET  /api/tickets[?external_id=&status=]``  list (a JSON array, oldest first)
- ``GET  /api/tickets/{id}``            one ticket or 404
- ``POST /api/tickets/{id}/close``      close with ``{"comment": "..."}``; closing twice is a no-op
- ``GET  /healthz``                     liveness, no token needed
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
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
TOKEN_ENV = "AUTOSEC_TICKETING_TOKEN"  # noqa: S105 (the variable's name, not a secret)
_STRING_FIELDS = ("priority", "assignee", "external_id")
_KNOWN_FIELDS = frozenset(
    {"title", "description", "priority", "assignee", "labels", "external_id", "due_date"}
)
_MAX_FIELD_CHARS = {"title": 500, "priority": 50, "assignee": 200, "external_id": 200}


class TicketError(Exception):
    """A request the API refuses; carries the HTTP status and a JSON body."""

    def __init__(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or body.get("error"))
        self.status = status
        self.body = body


def _bad_request(message: str) -> TicketError:
    return TicketError(HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": message})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def validate_new_ticket(payload: Any) -> dict[str, Any]:
    """Check a create request and return the normalised fields; raise a 400 naming the field."""
    if not isinstance(payload, dict):
        raise _bad_request("request body must be a JSON object")
    unknown = sorted(set(payload) - _KNOWN_FIELDS)
    if unknown:
        raise _bad_request(f"unknown field(s): {', '.join(unknown)}")
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _bad_request("field 'title' is required and must be a non-empty string")
    fields: dict[str, Any] = {"title": title.strip()}
    for name in _STRING_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad_request(f"field {name!r} must be a string, got {type(value).__name__}")
        fields[name] = value.strip() if value is not None and value.strip() else None
    description = payload.get("description")
    if description is not None and not isinstance(description, str):
        raise _bad_request(
            f"field 'description' must be a string, got {type(description).__name__}"
        )
    fields["description"] = description or ""
    fields["priority"] = fields["priority"] or "medium"
    for name, limit in _MAX_FIELD_CHARS.items():
        if fields[name] is not None and len(fields[name]) > limit:
            raise _bad_request(f"field {name!r} is longer than {limit} characters")
    labels = payload.get("labels", [])
    if labels is None:
        labels = []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise _bad_request("field 'labels' must be a list of strings")
    fields["labels"] = labels
    due = payload.get("due_date")
    if due is not None:
        if not isinstance(due, str):
            raise _bad_request("field 'due_date' must be an ISO date string (YYYY-MM-DD)")
        try:
            fields["due_date"] = date.fromisoformat(due).isoformat()
        except ValueError:
            raise _bad_request(
                f"field 'due_date' is not an ISO date (YYYY-MM-DD): {due!r}"
            ) from None
    else:
        fields["due_date"] = None
    return fields


class TicketStore:
    """Tickets in memory, written through to a JSON file when one is given."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        key_prefix: str = "SEC",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._path = path
        self._key_prefix = key_prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets: list[dict[str, Any]] = []
        if path is not None and path.exists():
            self._tickets = self._load(path)

    @staticmethod
    def _load(path: Path) -> list[dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"ticket store {path}: cannot read it as JSON: {exc}") from exc
        tickets = data.get("tickets") if isinstance(data, dict) else None
        if not isinstance(tickets, list) or not all(
            isinstance(t, dict) and isinstance(t.get("id"), str) for t in tickets
        ):
            raise ValueError(
                f"ticket store {path}: expected an object with a 'tickets' list of tickets"
            )
        return tickets

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tickets-", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"tickets": self._tickets}, fh, indent=2, sort_keys=True)
            Path(tmp).replace(self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="seconds")

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            external_id = fields.get("external_id")
            if external_id is not None:
                for ticket in self._tickets:
                    if ticket.get("external_id") == external_id:
                        raise TicketError(
                            HTTPStatus.CONFLICT,
                            {
                                "error": "duplicate",
                                "message": f"a ticket with external_id {external_id!r} exists",
                                "id": ticket["id"],
                                "key": ticket["key"],
                            },
                        )
            number = 1 + max((int(t["id"]) for t in self._tickets if t["id"].isdigit()), default=0)
            now = self._now()
            ticket = {
                "id": str(number),
                "key": f"{self._key_prefix}-{number}",
                **fields,
                "status": "open",
                "created_at": now,
                "updated_at": now,
                "closed_at": None,
                "comments": [],
            }
            self._tickets.append(ticket)
            self._save()
            return json.loads(json.dumps(ticket))

    def get(self, ticket_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._find(ticket_id)))

    def _find(self, ticket_id: str) -> dict[str, Any]:
        for ticket in self._tickets:
            if ticket["id"] == ticket_id:
                return ticket
        raise TicketError(
            HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no ticket {ticket_id!r}"}
        )

    def query(
        self, *, external_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                t
                for t in self._tickets
                if (external_id is None or t.get("external_id") == external_id)
                and (status is None or t.get("status") == status)
            ]
            return json.loads(json.dumps(found))

    def close(self, ticket_id: str, comment: str) -> dict[str, Any]:
        with self._lock:
            ticket = self._find(ticket_id)
            if ticket["status"] != "closed":
                now = self._now()
                if comment:
                    ticket["comments"].append({"body": comment, "at": now})
                ticket["status"] = "closed"
                ticket["closed_at"] = now
                ticket["updated_at"] = now
                self._save()
            return json.loads(json.dumps(ticket))


class _TicketingHandler(BaseHTTPRequestHandler):
    server: _TicketingHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "autosec-ticketing/1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ticketing %s - %s", self.address_string(), format % args)

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
        header = self.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            raise TicketError(
                HTTPStatus.UNAUTHORIZED,
                {
                    "error": "unauthorized",
                    "message": "a valid 'Authorization: Bearer' token is required",
                },
            )

    def _read_json(self, *, required: bool = True) -> Any:
        self._body_read = True
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if required:
                raise TicketError(
                    HTTPStatus.LENGTH_REQUIRED,
                    {"error": "length_required", "message": "Content-Length header is required"},
                )
            return {}
        try:
            length = int(length_header)
        except ValueError:
            raise _bad_request(f"Content-Length is not a number: {length_header!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise TicketError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": "too_large", "message": f"body larger than {MAX_BODY_BYTES} bytes"},
            )
        raw = self.rfile.read(length)
        if not raw and not required:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad_request(f"request body is not valid JSON: {exc}") from None

    def _drain_body(self) -> None:
        """Read an unread request body so a keep-alive connection stays in step."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _route(self, method: str) -> None:
        self._body_read = False
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts == ["healthz"] and method == "GET":
                self._send_json(HTTPStatus.OK, {"status": "ok"})
                return
            if parts[:2] != ["api", "tickets"] or len(parts) > 4:
                raise TicketError(
                    HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {url.path}"}
                )
            self._authorise()
            store = self.server.store
            if len(parts) == 2 and method == "POST":
                ticket = store.create(validate_new_ticket(self._read_json()))
                location = f"/api/tickets/{ticket['id']}"
                self._send_json(HTTPStatus.CREATED, ticket, {"Location": location})
            elif len(parts) == 2 and method == "GET":
                query = parse_qs(url.query, keep_blank_values=True)
                external_id = query.get("external_id", [None])[-1]
                status = query.get("status", [None])[-1]
                self._send_json(HTTPStatus.OK, store.query(external_id=external_id, status=status))
            elif len(parts) == 3 and method == "GET":
                self._send_json(HTTPStatus.OK, store.get(parts[2]))
            elif len(parts) == 4 and parts[3] == "close" and method == "POST":
                body = self._read_json(required=False)
                if not isinstance(body, dict):
                    raise _bad_request("request body must be a JSON object")
                comment = body.get("comment", "")
                if not isinstance(comment, str):
                    raise _bad_request("field 'comment' must be a string")
                self._send_json(HTTPStatus.OK, store.close(parts[2], comment))
            else:
                raise TicketError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"error": "method_not_allowed", "message": f"{method} {url.path}"},
                )
        except TicketError as exc:
            if not self._body_read:
                self._drain_body()
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


class _TicketingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: TicketStore, token: str | None) -> None:
        self.store = store
        self.token = token
        super().__init__(address, _TicketingHandler)


class TicketingServer:
    """The ticketing API in a background thread: ``with TicketingServer() as ts: ts.url``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        *,
        key_prefix: str = "SEC",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("TicketingServer token must be non-empty when given")
        self.host = host
        self.port = port
        self.token = token
        self.store_path = Path(store_path) if store_path is not None else None
        self._key_prefix = key_prefix
        self._clock = clock
        self._server: _TicketingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("TicketingServer is already running")
        store = TicketStore(self.store_path, key_prefix=self._key_prefix, clock=self._clock)
        try:
            self._server = _TicketingHTTPServer((self.host, self.port), store, self.token)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"ticketing server cannot listen on {self.host}:{self.port}: {exc.strerror}",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="autosec-demo-ticketing",
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
            raise RuntimeError("TicketingServer is not running")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket, oldest first (a copy)."""
        if self._server is None:
            raise RuntimeError("TicketingServer is not running")
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
    """Run the ticketing API in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m autosec.demo.ticketing", description="Demo ticketing REST API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token clients must present (default: ${TOKEN_ENV}; none: no auth)",
    )
    parser.add_argument("--store", type=Path, help="JSON file the tickets persist to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with TicketingServer(args.host, args.port, args.token or None, args.store) as server:
            auth = "bearer token required" if args.token else "no authentication"
            print(f"ticketing API at {server.url} ({auth})", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("ticketing API stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

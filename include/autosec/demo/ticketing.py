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
- ``POST /api/tickets/{id}/comments``   ``{"body": "..."}``; 201 with the ticket, comment appended
- ``POST /api/tickets/{id}/resolve``    ``{"comment": "..."}``: an engineer marks the work done
  (status ``resolved``, ``resolved_at`` set); resolving again records a new resolution; a closed
  ticket answers 409
- ``GET  /healthz``                     liveness, no token needed

Statuses: ``open`` → ``resolved`` (by a person: "I fixed it") → ``closed``. There is no reopen:
a ticket closed stays closed, and what happens after is said in comments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import date, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs

from autosec.demo.http_server import (
    MAX_BODY_BYTES,
    ApiError,
    ApiServer,
    JsonApiHandler,
    JsonRecordStore,
    api_argument_parser,
    serve_in_foreground,
    utcnow,
)

log = logging.getLogger(__name__)

TOKEN_ENV = "AUTOSEC_TICKETING_TOKEN"  # noqa: S105 (the variable's name, not a secret)
_STRING_FIELDS = ("priority", "assignee", "external_id")
_KNOWN_FIELDS = frozenset(
    {"title", "description", "priority", "assignee", "labels", "external_id", "due_date"}
)
_MAX_FIELD_CHARS = {"title": 500, "priority": 50, "assignee": 200, "external_id": 200}
MAX_COMMENT_CHARS = 30_000


class TicketError(ApiError):
    """A request the API refuses; carries the HTTP status and a JSON body."""


def _bad_request(message: str) -> TicketError:
    return TicketError(HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": message})


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


def validate_comment(
    payload: Any, field_name: str, *, required: bool, max_chars: int | None = MAX_COMMENT_CHARS
) -> str:
    """The comment text of a request body ``{field_name: "..."}``; a 400 naming the field."""
    if not isinstance(payload, dict):
        raise _bad_request("request body must be a JSON object")
    text = payload.get(field_name, "")
    if not isinstance(text, str):
        raise _bad_request(f"field {field_name!r} must be a string")
    if required and not text.strip():
        raise _bad_request(f"field {field_name!r} is required and must be a non-empty string")
    if max_chars is not None and len(text) > max_chars:
        raise _bad_request(f"field {field_name!r} is longer than {max_chars} characters")
    return text


class TicketStore(JsonRecordStore):
    """Tickets in memory, written through to a JSON file when one is given."""

    key = "tickets"
    what = "ticket store"

    def __init__(
        self,
        path: Path | None = None,
        *,
        key_prefix: str = "SEC",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._key_prefix = key_prefix
        super().__init__(path, clock)

    @classmethod
    def _expected(cls) -> str:
        return "an object with a 'tickets' list of tickets"

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            external_id = fields.get("external_id")
            if external_id is not None:
                for ticket in self._records:
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
            number = 1 + max((int(t["id"]) for t in self._records if t["id"].isdigit()), default=0)
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
            self._records.append(ticket)
            self._save()
            return self._copy(ticket)

    def get(self, ticket_id: str) -> dict[str, Any]:
        with self._lock:
            return self._copy(self._find(ticket_id))

    def _find(self, ticket_id: str) -> dict[str, Any]:
        for ticket in self._records:
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
                for t in self._records
                if (external_id is None or t.get("external_id") == external_id)
                and (status is None or t.get("status") == status)
            ]
            return self._copy(found)

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
            return self._copy(ticket)

    def comment(self, ticket_id: str, body: str) -> dict[str, Any]:
        """Append a comment, whatever the status (a closed ticket can still be commented on)."""
        with self._lock:
            ticket = self._find(ticket_id)
            now = self._now()
            ticket["comments"].append({"body": body, "at": now})
            ticket["updated_at"] = now
            self._save()
            return self._copy(ticket)

    def resolve(self, ticket_id: str, comment: str) -> dict[str, Any]:
        """Mark the work done (an engineer's "fixed"); each call is a new resolution."""
        with self._lock:
            ticket = self._find(ticket_id)
            if ticket["status"] == "closed":
                raise TicketError(
                    HTTPStatus.CONFLICT,
                    {
                        "error": "closed",
                        "message": f"ticket {ticket_id!r} is closed: it cannot be resolved",
                    },
                )
            now = self._now()
            if comment:
                ticket["comments"].append({"body": comment, "at": now})
            ticket["status"] = "resolved"
            ticket["resolved_at"] = now
            ticket["updated_at"] = now
            self._save()
            return self._copy(ticket)


class _TicketingHandler(JsonApiHandler):
    server_version = "autosec-ticketing/1"
    logger = log
    log_name = "ticketing"
    error_type = TicketError

    def _read_json(self, *, required: bool = True) -> Any:
        self._body_read = True
        length = self.content_length()
        if length is None:
            if required:
                raise TicketError(
                    HTTPStatus.LENGTH_REQUIRED,
                    {"error": "length_required", "message": "Content-Length header is required"},
                )
            return {}
        raw = self.rfile.read(length)
        if not raw and not required:
            return {}
        return self.parse_json(raw)

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

    def refused(self, error: ApiError) -> None:
        if not self._body_read:
            self._drain_body()

    def route(self, method: str, url: SplitResult) -> None:
        self._body_read = False
        parts = [p for p in url.path.split("/") if p]
        if parts == ["healthz"] and method == "GET":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
            return
        if parts[:2] != ["api", "tickets"] or len(parts) > 4:
            raise TicketError(
                HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {url.path}"}
            )
        self.authorise()
        store: TicketStore = self.server.store
        if len(parts) == 2 and method == "POST":
            ticket = store.create(validate_new_ticket(self._read_json()))
            location = f"/api/tickets/{ticket['id']}"
            self.send_json(HTTPStatus.CREATED, ticket, {"Location": location})
        elif len(parts) == 2 and method == "GET":
            query = parse_qs(url.query, keep_blank_values=True)
            external_id = query.get("external_id", [None])[-1]
            status = query.get("status", [None])[-1]
            self.send_json(HTTPStatus.OK, store.query(external_id=external_id, status=status))
        elif len(parts) == 3 and method == "GET":
            self.send_json(HTTPStatus.OK, store.get(parts[2]))
        elif len(parts) == 4 and parts[3] == "close" and method == "POST":
            body = self._read_json(required=False)
            comment = validate_comment(body, "comment", required=False, max_chars=None)
            self.send_json(HTTPStatus.OK, store.close(parts[2], comment))
        elif len(parts) == 4 and parts[3] == "comments" and method == "POST":
            text = validate_comment(self._read_json(), "body", required=True)
            ticket = store.comment(parts[2], text)
            self.send_json(HTTPStatus.CREATED, ticket, {"Location": f"/api/tickets/{ticket['id']}"})
        elif len(parts) == 4 and parts[3] == "resolve" and method == "POST":
            comment = validate_comment(self._read_json(required=False), "comment", required=False)
            self.send_json(HTTPStatus.OK, store.resolve(parts[2], comment))
        else:
            raise TicketError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"error": "method_not_allowed", "message": f"{method} {url.path}"},
            )


class TicketingServer(ApiServer):
    """The ticketing API in a background thread: ``with TicketingServer() as ts: ts.url``."""

    label = "ticketing server"
    thread_name = "autosec-demo-ticketing"
    handler = _TicketingHandler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        *,
        key_prefix: str = "SEC",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(host, port, token, store_path)
        self._key_prefix = key_prefix
        self._clock = clock

    def _open_store(self) -> TicketStore:
        return TicketStore(self.store_path, key_prefix=self._key_prefix, clock=self._clock)

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket, oldest first (a copy)."""
        return self._store().query()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ticketing API in the foreground until SIGTERM or SIGINT."""
    parser = api_argument_parser(
        "autosec.demo.ticketing",
        "Demo ticketing REST API.",
        port=8089,
        token_env=TOKEN_ENV,
        store_help="JSON file the tickets persist to",
    )
    args = parser.parse_args(argv)
    server = TicketingServer(args.host, args.port, args.token or None, args.store)
    auth = "bearer token required" if args.token else "no authentication"
    return serve_in_foreground(server, "ticketing API", auth)


if __name__ == "__main__":
    raise SystemExit(main())

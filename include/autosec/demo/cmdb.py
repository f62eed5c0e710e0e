"""A ServiceNow-like CMDB table API: the demo's stand-in for a configuration management database.

The HTTP CMDB inventory source reads configuration items through an Airflow connection; in the
demo and the tests that connection points here. Records come from a JSON file mapping table
names to lists of records (``{"cmdb_ci_server": [{...}, ...]}``) and are served as they are, so
a record without an id or with a hostile address reaches the client's own checks.

``GET /api/now/table/{table}`` answers in one of three paging styles, chosen by the parameters:

- page number, ``?page=N&per_page=M`` (the default): ``{"result": [...], "total": T, "page": N,
  "per_page": M}``; a page past the end is empty;
- offset, ``?sysparm_offset=K&sysparm_limit=M`` (ServiceNow's own): ``{"result": [...]}`` with
  the count in the ``X-Total-Count`` header;
- cursor, ``?limit=M[&cursor=C]``: ``{"result": [...], "meta": {"next": C2, "total": T},
  "links": {"next": "/api/now/table/...?cursor=C2&limit=M"}}``, ``null`` on the last page.

``sysparm_query=field=value^field2=value2`` keeps the records whose top-level fields equal the
values. Authentication, when the server has a token: ``Authorization: Bearer TOKEN`` or HTTP
basic auth with TOKEN as the password. Errors look like ServiceNow's: ``{"error": {"message",
"detail"}, "status": "failure"}``. ``GET /healthz`` for liveness, no token needed. Tests make it
misbehave on purpose with :class:`autosec.demo.backstage.Fault`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import threading
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import SplitResult, parse_qs, urlencode

from autosec.demo.backstage import FaultPlan, FaultTolerantHandler, answer_fault
from autosec.demo.http_server import (
    ApiError,
    ApiServer,
    api_argument_parser,
    serve_in_foreground,
)

log = logging.getLogger(__name__)

TOKEN_ENV = "AUTOSEC_CMDB_TOKEN"  # noqa: S105 (the variable's name, not a secret)
TABLE_PREFIX = "/api/now/table/"
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 10_000


class RecordTables:
    """The served tables, the faults waiting for requests, and a log of the queries asked."""

    def __init__(self, tables: dict[str, list[Any]]) -> None:
        self._tables = tables
        self.faults = FaultPlan()
        self._lock = threading.Lock()
        self._queries: list[dict[str, list[str]]] = []

    @classmethod
    def from_file(cls, path: Path) -> RecordTables:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"CMDB records file {path}: cannot read it as JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(
                f"CMDB records file {path}: expected an object mapping table names to lists "
                'of records, e.g. {"cmdb_ci_server": [...]}'
            )
        return cls(data)

    def log(self, query: dict[str, list[str]]) -> None:
        with self._lock:
            self._queries.append(query)

    @property
    def queries(self) -> list[dict[str, list[str]]]:
        """The query parameters of each table request, oldest first (a copy)."""
        with self._lock:
            return json.loads(json.dumps(self._queries))

    def select(self, table: str, sysparm_query: str) -> list[Any]:
        """The table's records that pass ``a=b^c=d`` (all must hold); KeyError for no table."""
        records = self._tables[table]
        conditions = []
        for clause in (c for c in sysparm_query.split("^") if c):
            field, equals, value = clause.partition("=")
            if not equals or not field:
                raise ValueError(f"invalid sysparm_query clause {clause!r}: expected field=value")
            conditions.append((field, value))
        return json.loads(
            json.dumps(
                [
                    r
                    for r in records
                    if all(isinstance(r, dict) and str(r.get(f)) == v for f, v in conditions)
                ]
            )
        )


def _number(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name, [str(default)])[-1]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is out of range {low}-{high}")
    return value


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise ValueError(f"malformed cursor {cursor[:40]!r}") from None
    kind, _, number = text.partition(":")
    if kind != "o" or not number.isdigit():
        raise ValueError(f"malformed cursor {cursor[:40]!r}")
    return int(number)


class _CmdbHandler(FaultTolerantHandler):
    server_version = "autosec-cmdb/1"
    logger = log
    log_name = "cmdb"
    token_schemes: ClassVar[tuple[str, ...]] = ("bearer", "basic")
    unauthorised_message: ClassVar[str] = "User Not Authenticated"

    def error(self, status: HTTPStatus, code: str, message: str) -> ApiError:
        return ApiError(
            status, {"error": {"message": message, "detail": code}, "status": "failure"}
        )

    def authorise(self) -> None:
        """Bearer TOKEN, or basic auth whose password is TOKEN (any user name)."""
        token = self.server.token
        if token is None:
            return
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        secret = presented.strip()
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(secret.encode("ascii"), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeError, ValueError):
                pair = ""
            secret = pair.partition(":")[2]
        elif scheme.lower() != "bearer":
            secret = ""
        if not secret or not hmac.compare_digest(secret.encode(), token.encode()):
            raise self.error(HTTPStatus.UNAUTHORIZED, "unauthorized", self.unauthorised_message)

    def route(self, method: str, url: SplitResult) -> None:
        if url.path == "/healthz" and method == "GET":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
            return
        table = url.path.removeprefix(TABLE_PREFIX).strip("/")
        if not url.path.startswith(TABLE_PREFIX) or not table or "/" in table:
            raise self.error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path}")
        if method != "GET":
            raise self.error(
                HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"{method} {url.path}"
            )
        self.authorise()
        tables: RecordTables = self.server.store
        query = parse_qs(url.query, keep_blank_values=True)
        tables.log(query)
        fault = tables.faults.take()
        if fault is not None and answer_fault(self, fault):
            return
        try:
            records = tables.select(table, query.get("sysparm_query", [""])[-1])
        except KeyError:
            raise self.error(HTTPStatus.NOT_FOUND, "not_found", f"Invalid table {table}") from None
        except ValueError as exc:
            raise self.bad_request(str(exc)) from None
        try:
            self._answer(url.path, query, records)
        except ValueError as exc:
            raise self.bad_request(str(exc)) from None

    def _answer(self, path: str, query: dict[str, list[str]], records: list[Any]) -> None:
        total = len(records)
        if "cursor" in query or "limit" in query:
            limit = _number(query, "limit", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
            cursor = query.get("cursor", [""])[-1]
            offset = decode_cursor(cursor) if cursor else 0
            following = encode_cursor(offset + limit) if offset + limit < total else None
            link = (
                f"{path}?{urlencode({'cursor': following, 'limit': limit})}" if following else None
            )
            body = {
                "result": records[offset : offset + limit],
                "meta": {"next": following, "total": total},
                "links": {"next": link},
            }
            self.send_json(HTTPStatus.OK, body)
        elif "sysparm_offset" in query or "sysparm_limit" in query:
            limit = _number(query, "sysparm_limit", MAX_PER_PAGE, 1, MAX_PER_PAGE)
            offset = _number(query, "sysparm_offset", 0, 0, 10**9)
            self.send_json(
                HTTPStatus.OK,
                {"result": records[offset : offset + limit]},
                {"X-Total-Count": str(total)},
            )
        else:
            per_page = _number(query, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
            page = _number(query, "page", 1, 1, 10**9)
            start = (page - 1) * per_page
            body = {
                "result": records[start : start + per_page],
                "total": total,
                "page": page,
                "per_page": per_page,
            }
            self.send_json(HTTPStatus.OK, body)


class CmdbServer(ApiServer):
    """The CMDB table API in a background thread: ``with CmdbServer(records) as cmdb: cmdb.url``.

    The records file is read when the server starts; one that cannot be read stops it.
    """

    label = "CMDB stand-in"
    thread_name = "autosec-demo-cmdb"
    handler = _CmdbHandler

    def __init__(
        self,
        records_path: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        super().__init__(host, port, token, None)
        self.records_path = Path(records_path)

    def _open_store(self) -> RecordTables:
        return RecordTables.from_file(self.records_path)

    @property
    def tables(self) -> RecordTables:
        return self._store()

    @property
    def faults(self) -> FaultPlan:
        return self._store().faults


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a records file in the foreground until SIGTERM or SIGINT."""
    parser = api_argument_parser(
        "autosec.demo.cmdb",
        "Stand-in CMDB table API (ServiceNow-like) serving a JSON records file.",
        port=8093,
        token_env=TOKEN_ENV,
        store_help=None,
        credential_kind="token",
    )
    parser.add_argument("records", type=Path, help='JSON file {"table": [records]}')
    args = parser.parse_args(argv)
    server = CmdbServer(args.records, args.host, args.port, args.token or None)
    auth = "token required (bearer, or basic password)" if args.token else "no authentication"
    return serve_in_foreground(server, "CMDB table API", auth)


if __name__ == "__main__":
    raise SystemExit(main())

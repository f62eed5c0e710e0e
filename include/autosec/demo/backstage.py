"""A stand-in Backstage catalog: entity files served through the catalog's by-query API.

The Backstage inventory source reads a real catalog through an Airflow connection; in the demo and
the tests that connection points here. It serves the entities found in a folder of catalog files
(``*.yaml``/``*.yml``, several documents per file, as Backstage reads them) and behaves like the
real catalog where autosec depends on it:

- ``GET /api/catalog/entities/by-query?filter=kind=component,kind=group&limit=N`` answers
  ``{"items": [...], "totalItems": n, "pageInfo": {"nextCursor": "..."}}``; the next page is
  ``?cursor=...&limit=N``: the cursor carries the filter, and a filter sent with it is ignored.
  Within one ``filter``, statements on different keys must all match and values of the same key
  are alternatives; several ``filter`` parameters are alternatives; matching ignores case; a
  statement ``key`` alone means the key exists. Keys are flattened entity paths
  (``metadata.namespace``, ``spec.type``, ``metadata.annotations.backstage.io/orphan``).
- Entities get ``metadata.namespace`` (``default``) and a stable ``metadata.uid`` when they lack
  them, and are ordered by ref. Files are served as they are: an entity Backstage itself would
  refuse is served too, so the client's own checks are exercised.
- Bearer token authentication when the server has a token; errors in Backstage's shape
  ``{"error": {"name", "message"}, "response": {"statusCode"}}``.
- ``GET /healthz`` for liveness, no token needed.

Tests make it misbehave on purpose with :class:`Fault` (a status, a body that is not JSON, a
delay) after a number of normal answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import SplitResult, parse_qs

import yaml

from autosec.demo.http_server import (
    ApiError,
    ApiServer,
    JsonApiHandler,
    api_argument_parser,
    serve_in_foreground,
)
from autosec.inventory.backstage import ENTITIES_PATH

log = logging.getLogger(__name__)

TOKEN_ENV = "AUTOSEC_BACKSTAGE_TOKEN"  # noqa: S105 (the variable's name, not a secret)
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
ENTITY_SUFFIXES = (".yaml", ".yml")
_ERROR_NAMES = {
    "invalid": "InputError",
    "unauthorized": "AuthenticationError",
    "not_found": "NotFoundError",
    "method_not_allowed": "NotAllowedError",
    "too_large": "InputError",
    "fault": "Error",
}


# --- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What one API request gets instead of its answer, after ``after`` normal answers.

    ``status``: that status with an error body; ``body``: these bytes with status 200 (e.g. JSON
    cut short); ``delay``: seconds to wait first (past a client's timeout), then the rest.
    """

    after: int = 0
    status: int | None = None
    body: bytes | None = None
    delay: float = 0.0


class FaultPlan:
    """Faults waiting for requests, in order; thread-safe (the server answers in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self) -> Fault | None:
        """The fault for this request, if one is due; counts the request otherwise."""
        with self._lock:
            if not self._faults:
                return None
            first = self._faults[0]
            if first.after > 0:
                self._faults[0] = replace(first, after=first.after - 1)
                return None
            return self._faults.pop(0)


def answer_fault(handler: JsonApiHandler, fault: Fault) -> bool:
    """Play ``fault`` on ``handler``; False when it was only a delay and the answer is still due."""
    if fault.delay:
        time.sleep(fault.delay)
    if fault.status is not None:
        status = HTTPStatus(fault.status)
        raise handler.error(status, "fault", f"injected fault: {status.phrase}")
    if fault.body is not None:
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", handler.content_type)
        handler.send_header("Content-Length", str(len(fault.body)))
        handler.end_headers()
        handler.wfile.write(fault.body)
        return True
    return False


class FaultTolerantHandler(JsonApiHandler):
    """A handler that shrugs off a client that hung up (one that timed out, say)."""

    def _handle(self, method: str) -> None:
        try:
            super()._handle(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# --- the catalog ----------------------------------------------------------------------------------


def load_entities(folder: Path) -> list[dict[str, Any]]:
    """Every entity document under ``folder``, ordered by ref; ValueError naming a bad file."""
    if not folder.is_dir():
        raise ValueError(f"Backstage entities folder {folder} does not exist")
    entities: list[dict[str, Any]] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in ENTITY_SUFFIXES):
        if not path.is_file():
            continue
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"Backstage entity file {path}: cannot read it: {exc}") from exc
        for number, document in enumerate(documents, start=1):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ValueError(
                    f"Backstage entity file {path}: document {number} is a "
                    f"{type(document).__name__}, expected an entity (a mapping)"
                )
            entities.append(_as_served(document))
    return sorted(entities, key=_ref_key)


def _as_served(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity as the catalog returns it: a namespace and a stable uid when it has none."""
    entity = json.loads(json.dumps(entity, default=str))
    metadata = entity.get("metadata")
    if isinstance(metadata, dict):
        metadata.setdefault("namespace", "default")
        ref = ":".join(str(v) for v in _ref_key(entity))
        metadata.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"backstage:{ref}")))
    return entity


def _ref_key(entity: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = entity.get("metadata") if isinstance(entity.get("metadata"), Mapping) else {}
    return (
        str(entity.get("kind", "")).lower(),
        str(metadata.get("namespace") or "default").lower(),
        str(metadata.get("name", "")).lower(),
    )


def flatten(entity: Any, prefix: str = "") -> dict[str, set[str]]:
    """Search keys to values, as the catalog indexes an entity: nested keys joined by dots,
    list items under their list's key, everything lowercased."""
    out: dict[str, set[str]] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif value is not None and key:
            out.setdefault(key.lower(), set()).add(str(value).lower())
            return
        if key:
            out.setdefault(key.lower(), set())

    walk(entity, prefix)
    return out


Filter = dict[str, set[str] | None]


def parse_filter(text: str) -> Filter:
    """``kind=component,kind=resource,spec.type`` → {"kind": {...}, "spec.type": None}."""
    found: Filter = {}
    for statement in (s.strip() for s in text.split(",")):
        if not statement:
            continue
        key, equals, value = statement.partition("=")
        key = key.strip().lower()
        if not key:
            raise ValueError(f"invalid filter, {statement!r} is not a statement (a=b or a)")
        if not equals:
            found.setdefault(key, None)
            continue
        values = found.get(key)
        found[key] = (values or set()) | {value.strip().lower()}
    return found


def matches(flat: Mapping[str, set[str]], filters: Sequence[Filter]) -> bool:
    """Whether an entity passes any of the filters (no filter: every entity does)."""
    if not filters:
        return True
    for group in filters:
        if all(
            key in flat and (values is None or bool(flat[key] & values))
            for key, values in group.items()
        ):
            return True
    return False


class EntityCatalog:
    """The served entities, the faults waiting for requests, and a log of the queries asked."""

    def __init__(self, entities: list[dict[str, Any]]) -> None:
        self._entities = entities
        self._flat = [flatten(e) for e in entities]
        self.faults = FaultPlan()
        self._lock = threading.Lock()
        self._queries: list[dict[str, list[str]]] = []

    def log(self, query: dict[str, list[str]]) -> None:
        with self._lock:
            self._queries.append(query)

    @property
    def queries(self) -> list[dict[str, list[str]]]:
        """The query parameters of each by-query request, oldest first (a copy)."""
        with self._lock:
            return json.loads(json.dumps(self._queries))

    @property
    def entities(self) -> list[dict[str, Any]]:
        return json.loads(json.dumps(self._entities))

    def query(
        self, filters: list[str], offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the entities that pass ``filters``, and how many pass in all."""
        parsed = [parse_filter(f) for f in filters]
        parsed = [p for p in parsed if p]
        selected = [
            e for e, flat in zip(self._entities, self._flat, strict=True) if matches(flat, parsed)
        ]
        return json.loads(json.dumps(selected[offset : offset + limit])), len(selected)


def encode_cursor(filters: list[str], offset: int) -> str:
    raw = json.dumps({"filters": filters, "offset": offset}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def decode_cursor(cursor: str) -> tuple[list[str], int]:
    """The filter and offset a cursor carries, or ValueError."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise ValueError(f"malformed cursor {cursor[:40]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"malformed cursor {cursor[:40]!r}")
    filters, offset = data.get("filters"), data.get("offset")
    if (
        not isinstance(filters, list)
        or not all(isinstance(f, str) for f in filters)
        or isinstance(offset, bool)
        or not isinstance(offset, int)
        or offset < 0
    ):
        raise ValueError(f"malformed cursor {cursor[:40]!r}")
    return filters, offset


# --- the API --------------------------------------------------------------------------------------


class _CatalogHandler(FaultTolerantHandler):
    server_version = "autosec-backstage/1"
    logger = log
    log_name = "backstage"
    unauthorised_message: ClassVar[str] = "Missing or invalid Backstage token"

    def error(self, status: HTTPStatus, code: str, message: str) -> ApiError:
        return ApiError(
            status,
            {
                "error": {"name": _ERROR_NAMES.get(code, "Error"), "message": message},
                "request": {"method": self.command, "url": self.path.split("?")[0]},
                "response": {"statusCode": int(status)},
            },
        )

    def route(self, method: str, url: SplitResult) -> None:
        if url.path == "/healthz" and method == "GET":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
            return
        if url.path.rstrip("/") != ENTITIES_PATH:
            raise self.error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path}")
        if method != "GET":
            raise self.error(
                HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"{method} {url.path}"
            )
        self.authorise()
        catalog: EntityCatalog = self.server.store
        query = parse_qs(url.query, keep_blank_values=True)
        catalog.log(query)
        fault = catalog.faults.take()
        if fault is not None and answer_fault(self, fault):
            return
        limit = self._limit(query)
        cursor = query.get("cursor", [""])[-1]
        try:
            if cursor:
                filters, offset = decode_cursor(cursor)
            else:
                filters, offset = query.get("filter", []), 0
            items, total = catalog.query(filters, offset, limit)
        except ValueError as exc:
            raise self.bad_request(str(exc)) from None
        page_info: dict[str, str] = {}
        if offset + limit < total:
            page_info["nextCursor"] = encode_cursor(filters, offset + limit)
        if offset > 0:
            page_info["prevCursor"] = encode_cursor(filters, max(0, offset - limit))
        self.send_json(HTTPStatus.OK, {"items": items, "totalItems": total, "pageInfo": page_info})

    def _limit(self, query: dict[str, list[str]]) -> int:
        text = query.get("limit", [str(DEFAULT_LIMIT)])[-1]
        try:
            limit = int(text)
        except ValueError:
            raise self.bad_request(f"Invalid limit, {text!r} is not a number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise self.bad_request(f"Invalid limit {limit}: expected 1 to {MAX_LIMIT}")
        return limit


class BackstageCatalogServer(ApiServer):
    """The catalog in a background thread: ``with BackstageCatalogServer(folder) as c: c.url``.

    The entity files are read when the server starts; a file that cannot be read stops it.
    """

    label = "Backstage catalog stand-in"
    thread_name = "autosec-demo-backstage"
    handler = _CatalogHandler

    def __init__(
        self,
        entities_dir: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        super().__init__(host, port, token, None)
        self.entities_dir = Path(entities_dir)

    def _open_store(self) -> EntityCatalog:
        return EntityCatalog(load_entities(self.entities_dir))

    @property
    def catalog(self) -> EntityCatalog:
        return self._store()

    @property
    def faults(self) -> FaultPlan:
        return self._store().faults


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a folder of entity files in the foreground until SIGTERM or SIGINT."""
    parser = api_argument_parser(
        "autosec.demo.backstage",
        "Stand-in Backstage catalog serving a folder of entity YAML files.",
        port=7007,
        token_env=TOKEN_ENV,
        store_help=None,
    )
    parser.add_argument("entities", type=Path, help="folder of catalog entity YAML files")
    args = parser.parse_args(argv)
    server = BackstageCatalogServer(args.entities, args.host, args.port, args.token or None)
    auth = "bearer token required" if args.token else "no authentication"
    return serve_in_foreground(server, "Backstage catalog", auth)


if __name__ == "__main__":
    raise SystemExit(main())

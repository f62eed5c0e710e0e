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

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs

from autosec.demo.http_server import (
    ApiError,
    ApiServer,
    JsonApiHandler,
    JsonRecordStore,
    api_argument_parser,
    serve_in_foreground,
    utcnow,
)
from autosec.domain.targets import InvalidTarget, TargetKind, validate_target

log = logging.getLogger(__name__)

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


class EnforcementError(ApiError):
    """A request the API refuses; carries the HTTP status and a JSON body."""


def _bad_request(message: str) -> EnforcementError:
    return EnforcementError(HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": message})


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


class BlockStore(JsonRecordStore):
    """Blocks in memory, written through to a JSON file when one is given."""

    key = "blocks"
    what = "block store"

    def __init__(self, path: Path | None = None, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(path, clock)

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for block in self._records:
                if block["external_id"] == fields["external_id"]:
                    raise EnforcementError(
                        HTTPStatus.CONFLICT,
                        {
                            "error": "duplicate",
                            "message": f"a block with external_id {fields['external_id']!r} exists",
                            **self._copy(block),
                        },
                    )
            number = 1 + max((int(b["id"]) for b in self._records if b["id"].isdigit()), default=0)
            now = self._now()
            block = {
                "id": str(number),
                **fields,
                "state": "blocked",
                "created_at": now,
                "updated_at": now,
                "released_at": None,
            }
            self._records.append(block)
            self._save()
            return self._copy(block)

    def _find(self, block_id: str) -> dict[str, Any]:
        for block in self._records:
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
                    for b in self._records
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


class _EnforcementHandler(JsonApiHandler):
    server_version = "autosec-enforcement/1"
    logger = log
    log_name = "enforcement"
    error_type = EnforcementError

    def parse_json(self, raw: bytes) -> Any:
        if not raw:
            raise EnforcementError(
                HTTPStatus.BAD_REQUEST, {"error": "invalid", "message": "a JSON body is required"}
            )
        return super().parse_json(raw)

    def route(self, method: str, url: SplitResult) -> None:
        parts = [p for p in url.path.split("/") if p]
        raw = self.read_body()
        if parts == ["healthz"] and method == "GET":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
            return
        if parts[:2] != ["api", "quarantine"] or len(parts) > 4:
            raise EnforcementError(
                HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {url.path}"}
            )
        self.authorise()
        store: BlockStore = self.server.store
        if len(parts) == 2 and method == "POST":
            block = store.create(validate_new_block(self.parse_json(raw)))
            location = f"/api/quarantine/{block['id']}"
            self.send_json(HTTPStatus.CREATED, block, {"Location": location})
        elif len(parts) == 2 and method == "GET":
            query = parse_qs(url.query, keep_blank_values=True)
            filters = {
                name: query.get(name, [None])[-1] for name in ("external_id", "state", "asset_id")
            }
            self.send_json(HTTPStatus.OK, store.query(**filters))
        elif len(parts) == 3 and method == "GET":
            self.send_json(HTTPStatus.OK, store.get(parts[2]))
        elif (len(parts) == 3 and method == "DELETE") or (
            len(parts) == 4 and parts[3] == "release" and method == "POST"
        ):
            self.send_json(HTTPStatus.OK, store.release(parts[2]))
        else:
            raise EnforcementError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                {"error": "method_not_allowed", "message": f"{method} {url.path}"},
            )


class EnforcementServer(ApiServer):
    """The enforcement API in a background thread: ``with EnforcementServer() as es: es.url``."""

    label = "enforcement server"
    thread_name = "autosec-demo-enforcement"
    handler = _EnforcementHandler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        store_path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(host, port, token, store_path)
        self._clock = clock

    def _open_store(self) -> BlockStore:
        return BlockStore(self.store_path, clock=self._clock)

    def blocks(self) -> list[dict[str, Any]]:
        """Every block, oldest first (a copy)."""
        return self._store().query()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the enforcement API in the foreground until SIGTERM or SIGINT."""
    parser = api_argument_parser(
        "autosec.demo.enforcement",
        "Demo enforcement REST API.",
        port=8090,
        token_env=TOKEN_ENV,
        store_help="JSON file the blocks persist to",
    )
    args = parser.parse_args(argv)
    server = EnforcementServer(args.host, args.port, args.token or None, args.store)
    auth = "bearer token required" if args.token else "no authentication"
    return serve_in_foreground(server, "enforcement API", auth)


if __name__ == "__main__":
    raise SystemExit(main())

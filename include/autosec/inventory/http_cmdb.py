"""Inventory source: a CMDB (or any HTTP JSON API) that lists configuration items page by page.

``get`` only pages through the API and remembers where each record came from (page and item),
so that a rejected record can be reported as ``source page 3 item 7``. ``transform`` is pure: it
reads each record through a :class:`FieldMapping` from the estate file (dotted paths such as
``support_group.name``, value maps such as ``{"Production": "production"}``), validates every
address with :func:`autosec.domain.targets.validate_target` and yields an :class:`Asset` or a
:class:`Reject` naming the field, the page and the item.

Paging (:class:`PagingConfig`) is one of:

- ``page``: ``?page=N&per_page=M`` (names configurable), from ``first_page`` until an empty page
  or, when ``total_path`` names the count in the answer, until that many records were read;
- ``offset``: ``?offset=K&limit=M`` (ServiceNow's ``sysparm_offset``/``sysparm_limit``), where
  ``K`` is the number of records read so far, until an empty page or the total;
- ``cursor``: the answer names the next page at ``next_path`` (``next``, ``meta.next``): either an
  opaque token sent back as ``cursor_param`` or, with ``next_kind: url``, a link to follow, which
  must stay on the endpoint's origin (the credential is never sent elsewhere).

A sync is all or nothing: a transport error, a status other than 200, a body that is not JSON or
not the expected shape, more pages than ``max_pages``, more records than ``max_records``, a cursor
that repeats, or fewer records than the total the API announced raise :class:`SourceError`
naming the source and the page, and nothing is returned: a source that failed retires nothing.

:func:`fetch_json` (one bounded GET that returns JSON or raises SourceError) is shared with the
other HTTP sources.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosec.config.source_sync import SourceSyncSettings
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.domain.targets import InvalidTarget, validate_target
from autosec.inventory.file import InventoryBatch, Origin, Reject, SourceError
from autosec.remediation.actions.http import (
    DEFAULT_TIMEOUT,
    ApiEndpoint,
    Timeout,
    connection_base_url,
    connection_extra,
    connection_token,
    excerpt,
    read_timeout,
)

DEFAULT_MAX_PAGE_BYTES = 32 * 1024 * 1024
ADDRESS_SEPARATOR = ","
_MAX_ID_LENGTH = 200
_CURSOR_SHOWN = 60
_PATH = re.compile(r"^[A-Za-z0-9_$@:-]+(\.[A-Za-z0-9_$@:-]+)*$")
_PARAM = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")
_MISSING = object()


# ---------------------------------------------------------------------------------- config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_path(value: str, what: str) -> str:
    if not _PATH.match(value):
        raise ValueError(f"{what} {value!r} is not a dotted field path (e.g. 'support_group.name')")
    return value


class PagingConfig(_Strict):
    """How the API pages: by page number, by offset, or by a cursor the answer names."""

    style: Literal["page", "offset", "cursor"] = "page"
    records_path: str = Field("result", description="where the records are; '' = the answer")
    page_size: int = Field(100, ge=1, le=10_000)
    size_param: str = "per_page"
    page_param: str = "page"
    first_page: int = Field(1, ge=0)
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_path: str = "next"
    next_kind: Literal["token", "url"] = "token"
    total_path: str | None = None
    max_pages: int = Field(1_000, ge=1, le=1_000_000)
    max_records: int = Field(100_000, ge=1, le=10_000_000)
    max_page_bytes: int = Field(DEFAULT_MAX_PAGE_BYTES, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("records_path")
    @classmethod
    def _records_path(cls, value: str) -> str:
        return value if value == "" else _check_path(value, "records_path")

    @field_validator("next_path", "total_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value, "path")

    @field_validator("size_param", "page_param", "offset_param", "cursor_param")
    @classmethod
    def _params(cls, value: str) -> str:
        if not _PARAM.match(value):
            raise ValueError(
                f"query parameter name {value!r} has characters outside [A-Za-z0-9_.-]"
            )
        return value


class FieldMapping(_Strict):
    """Where each asset field is in a record (dotted paths), and how values become ours.

    A value map is tried exactly, then ignoring case; a value it does not name must already be
    one of ours (``production``, ``business_critical``) or the record is rejected. A missing or
    empty value takes the default when one is set, else the record is rejected.
    """

    id: str
    name: str
    owner: str
    addresses: list[str] = Field(default_factory=list)
    kind: str | None = None
    environment: str | None = None
    criticality: str | None = None
    tags: list[str] = Field(default_factory=list)
    id_prefix: str = Field("", max_length=50, pattern=r"^[A-Za-z0-9_.:/-]*$")
    kind_map: dict[str, AssetKind] = Field(default_factory=dict)
    environment_map: dict[str, Environment] = Field(default_factory=dict)
    criticality_map: dict[str, Criticality] = Field(default_factory=dict)
    default_kind: AssetKind | None = None
    default_environment: Environment | None = None
    default_criticality: Criticality | None = None

    @field_validator("id", "name", "owner", "kind", "environment", "criticality")
    @classmethod
    def _one_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value, "field path")

    @field_validator("addresses", "tags")
    @classmethod
    def _many_paths(cls, value: list[str]) -> list[str]:
        return [_check_path(v, "field path") for v in value]

    @model_validator(mode="after")
    def _every_field_has_a_source(self) -> FieldMapping:
        for name in ("kind", "environment", "criticality"):
            if getattr(self, name) is None and getattr(self, f"default_{name}") is None:
                raise ValueError(f"map {name!r} to a field path or set default_{name}")
        return self


class CmdbSourceConfig(SourceSyncSettings):
    """One CMDB inventory source in the estate file, with its schedule and owner."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["http_cmdb"]
    conn_id: str = Field(min_length=1)
    path: str = Field("/", description="the collection's path under the connection's base URL")
    params: dict[str, str] = Field(default_factory=dict)
    paging: PagingConfig = PagingConfig()
    mapping: FieldMapping

    @field_validator("path")
    @classmethod
    def _collection_path(cls, value: str) -> str:
        return check_collection_path(value)

    @field_validator("params")
    @classmethod
    def _query(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _PARAM.match(k)]
        if bad:
            raise ValueError(f"query parameter names with characters outside [A-Za-z0-9_.-]: {bad}")
        return value


def check_collection_path(value: str) -> str:
    """A path starting with ``/``, without a scheme, host, query or fragment."""
    parts = urlsplit(value)
    if not value.startswith("/") or value.startswith("//") or parts.query or parts.fragment:
        raise ValueError(f"collection path {value!r} must start with '/' and have no query")
    return value


# -------------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class CmdbEndpoint(ApiEndpoint):
    """Where the CMDB is and how to authenticate: a bearer token, or basic auth with a login."""

    what: ClassVar[str] = "CMDB"

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: Timeout = DEFAULT_TIMEOUT
    path: str = "/"
    username: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_collection_path(self.path)

    @classmethod
    def from_connection(cls, connection: Any, path: str = "/") -> CmdbEndpoint:
        """host (a name, or a URL with a base path), port, schema (a further base path); a login
        means basic auth with login and password, no login means the password is a bearer
        token; ``extra.timeout`` (seconds) overrides the read timeout."""
        base_url = connection_base_url(connection)
        if base_url is None:
            raise ValueError("CMDB connection has no host")
        timeout = read_timeout(connection_extra(connection))
        login = getattr(connection, "login", None) or None
        return cls(base_url, connection_token(connection), timeout, path, login)

    def collection_url(self) -> str:
        return self.url(self.path)

    def headers(self) -> dict[str, str]:
        if self.username is None:
            return super().headers()
        headers = dict(self.default_headers)
        pair = f"{self.username}:{self.token or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers


# ------------------------------------------------------------------------------- fetching


def shown(value: str | None) -> str:
    """A cursor as it appears in an error: quoted and cut."""
    if value is None:
        return "none"
    return repr(value[:_CURSOR_SHOWN] + ("…" if len(value) > _CURSOR_SHOWN else ""))


def _where_url(url: str) -> str:
    """The URL without credentials or query, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def fetch_json(
    session: Any,
    endpoint: ApiEndpoint,
    url: str,
    params: Any,
    *,
    source_name: str,
    where: str,
    max_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> Any:
    """GET ``url`` and return its JSON; any failure is a SourceError naming the source and where.

    The body is read within ``max_bytes``; the credential never appears in a message.
    """
    prefix = f"inventory source {source_name!r}: {where}: GET {_where_url(url)}"
    try:
        response = session.get(
            url, params=params, headers=endpoint.headers(), timeout=endpoint.timeout, stream=True
        )
    except (requests.RequestException, OSError) as exc:
        raise SourceError(f"{prefix} did not complete: {type(exc).__name__}: {exc}") from exc
    try:
        if response.status_code != 200:
            body = _read_capped(response, 4096, prefix, strict=False)
            raise SourceError(
                f"{prefix} answered {response.status_code}: {excerpt(body) or '(empty body)'}"
            )
        data = _read_capped(response, max_bytes, prefix, strict=True)
    finally:
        response.close()
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise SourceError(f"{prefix}: the answer is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{prefix}: the answer is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): {excerpt(data)}"
        ) from None


def _read_capped(response: Any, max_bytes: int, prefix: str, *, strict: bool) -> bytes:
    """At most ``max_bytes`` of the body; over the limit is an error when ``strict``."""
    declared = str(response.headers.get("Content-Length") or "")
    if strict and declared.isdigit() and int(declared) > max_bytes:
        raise SourceError(f"{prefix}: the answer is {declared} bytes, over the {max_bytes} limit")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > max_bytes:
                if strict:
                    raise SourceError(f"{prefix}: the answer is over the {max_bytes} byte limit")
                chunks.append(chunk[: max_bytes - (size - len(chunk))])
                break
            chunks.append(chunk)
    except (requests.RequestException, OSError) as exc:
        if not strict:
            return b"".join(chunks)
        raise SourceError(
            f"{prefix}: reading the answer failed: {type(exc).__name__}: {exc}"
        ) from exc
    return b"".join(chunks)


def resolve(document: Any, path: str) -> Any:
    """The value at a dotted ``path``, or ``_MISSING``.

    At each level the rest of the path is first tried as one key, so flat dot-walked keys
    (ServiceNow's ``"support_group.name"``) are found as well as nested objects; a number
    indexes a list.
    """
    if path == "":
        return document
    segments = path.split(".")
    current = document
    i = 0
    while i < len(segments):
        if isinstance(current, Mapping):
            rest = ".".join(segments[i:])
            if rest in current:
                return current[rest]
            if segments[i] not in current:
                return _MISSING
            current = current[segments[i]]
        elif isinstance(current, list) and segments[i].isdigit():
            index = int(segments[i])
            if index >= len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
        i += 1
    return current


@dataclass(frozen=True)
class RawRecord:
    """One record as listed, with where it came from: the 1-based page and 0-based item."""

    page: int | None
    index: int
    data: Any


def get(
    endpoint: CmdbEndpoint,
    session: Any,
    paging: PagingConfig,
    *,
    source_name: str = "http_cmdb",
    params: Mapping[str, str] | None = None,
) -> list[RawRecord]:
    """Every record of the collection, or SourceError: never a partial listing."""
    query = dict(params or {})
    records: list[RawRecord] = []
    seen: set[str] = set()
    url = endpoint.collection_url()
    cursor: str | None = None
    next_url: str | None = None
    total: int | None = None
    page = 0
    while True:
        page += 1
        if page > paging.max_pages:
            raise SourceError(
                f"inventory source {source_name!r}: more than {paging.max_pages} pages "
                f"({len(records)} records so far): raise paging.max_pages or narrow the query"
            )
        page_url, page_params, where = _request_for(
            paging, query, url, page, len(records), cursor, next_url
        )
        document = fetch_json(
            session,
            endpoint,
            page_url,
            page_params,
            source_name=source_name,
            where=where,
            max_bytes=paging.max_page_bytes,
        )
        items = resolve(document, paging.records_path)
        if not isinstance(items, list):
            found = "nothing" if items is _MISSING else f"a {_type_name(items)}"
            raise SourceError(
                f"inventory source {source_name!r}: {where}: expected a list of records at "
                f"{paging.records_path or 'the top level'!r}, found {found}"
            )
        records.extend(RawRecord(page, i, item) for i, item in enumerate(items))
        if len(records) > paging.max_records:
            raise SourceError(
                f"inventory source {source_name!r}: {where}: more than {paging.max_records} "
                "records: raise paging.max_records or narrow the query"
            )
        if paging.total_path is not None:
            total = _total(document, paging.total_path, source_name, where)
        if paging.style == "cursor":
            following = _next(document, paging.next_path, source_name, where)
            if following is None:
                break
            if following in seen:
                raise SourceError(
                    f"inventory source {source_name!r}: {where}: the next cursor "
                    f"{shown(following)} was already followed: the API is paging in a loop"
                )
            seen.add(following)
            if paging.next_kind == "url":
                next_url = _same_origin(endpoint, page_url, following, source_name, where)
            else:
                cursor = following
        elif not items or (total is not None and len(records) >= total):
            break
    if total is not None and len(records) < total:
        raise SourceError(
            f"inventory source {source_name!r}: the API announced {total} records but "
            f"{len(records)} were listed over {page} pages: the listing changed while it was "
            "read or the paging settings do not match the API"
        )
    return records


def _request_for(
    paging: PagingConfig,
    query: dict[str, str],
    url: str,
    page: int,
    read: int,
    cursor: str | None,
    next_url: str | None,
) -> tuple[str, dict[str, Any] | None, str]:
    """The URL, query and description of the ``page``-th request."""
    if paging.style == "page":
        number = paging.first_page + page - 1
        params = {**query, paging.page_param: number, paging.size_param: paging.page_size}
        return url, params, f"page {page} ({paging.page_param}={number})"
    if paging.style == "offset":
        params = {**query, paging.offset_param: read, paging.size_param: paging.page_size}
        return url, params, f"page {page} ({paging.offset_param}={read})"
    if next_url is not None:
        return next_url, None, f"page {page} (next link {shown(next_url)})"
    params = {**query, paging.size_param: paging.page_size}
    if cursor is not None:
        params[paging.cursor_param] = cursor
    return url, params, f"page {page} (cursor {shown(cursor)})"


def _total(document: Any, path: str, source_name: str, where: str) -> int | None:
    value = resolve(document, path)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SourceError(
            f"inventory source {source_name!r}: {where}: the total at {path!r} is {value!r}, "
            "not a count"
        )
    return value


def _next(document: Any, path: str, source_name: str, where: str) -> str | None:
    value = resolve(document, path)
    if value is _MISSING or value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SourceError(
            f"inventory source {source_name!r}: {where}: the next cursor at {path!r} is a "
            f"{_type_name(value)}, expected text"
        )
    return value


def _same_origin(
    endpoint: ApiEndpoint, current: str, link: str, source_name: str, where: str
) -> str:
    """The next link as an absolute URL; refused when it leaves the endpoint's origin."""
    target = urljoin(current, link)
    base, found = urlsplit(endpoint.base_url), urlsplit(target)
    if (found.scheme, found.netloc.lower()) != (base.scheme, base.netloc.lower()):
        raise SourceError(
            f"inventory source {source_name!r}: {where}: the next link {_where_url(target)} "
            f"leaves {base.scheme}://{base.netloc}: not followed (the credential stays home)"
        )
    return target


# ------------------------------------------------------------------------------- transform


class _Problems(list):
    def add(self, field_name: str, path: str | None, problem: str) -> None:
        where = f"field {field_name!r}" + (f" (at {path!r})" if path else "")
        self.append(f"{where}: {problem}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _rows(records: Iterable[RawRecord | Any]) -> Iterable[RawRecord]:
    for position, record in enumerate(records):
        yield record if isinstance(record, RawRecord) else RawRecord(None, position, record)


def _file(source_name: str, page: int | None) -> str:
    return source_name if page is None else f"{source_name} page {page}"


def transform(
    records: Iterable[RawRecord | Mapping[str, Any]], source_name: str, mapping: FieldMapping
) -> InventoryBatch:
    """Turn listed records into assets and rejects. Pure: no I/O, deterministic.

    Plain mappings are accepted too (their position is their place in ``records``).
    """
    if not isinstance(source_name, str) or not source_name.strip():
        raise ValueError(f"source name must be a non-empty string, got {source_name!r}")
    source_name = source_name.strip()
    batch = InventoryBatch()
    first_seen: dict[str, str] = {}
    for row in _rows(records):
        file = _file(source_name, row.page)
        position = f"{file} item {row.index}"
        if not isinstance(row.data, Mapping):
            reason = f"{position}: a record must be a JSON object, found a {_type_name(row.data)}"
            batch.rejects.append(Reject(file, None, {}, reason, row.index, None))
            continue
        problems = _Problems()
        values = _read_record(row.data, mapping, problems)
        asset_id = values["id"]
        if asset_id is not None:
            if asset_id in first_seen:
                problems.add(
                    "id", mapping.id, f"duplicate id {asset_id!r}, first at {first_seen[asset_id]}"
                )
            else:
                first_seen[asset_id] = position
        if problems:
            reason = f"{position}: " + "; ".join(problems)
            batch.rejects.append(Reject(file, None, dict(row.data), reason, row.index, asset_id))
            continue
        batch.assets.append(
            Asset(
                id=asset_id,
                name=values["name"],
                kind=values["kind"],
                source=source_name,
                owner=values["owner"],
                environment=values["environment"],
                criticality=values["criticality"],
                addresses=values["addresses"],
                tags=values["tags"],
            )
        )
        batch.origins.append(Origin(file, None, row.index))
    return batch


def _read_record(
    record: Mapping[str, Any], mapping: FieldMapping, problems: _Problems
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    raw_id = _scalar(record, "id", mapping.id, problems, required=True)
    values["id"] = None
    if raw_id:
        asset_id = mapping.id_prefix + raw_id
        if len(asset_id) > _MAX_ID_LENGTH:
            problems.add("id", mapping.id, f"longer than {_MAX_ID_LENGTH} characters")
        values["id"] = asset_id
    elif raw_id == "":
        problems.add("id", mapping.id, "empty")
    values["name"] = _scalar(record, "name", mapping.name, problems, required=True)
    if values["name"] == "":
        problems.add("name", mapping.name, "empty")
    # An empty owner is let through: the quality suite reports and quarantines it.
    values["owner"] = _scalar(record, "owner", mapping.owner, problems, required=True)
    values["kind"] = _enum(record, "kind", mapping, AssetKind, problems)
    values["environment"] = _enum(record, "environment", mapping, Environment, problems)
    values["criticality"] = _enum(record, "criticality", mapping, Criticality, problems)
    addresses: list[str] = []
    for path in mapping.addresses:
        for item in _texts(record, "addresses", path, problems, split=True):
            try:
                addresses.append(validate_target(item).value)
            except InvalidTarget as exc:
                problems.add("addresses", path, str(exc))
    values["addresses"] = tuple(dict.fromkeys(addresses))
    tags = [t.lower() for path in mapping.tags for t in _texts(record, "tags", path, problems)]
    values["tags"] = tuple(dict.fromkeys(tags))
    return values


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _scalar(
    record: Mapping[str, Any], name: str, path: str | None, problems: _Problems, *, required: bool
) -> str | None:
    """The trimmed text at ``path``: None when absent (a problem when required), "" when empty."""
    value = _MISSING if path is None else resolve(record, path)
    if value is _MISSING or value is None:
        if required:
            problems.add(name, path, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(name, path, f"expected text, found a {_type_name(value)}")
        return None
    text = str(value).strip()
    if _has_control(text):
        problems.add(name, path, "contains control characters")
        return None
    return text


def _texts(
    record: Mapping[str, Any], name: str, path: str, problems: _Problems, *, split: bool = False
) -> list[str]:
    """The non-empty texts at ``path``: a string (split on commas when ``split``) or a list."""
    value = resolve(record, path)
    if value is _MISSING or value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(ADDRESS_SEPARATOR) if split else [value]
    elif isinstance(value, list):
        items = value
    else:
        problems.add(name, path, f"expected text or a list, found a {_type_name(value)}")
        return []
    out = []
    for item in items:
        if not isinstance(item, str):
            problems.add(name, path, f"item {item!r} is a {_type_name(item)}, expected text")
        elif name != "addresses" and _has_control(item):
            # Addresses keep their control characters for validate_target, which names them.
            problems.add(name, path, f"item {item!r} contains control characters")
        elif item.strip():
            out.append(item.strip())
    return out


def _enum(
    record: Mapping[str, Any],
    name: str,
    mapping: FieldMapping,
    enum_class: type,
    problems: _Problems,
) -> Any:
    path: str | None = getattr(mapping, name)
    default = getattr(mapping, f"default_{name}")
    value_map: dict[str, Any] = getattr(mapping, f"{name}_map")
    before = len(problems)
    text = _scalar(record, name, path, problems, required=False)
    if len(problems) > before:
        return None
    if not text:
        if default is None:
            problems.add(name, path, "missing, and no default is set")
        return default
    if text in value_map:
        return value_map[text]
    folded = {key.casefold(): value for key, value in value_map.items()}
    if text.casefold() in folded:
        return folded[text.casefold()]
    normalised = text.lower().replace("-", "_").replace(" ", "_")
    try:
        return enum_class(normalised)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_class)
        problems.add(
            name, path, f"unknown value {text!r}: add it to {name}_map or use one of {allowed}"
        )
        return None


def endpoint_from_connection(connection: Any) -> CmdbEndpoint:
    """The endpoint an Airflow connection describes; ``collect`` adds the source's path."""
    return CmdbEndpoint.from_connection(connection)


def collect(config: CmdbSourceConfig, endpoint: CmdbEndpoint, session: Any) -> InventoryBatch:
    """get then transform, with the source's settings: what a stage calls for this kind.

    The collection path is the source's (``config.path``), whatever path ``endpoint`` had.
    """
    endpoint = replace(endpoint, path=config.path)
    records = get(endpoint, session, config.paging, source_name=config.name, params=config.params)
    return transform(records, config.name, config.mapping)

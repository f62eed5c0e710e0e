"""Inventory source: the Backstage software catalog, read through its REST API.

``get`` pages through ``GET {base}/api/catalog/entities/by-query`` the way Backstage's own client
does: the first request carries ``filter`` and ``limit``, the next ones only ``cursor`` (the
catalog keeps the filter in it) and ``limit``, until ``pageInfo.nextCursor`` is absent. It keeps
where each entity came from (page and item) and fails as a whole (:class:`SourceError` naming the
source, the page and the cursor) on a timeout, a status other than 200, a body that is not JSON
or not ``{"items": [...], "pageInfo": {...}}``, a cursor that repeats, too many pages, or fewer
entities than the ``totalItems`` the catalog announced: a partial catalog must retire nothing.

``transform`` is pure. Components, Resources and Systems become assets; Groups and Users are the
owners assets are resolved against; other kinds are listed in ``ignored``. Entity id =
``{kind}:{namespace}/{name}``, lowercased (Backstage compares refs ignoring case). Each entity is
checked against Backstage's own rules (``apiVersion`` backstage.io/v1alpha1 or v1beta1, a valid
``metadata.name``/``namespace``, tags and string annotations, a ``spec`` with the fields the kind
requires); one that breaks them is rejected with its ref and position, and nothing else is lost.

How an entity becomes an asset (``autosec.io/*`` annotations win over what is derived):

============================  =================================================================
asset field                   from
============================  =================================================================
kind                          ``autosec.io/asset-kind``, else Component type service → service,
                              website → web_app, library → repository, other → service;
                              Resource type database → database, host/server/vm → host,
                              cloud-account (aws-account, gcp-project, azure-subscription) →
                              cloud_account, other → service; System → service (the unit that
                              teams own and name, even when it has no address of its own)
environment                   ``autosec.io/environment``, else ``spec.lifecycle``: production →
                              production, experimental → development, deprecated → production
                              (still serving until it is gone: it keeps production's approval
                              gates), staging → staging, development/dev → development, test →
                              test; no lifecycle → the default (production); an unknown
                              lifecycle → the default, with a warning
criticality                   ``autosec.io/criticality``, else tags ``criticality:<level>`` (the
                              highest wins), else the default (medium)
addresses                     ``autosec.io/addresses: "10.0.0.1, app.example.com"`` only, each
                              checked by validate_target. Links, ``backstage.io/source-location``,
                              techdocs refs and project slugs name code hosts and documentation,
                              not what the owners asked to be scanned: they are never addresses
owner                         ``spec.owner`` as a full ref, with Backstage's defaults (kind
                              group, the entity's namespace): ``team-a`` →
                              ``group:default/team-a``, ``user:jdoe`` → ``user:default/jdoe``
tags                          ``metadata.tags``
============================  =================================================================

A dangling owner (no such Group or User in the catalog), an owner of another kind, a dangling
``spec.system`` and an unknown lifecycle are *warnings* (:class:`EntityWarning`, located and
naming the entity ref), not rejects: the asset is still synced, with the owner written as the
full ref Backstage itself would resolve it to. Nothing is lost (the raw value is in the warning,
and the ref is a lossless expansion of it), and the owner does not change when the missing group
is added later, so no spurious change is recorded. Warnings are kept apart from ``rejects`` so a
stage neither quarantines nor double-counts an asset that was accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from autosec.config.source_sync import SourceSyncSettings
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.domain.targets import InvalidTarget, validate_target
from autosec.inventory.file import InventoryBatch, Origin, Reject, SourceError
from autosec.inventory.http_cmdb import DEFAULT_MAX_PAGE_BYTES, fetch_json, shown
from autosec.remediation.actions.http import (
    DEFAULT_TIMEOUT,
    ApiEndpoint,
    Timeout,
)

ENTITIES_PATH = "/api/catalog/entities/by-query"
ASSET_KINDS = ("component", "resource", "system")
OWNER_KINDS = ("group", "user")
DEFAULT_FILTERS: tuple[str, ...] = (
    ",".join(f"kind={kind}" for kind in (*ASSET_KINDS, *OWNER_KINDS)),
)
DEFAULT_PAGE_SIZE = 200
DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_ENTITIES = 500_000
API_VERSIONS = frozenset({"backstage.io/v1alpha1", "backstage.io/v1beta1"})
DEFAULT_NAMESPACE = "default"

ANNOTATION_ADDRESSES = "autosec.io/addresses"
ANNOTATION_KIND = "autosec.io/asset-kind"
ANNOTATION_ENVIRONMENT = "autosec.io/environment"
ANNOTATION_CRITICALITY = "autosec.io/criticality"
CRITICALITY_TAG = "criticality:"

COMPONENT_TYPES: Mapping[str, AssetKind] = {
    "service": AssetKind.SERVICE,
    "website": AssetKind.WEB_APP,
    "library": AssetKind.REPOSITORY,
}
RESOURCE_TYPES: Mapping[str, AssetKind] = {
    "database": AssetKind.DATABASE,
    "host": AssetKind.HOST,
    "server": AssetKind.HOST,
    "vm": AssetKind.HOST,
    "virtual-machine": AssetKind.HOST,
    "cloud-account": AssetKind.CLOUD_ACCOUNT,
    "aws-account": AssetKind.CLOUD_ACCOUNT,
    "gcp-project": AssetKind.CLOUD_ACCOUNT,
    "azure-subscription": AssetKind.CLOUD_ACCOUNT,
}
LIFECYCLES: Mapping[str, Environment] = {
    "production": Environment.PRODUCTION,
    "experimental": Environment.DEVELOPMENT,
    "deprecated": Environment.PRODUCTION,
    "staging": Environment.STAGING,
    "development": Environment.DEVELOPMENT,
    "dev": Environment.DEVELOPMENT,
    "test": Environment.TEST,
}
# spec fields each kind must carry (Backstage's own schemas), as text.
REQUIRED_SPEC: Mapping[str, tuple[str, ...]] = {
    "component": ("type", "lifecycle", "owner"),
    "resource": ("type", "owner"),
    "system": ("owner",),
    "group": ("type",),
    "user": (),
}

# Backstage's validators: object names, namespaces (DNS labels), kinds and tags.
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_NAMESPACE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_KIND = re.compile(r"^[a-zA-Z][a-z0-9A-Z]*$")
_TAG = re.compile(r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$")
_MAX_NAME = 63


# -------------------------------------------------------------------------------- config


class BackstageSourceConfig(SourceSyncSettings):
    """One Backstage catalog inventory source in the estate file, with its schedule and owner."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["backstage"]
    conn_id: str = Field("autosec_backstage", min_length=1)
    filters: list[str] = Field(default_factory=lambda: list(DEFAULT_FILTERS), min_length=1)
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=1000)
    max_pages: int = Field(DEFAULT_MAX_PAGES, ge=1, le=1_000_000)
    max_entities: int = Field(DEFAULT_MAX_ENTITIES, ge=1, le=10_000_000)
    default_environment: Environment = Environment.PRODUCTION
    default_criticality: Criticality = Criticality.MEDIUM

    @field_validator("filters")
    @classmethod
    def _filters(cls, filters: list[str]) -> list[str]:
        return [check_filter(f) for f in filters]


def check_filter(value: str) -> str:
    """A catalog filter ``key=value,key=value`` (or ``key`` alone: the key exists)."""
    statements = [s.strip() for s in str(value).split(",") if s.strip()]
    if not statements:
        raise ValueError(f"catalog filter {value!r} is empty")
    for statement in statements:
        key = statement.partition("=")[0].strip()
        if not key or any(ord(ch) < 32 or ch in "&#" for ch in statement):
            raise ValueError(f"catalog filter {value!r}: {statement!r} is not key=value")
    return ",".join(statements)


# ------------------------------------------------------------------------------ endpoint


@dataclass(frozen=True)
class BackstageEndpoint(ApiEndpoint):
    """The Backstage backend's base URL (the catalog is under ``/api/catalog``) and a token."""

    what: ClassVar[str] = "Backstage catalog"

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: Timeout = DEFAULT_TIMEOUT


# ----------------------------------------------------------------------------------- get


@dataclass(frozen=True)
class RawEntity:
    """One entity as listed: the 1-based page, the 0-based item, and the cursor that got it."""

    page: int | None
    index: int
    entity: Any
    cursor: str | None = None


def get(
    endpoint: BackstageEndpoint,
    session: Any,
    filters: Sequence[str] = DEFAULT_FILTERS,
    page_size: int = DEFAULT_PAGE_SIZE,
    *,
    source_name: str = "backstage",
    max_pages: int = DEFAULT_MAX_PAGES,
    max_entities: int = DEFAULT_MAX_ENTITIES,
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> list[RawEntity]:
    """Every entity the filters select, or SourceError: never a partial catalog."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    filters = [check_filter(f) for f in ([filters] if isinstance(filters, str) else filters)]
    url = endpoint.url(ENTITIES_PATH)
    entities: list[RawEntity] = []
    seen: set[str] = set()
    cursor: str | None = None
    total: int | None = None
    page = 0
    while True:
        page += 1
        where = f"page {page} (cursor {shown(cursor)})"
        if page > max_pages:
            raise SourceError(
                f"inventory source {source_name!r}: {where}: more than {max_pages} pages "
                f"({len(entities)} entities so far): raise max_pages or narrow the filters"
            )
        params: list[tuple[str, Any]] = [("limit", page_size)]
        if cursor is None:
            params += [("filter", f) for f in filters]
        else:
            params.append(("cursor", cursor))
        document = fetch_json(
            session,
            endpoint,
            url,
            params,
            source_name=source_name,
            where=where,
            max_bytes=max_page_bytes,
        )
        items, following, announced = _page_of(document, source_name, where)
        entities.extend(RawEntity(page, i, item, cursor) for i, item in enumerate(items))
        if len(entities) > max_entities:
            raise SourceError(
                f"inventory source {source_name!r}: {where}: more than {max_entities} entities: "
                "raise max_entities or narrow the filters"
            )
        total = announced if announced is not None else total
        if following is None:
            break
        if following in seen:
            raise SourceError(
                f"inventory source {source_name!r}: {where}: the next cursor "
                f"{shown(following)} was already followed: the catalog is paging in a loop"
            )
        seen.add(following)
        cursor = following
    if total is not None and len(entities) < total:
        raise SourceError(
            f"inventory source {source_name!r}: the catalog announced {total} entities but "
            f"{len(entities)} were listed over {page} pages: the catalog changed while it was "
            "read; nothing is synced"
        )
    return entities


def _page_of(
    document: Any, source_name: str, where: str
) -> tuple[list[Any], str | None, int | None]:
    """The items, the next cursor and the announced total of one answer."""
    prefix = f"inventory source {source_name!r}: {where}"
    if not isinstance(document, Mapping):
        raise SourceError(
            f"{prefix}: the answer is a {_type_name(document)}, expected an object with "
            "'items' and 'pageInfo'"
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise SourceError(f"{prefix}: 'items' is {_found(items)}, expected a list of entities")
    page_info = document.get("pageInfo", {})
    if not isinstance(page_info, Mapping):
        raise SourceError(f"{prefix}: 'pageInfo' is {_found(page_info)}, expected an object")
    following = page_info.get("nextCursor")
    if following is not None and not isinstance(following, str):
        raise SourceError(f"{prefix}: 'pageInfo.nextCursor' is {_found(following)}, not text")
    total = document.get("totalItems")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise SourceError(f"{prefix}: 'totalItems' is {total!r}, not a count")
    return items, following or None, total


def _found(value: Any) -> str:
    return "missing" if value is None else f"a {_type_name(value)}"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# ----------------------------------------------------------------------------- transform


@dataclass(frozen=True)
class Owner:
    """A Group or User of the catalog, which assets' owners resolve to."""

    ref: str
    kind: str
    name: str
    title: str | None = None
    email: str | None = None


class EntityWarning(Reject):
    """A located remark about an entity that was still synced (e.g. a dangling owner).

    Shaped like a Reject (position, raw, reason, ``asset_id`` = the entity ref) so a stage can
    record it the same way, but kept apart from rejects: the asset it names was accepted.
    """


@dataclass
class CatalogBatch(InventoryBatch):
    """An InventoryBatch, plus the owners found, the warnings, and the refs of ignored kinds."""

    owners: dict[str, Owner] = field(default_factory=dict)
    warnings: list[EntityWarning] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass
class _Checked:
    """One listed entity after the envelope checks."""

    row: RawEntity
    file: str
    position: str
    ref: str | None
    kind: str | None
    problems: list[str]

    @property
    def entity(self) -> Mapping[str, Any]:
        return self.row.entity

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.row.entity["metadata"]

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.row.entity["spec"]

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or DEFAULT_NAMESPACE).lower()

    def where(self) -> str:
        return f"{self.position} ({self.ref or 'unidentified entity'})"


def transform(
    entities: Iterable[RawEntity | Mapping[str, Any]],
    source_name: str,
    *,
    default_environment: Environment = Environment.PRODUCTION,
    default_criticality: Criticality = Criticality.MEDIUM,
) -> CatalogBatch:
    """Turn catalog entities into assets, owners, rejects and warnings. Pure: no I/O.

    Plain mappings are accepted too (their position is their place in ``entities``).
    """
    if not isinstance(source_name, str) or not source_name.strip():
        raise ValueError(f"source name must be a non-empty string, got {source_name!r}")
    source_name = source_name.strip()
    batch = CatalogBatch()
    checked = [_check(row, source_name) for row in _rows(entities)]

    first_seen: dict[str, str] = {}
    for item in checked:
        if item.problems or item.ref is None or item.kind not in (*ASSET_KINDS, *OWNER_KINDS):
            continue
        if item.ref in first_seen:
            item.problems.append(f"duplicate entity {item.ref}, first at {first_seen[item.ref]}")
        else:
            first_seen[item.ref] = item.position

    valid = [item for item in checked if not item.problems]
    for item in valid:
        if item.kind in OWNER_KINDS:
            batch.owners[item.ref] = _owner(item)
    systems = {item.ref for item in valid if item.kind == "system"}

    for item in checked:
        if item.problems:
            _reject(batch, item, item.problems)
        elif item.kind in ASSET_KINDS:
            _add_asset(batch, item, source_name, systems, default_environment, default_criticality)
        elif item.kind not in OWNER_KINDS:
            batch.ignored.append(item.ref or item.position)
    return batch


def _rows(entities: Iterable[RawEntity | Any]) -> Iterable[RawEntity]:
    for position, entity in enumerate(entities):
        yield entity if isinstance(entity, RawEntity) else RawEntity(None, position, entity)


def _check(row: RawEntity, source_name: str) -> _Checked:
    """The envelope checks every entity must pass, whatever its kind."""
    file = source_name if row.page is None else f"{source_name} page {row.page}"
    item = _Checked(row, file, f"{file} item {row.index}", None, None, [])
    entity = row.entity
    problems = item.problems
    if not isinstance(entity, Mapping):
        problems.append(f"an entity must be an object, found a {_type_name(entity)}")
        return item
    kind = entity.get("kind")
    metadata = entity.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    if isinstance(kind, str) and kind and isinstance(name, str) and name:
        ns = namespace if isinstance(namespace, str) and namespace else DEFAULT_NAMESPACE
        item.ref = f"{kind}:{ns}/{name}".lower()
    if not isinstance(kind, str) or not _KIND.match(kind):
        problems.append(f"kind {kind!r} is not a valid kind" if kind else "kind missing")
        return item
    item.kind = kind.lower()
    if item.kind not in (*ASSET_KINDS, *OWNER_KINDS):
        return item  # not used: listed in ``ignored`` without further checks
    api_version = entity.get("apiVersion")
    if api_version not in API_VERSIONS:
        problems.append(
            f"apiVersion {api_version!r} is not one of {', '.join(sorted(API_VERSIONS))}"
            if api_version
            else "apiVersion missing"
        )
    if not isinstance(metadata, Mapping):
        problems.append("metadata missing" if metadata is None else "metadata is not an object")
        return item
    _check_metadata(metadata, problems)
    spec = entity.get("spec")
    if not isinstance(spec, Mapping):
        problems.append("spec missing" if spec is None else "spec is not an object")
        return item
    for key in REQUIRED_SPEC[item.kind]:
        value = spec.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"spec.{key} missing" if value is None else f"spec.{key} is not text")
    return item


def _check_metadata(metadata: Mapping[str, Any], problems: list[str]) -> None:
    name = metadata.get("name")
    if name is None:
        problems.append("metadata.name missing")
    elif not isinstance(name, str) or len(name) > _MAX_NAME or not _NAME.match(name):
        problems.append(
            f"metadata.name {name!r} is not a valid name (letters, digits and -_. between them, "
            f"at most {_MAX_NAME} characters)"
        )
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str)
        or len(namespace) > _MAX_NAME
        or not _NAMESPACE.match(namespace)
    ):
        problems.append(f"metadata.namespace {namespace!r} is not a valid namespace")
    tags = metadata.get("tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, list):
        problems.append(f"metadata.tags is a {_type_name(tags)}, expected a list")
    else:
        for tag in tags:
            if not isinstance(tag, str) or len(tag) > _MAX_NAME or not _TAG.match(tag):
                problems.append(
                    f"metadata.tags: {tag!r} is not a valid tag (lowercase letters, digits and "
                    "':+#', joined by '-')"
                )
    annotations = metadata.get("annotations", {})
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, Mapping):
        problems.append(f"metadata.annotations is a {_type_name(annotations)}, expected an object")
    else:
        for key, value in annotations.items():
            if not isinstance(value, str):
                problems.append(f"metadata.annotations[{key!r}] is a {_type_name(value)}, not text")


def _reject(batch: CatalogBatch, item: _Checked, problems: list[str]) -> None:
    """Reject with the entity ref as ``asset_id`` (an asset by that id must not be retired).

    A Group or User ref names no asset, so it protects nothing and keeps the sweep going; only
    an entity without a readable ref (which could be any asset) is left unidentified.
    """
    raw = dict(item.entity) if isinstance(item.entity, Mapping) else {}
    reason = f"{item.where()}: " + "; ".join(problems)
    batch.rejects.append(Reject(item.file, None, raw, reason, item.row.index, item.ref))


def _warn(batch: CatalogBatch, item: _Checked, message: str) -> None:
    reason = f"{item.where()}: {message}"
    raw = dict(item.entity)
    batch.warnings.append(EntityWarning(item.file, None, raw, reason, item.row.index, item.ref))


def _owner(item: _Checked) -> Owner:
    metadata, spec = item.metadata, item.spec
    profile = spec.get("profile") if isinstance(spec.get("profile"), Mapping) else {}
    title = metadata.get("title") or profile.get("displayName")
    email = profile.get("email")
    return Owner(
        ref=item.ref,
        kind=item.kind,
        name=str(metadata["name"]),
        title=title if isinstance(title, str) else None,
        email=email if isinstance(email, str) else None,
    )


def parse_ref(value: str, default_kind: str, default_namespace: str) -> str:
    """A full, lowercased entity ref from ``[kind:][namespace/]name``, or ValueError.

    Backstage's own rule: the kind and the namespace default to the ones given.
    """
    text = value.strip()
    kind, colon, rest = text.partition(":")
    if not colon:
        kind, rest = default_kind, text
    namespace, slash, name = rest.partition("/")
    if not slash:
        namespace, name = default_namespace, rest
    if not kind or not namespace or not name or ":" in rest or "/" in name:
        raise ValueError(f"{value!r} is not an entity ref ([kind:][namespace/]name)")
    return f"{kind}:{namespace}/{name}".lower()


def _add_asset(
    batch: CatalogBatch,
    item: _Checked,
    source_name: str,
    systems: set[str],
    default_environment: Environment,
    default_criticality: Criticality,
) -> None:
    metadata, spec = item.metadata, item.spec
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    tags: list[str] = list(metadata.get("tags") or [])
    problems: list[str] = []
    notes: list[str] = []

    kind = _asset_kind(item.kind, spec, annotations, problems)
    environment = _environment(spec, annotations, default_environment, problems, notes)
    criticality = _criticality(annotations, tags, default_criticality, problems)
    addresses = _addresses(annotations, problems)
    owner = None
    try:
        owner = parse_ref(spec["owner"], "group", item.namespace)
    except ValueError as exc:
        problems.append(f"spec.owner {exc}")
    if owner is not None:
        owner_kind = owner.split(":", 1)[0]
        if owner_kind not in OWNER_KINDS:
            notes.append(
                f"owner {spec['owner']!r} is a {owner_kind}, not a Group or User: "
                f"the asset keeps the owner {owner}"
            )
        elif owner not in batch.owners:
            notes.append(
                f"owner {spec['owner']!r} ({owner}) is not a Group or User in the catalog: "
                f"the asset keeps the owner {owner}"
            )
    system = spec.get("system")
    if isinstance(system, str) and system.strip():
        try:
            system_ref = parse_ref(system, "system", item.namespace)
        except ValueError as exc:
            problems.append(f"spec.system {exc}")
        else:
            if system_ref not in systems:
                notes.append(f"system {system!r} ({system_ref}) is not a System in the catalog")
    if problems:
        _reject(batch, item, problems)
        return
    for note in notes:
        _warn(batch, item, note)
    batch.assets.append(
        Asset(
            id=item.ref,
            name=str(metadata["name"]),
            kind=kind,
            source=source_name,
            owner=owner,
            environment=environment,
            criticality=criticality,
            addresses=addresses,
            tags=tuple(dict.fromkeys(t.lower() for t in tags)),
        )
    )
    batch.origins.append(Origin(item.file, None, item.row.index))


def _enum_value(enum_class: type, value: str) -> Any:
    """The member for ``value`` (case, '-' and ' ' forgiven), or ValueError naming the choices."""
    normalised = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return enum_class(normalised)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_class)
        raise ValueError(f"unknown value {value!r}: expected one of {allowed}") from None


def _asset_kind(
    kind: str, spec: Mapping[str, Any], annotations: Mapping[str, str], problems: list[str]
) -> AssetKind | None:
    if ANNOTATION_KIND in annotations:
        try:
            return _enum_value(AssetKind, annotations[ANNOTATION_KIND])
        except ValueError as exc:
            problems.append(f"annotation {ANNOTATION_KIND}: {exc}")
            return None
    spec_type = str(spec.get("type") or "").strip().lower()
    if kind == "component":
        return COMPONENT_TYPES.get(spec_type, AssetKind.SERVICE)
    if kind == "resource":
        return RESOURCE_TYPES.get(spec_type, AssetKind.SERVICE)
    return AssetKind.SERVICE


def _environment(
    spec: Mapping[str, Any],
    annotations: Mapping[str, str],
    default: Environment,
    problems: list[str],
    notes: list[str],
) -> Environment | None:
    if ANNOTATION_ENVIRONMENT in annotations:
        try:
            return _enum_value(Environment, annotations[ANNOTATION_ENVIRONMENT])
        except ValueError as exc:
            problems.append(f"annotation {ANNOTATION_ENVIRONMENT}: {exc}")
            return None
    lifecycle = spec.get("lifecycle")
    if lifecycle is None or (isinstance(lifecycle, str) and not lifecycle.strip()):
        return default
    if not isinstance(lifecycle, str):
        problems.append(f"spec.lifecycle is a {_type_name(lifecycle)}, not text")
        return None
    found = LIFECYCLES.get(lifecycle.strip().lower())
    if found is None:
        notes.append(
            f"lifecycle {lifecycle!r} is not one of {', '.join(LIFECYCLES)}: "
            f"environment {default.value} assumed"
        )
        return default
    return found


def _criticality(
    annotations: Mapping[str, str], tags: list[str], default: Criticality, problems: list[str]
) -> Criticality | None:
    if ANNOTATION_CRITICALITY in annotations:
        try:
            return _enum_value(Criticality, annotations[ANNOTATION_CRITICALITY])
        except ValueError as exc:
            problems.append(f"annotation {ANNOTATION_CRITICALITY}: {exc}")
            return None
    levels = []
    for tag in tags:
        if tag.startswith(CRITICALITY_TAG):
            try:
                levels.append(_enum_value(Criticality, tag.removeprefix(CRITICALITY_TAG)))
            except ValueError as exc:
                problems.append(f"tag {tag!r}: {exc}")
    ranked = list(Criticality)
    return max(levels, key=ranked.index) if levels else default


def _addresses(annotations: Mapping[str, str], problems: list[str]) -> tuple[str, ...]:
    value = annotations.get(ANNOTATION_ADDRESSES)
    if value is None:
        return ()
    out = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            out.append(validate_target(item).value)
        except InvalidTarget as exc:
            problems.append(f"annotation {ANNOTATION_ADDRESSES}: {exc}")
    return tuple(dict.fromkeys(out))


def endpoint_from_connection(connection: Any) -> BackstageEndpoint:
    """The endpoint an Airflow connection describes (any object with its attributes)."""
    return BackstageEndpoint.from_connection(connection)


def collect(
    config: BackstageSourceConfig, endpoint: BackstageEndpoint, session: Any
) -> CatalogBatch:
    """get then transform, with the source's settings: what a stage calls for this kind."""
    entities = get(
        endpoint,
        session,
        config.filters,
        config.page_size,
        source_name=config.name,
        max_pages=config.max_pages,
        max_entities=config.max_entities,
    )
    return transform(
        entities,
        config.name,
        default_environment=config.default_environment,
        default_criticality=config.default_criticality,
    )

"""Read OSV advisories (https://ossf.github.io/osv-schema/) into plain dataclasses.

Three shapes of input, one record type:

- a folder of records, JSON (the GitHub advisory database) or YAML (the PyPA database);
- the ``all.zip`` that OSV publishes per ecosystem, read member by member with ``zipfile``
  (nothing is extracted to disk; a member with a path-traversal name, or larger than the cap,
  refuses the whole archive, because such an archive was not written by OSV);
- a single record file.

YAML is read with a loader that keeps every scalar but ``true``/``false``/``null`` as text: a
version written ``1.10`` must stay ``"1.10"``, not become the float ``1.1``, and a timestamp
must stay the string the record carries.

Malformed input raises :class:`OsvError`, whose message names the file (and the archive member)
and the field path, e.g. ``GHSA-x.json: affected[0].ranges[1].events[2]: unknown event 'fix'``.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER", "GIT"})
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
RECORD_SUFFIXES = (".json", ".yaml", ".yml")
MiB = 1024 * 1024
DEFAULT_MAX_MEMBER_BYTES = 16 * MiB
DEFAULT_MAX_FILE_BYTES = 16 * MiB


class OsvError(ValueError):
    """An OSV record or archive that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class RangeEvent:
    kind: str  # one of EVENT_KINDS
    version: str


@dataclass(frozen=True)
class AffectedRange:
    type: str  # ECOSYSTEM, SEMVER or GIT
    events: tuple[RangeEvent, ...]
    repo: str | None = None


@dataclass(frozen=True)
class AffectedPackage:
    ecosystem: str
    name: str
    purl: str | None
    ranges: tuple[AffectedRange, ...] = ()
    versions: tuple[str, ...] = ()
    database_specific: Mapping[str, Any] = field(default_factory=dict)
    ecosystem_specific: Mapping[str, Any] = field(default_factory=dict)

    @property
    def last_known_affected_version_range(self) -> str | None:
        """GHSA's hint for advisories without a fix (``"<= 1.33"``); the events stay
        authoritative, this only qualifies what is known above them."""
        value = self.database_specific.get("last_known_affected_version_range")
        return value if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class SeverityVector:
    type: str  # CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu, ...
    score: str  # the vector string (or a qualitative score for non-CVSS types)


@dataclass(frozen=True)
class Advisory:
    id: str
    modified: datetime
    aliases: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    published: datetime | None = None
    withdrawn: datetime | None = None
    affected: tuple[AffectedPackage, ...] = ()
    severity: tuple[SeverityVector, ...] = ()
    database_specific: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()

    @property
    def all_ids(self) -> tuple[str, ...]:
        """The record's id and its aliases, the id first."""
        return (self.id, *(a for a in self.aliases if a != self.id))

    @property
    def cve_ids(self) -> tuple[str, ...]:
        return tuple(sorted({i for i in self.all_ids if i.startswith("CVE-")}))

    @property
    def cwe_ids(self) -> tuple[str, ...]:
        cwes = self.database_specific.get("cwe_ids") or ()
        return tuple(c for c in cwes if isinstance(c, str))

    @property
    def ghsa_severity(self) -> str | None:
        """GitHub's qualitative severity (LOW, MODERATE, HIGH, CRITICAL), when present."""
        value = self.database_specific.get("severity")
        return value.upper() if isinstance(value, str) and value.strip() else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :func:`advisory_from_dict` reads back (the store keeps it)."""
        return {
            "id": self.id,
            "modified": self.modified.isoformat(),
            "aliases": list(self.aliases),
            "summary": self.summary,
            "details": self.details,
            "published": self.published.isoformat() if self.published else None,
            "withdrawn": self.withdrawn.isoformat() if self.withdrawn else None,
            "affected": [
                {
                    "package": {"ecosystem": a.ecosystem, "name": a.name, "purl": a.purl},
                    "ranges": [
                        {
                            "type": r.type,
                            "events": [{e.kind: e.version} for e in r.events],
                            **({"repo": r.repo} if r.repo else {}),
                        }
                        for r in a.ranges
                    ],
                    "versions": list(a.versions),
                    "database_specific": dict(a.database_specific),
                    "ecosystem_specific": dict(a.ecosystem_specific),
                }
                for a in self.affected
            ],
            "severity": [{"type": s.type, "score": s.score} for s in self.severity],
            "database_specific": dict(self.database_specific),
            "references": [{"url": url} for url in self.references],
        }


# --- reading ------------------------------------------------------------------------------


def iter_osv(path: str | Path, **limits: int) -> Iterator[Advisory]:
    """Every advisory under ``path``: a folder, an OSV ``all.zip``, or one record file."""
    path = Path(path)
    if path.is_dir():
        yield from iter_osv_folder(path)
    elif path.suffix.lower() == ".zip":
        yield from iter_osv_zip(path, **limits)
    elif path.is_file():
        yield read_osv_file(path)
    else:
        raise OsvError(f"{path}: no such OSV folder, zip or record file")


def iter_osv_folder(folder: str | Path) -> Iterator[Advisory]:
    """Records in ``folder`` and below, in a stable (sorted) order; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OsvError(f"{folder}: not a folder")
    paths = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in RECORD_SUFFIXES
    )
    for path in paths:
        yield read_osv_file(path)


def read_osv_file(path: str | Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Advisory:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise OsvError(f"{path}: {size} bytes, more than the {max_bytes}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise OsvError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_osv_bytes(data, str(path), yaml_format=path.suffix.lower() in (".yaml", ".yml"))


def iter_osv_zip(
    path: str | Path,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_members: int = 2_000_000,
) -> Iterator[Advisory]:
    """Advisories from an OSV ``all.zip``, one member at a time (never extracted to disk).

    Refused, with the member named: a path-traversal or absolute member name, a member larger
    than ``max_member_bytes`` (checked on the bytes read, not only on the header, which a
    hostile archive can fake), more than ``max_members`` members, encrypted members.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise OsvError(f"{path}: not a readable zip archive: {exc}") from exc
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise OsvError(f"{path}: {len(members)} members, more than the limit {max_members}")
        for info in members:
            if info.is_dir():
                continue
            source = f"{path}!{info.filename}"
            _check_member_name(source, info.filename)
            if not info.filename.lower().endswith(RECORD_SUFFIXES):
                continue
            if info.flag_bits & 0x1:
                raise OsvError(f"{source}: encrypted member")
            if info.file_size > max_member_bytes:
                raise OsvError(
                    f"{source}: {info.file_size} bytes, more than the {max_member_bytes}-byte "
                    "member limit"
                )
            try:
                with archive.open(info) as member:
                    data = member.read(max_member_bytes + 1)
            except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                raise OsvError(f"{source}: cannot read member: {exc}") from exc
            if len(data) > max_member_bytes:
                raise OsvError(f"{source}: expands past the {max_member_bytes}-byte member limit")
            yield parse_osv_bytes(data, source, yaml_format=not source.lower().endswith(".json"))


def _check_member_name(source: str, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if (
        name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name)
        or ".." in pure.parts
        or "\0" in name
    ):
        raise OsvError(f"{source}: refusing member name {name!r} (absolute or path traversal)")


def parse_osv_bytes(data: bytes, source: str, yaml_format: bool = False) -> Advisory:
    """One record from its bytes; ``source`` names it in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OsvError(f"{source}: not UTF-8 (byte {exc.start})") from exc
    if yaml_format:
        try:
            record = yaml.load(text, Loader=_TextScalarLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or exc
            raise OsvError(f"{source}: {where}invalid YAML: {problem}") from exc
    else:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OsvError(
                f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
            ) from exc
    return parse_osv_record(record, source)


class _TextScalarLoader(yaml.SafeLoader):
    """SafeLoader without the int, float and timestamp resolvers: versions stay text."""


_TextScalarLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- validation ---------------------------------------------------------------------------


def parse_osv_record(record: Any, source: str) -> Advisory:
    """Validate one decoded record (a mapping) and build the :class:`Advisory`."""
    if not isinstance(record, Mapping):
        raise OsvError(f"{source}: expected an OSV record (a mapping), got {_kind(record)}")
    where = _Where(source)
    advisory_id = _text(record, "id", where, required=True)
    if not advisory_id.strip():
        raise OsvError(f"{source}: id: empty")
    where = _Where(source, advisory_id)
    return Advisory(
        id=advisory_id,
        modified=_required_timestamp(record, "modified", where),
        aliases=tuple(_text_list(record, "aliases", where)),
        summary=_text(record, "summary", where) or "",
        details=_text(record, "details", where) or "",
        published=_timestamp(record, "published", where),
        withdrawn=_timestamp(record, "withdrawn", where),
        affected=tuple(
            _affected(item, where.at(f"affected[{i}]"))
            for i, item in enumerate(_list(record, "affected", where))
        ),
        severity=tuple(
            _severity(item, where.at(f"severity[{i}]"))
            for i, item in enumerate(_list(record, "severity", where))
        ),
        database_specific=_mapping(record, "database_specific", where),
        references=tuple(
            ref["url"]
            for ref in _list(record, "references", where)
            if isinstance(ref, Mapping) and isinstance(ref.get("url"), str)
        ),
    )


def advisory_from_dict(data: Mapping[str, Any]) -> Advisory:
    """Read back :meth:`Advisory.to_dict` (the same validation as a feed record)."""
    return parse_osv_record(data, f"stored advisory {data.get('id')!r}")


@dataclass(frozen=True)
class _Where:
    source: str
    advisory_id: str | None = None
    path: str = ""

    def at(self, part: str) -> _Where:
        return _Where(self.source, self.advisory_id, f"{self.path}.{part}" if self.path else part)

    def error(self, key: str | None, problem: str) -> OsvError:
        name = self.source
        if self.advisory_id and self.advisory_id not in self.source:
            name = f"{name} ({self.advisory_id})"
        field_path = ".".join(p for p in (self.path, key) if p)
        return OsvError(f"{name}: {field_path + ': ' if field_path else ''}{problem}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _text(record: Mapping, key: str, where: _Where, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise where.error(key, "missing")
        return None
    if not isinstance(value, str):
        raise where.error(key, f"expected text, got {_kind(value)} {value!r}")
    return value


def _list(record: Mapping, key: str, where: _Where) -> list:
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(key, f"expected a list, got {_kind(value)}")
    return value


def _text_list(record: Mapping, key: str, where: _Where) -> list[str]:
    values = _list(record, key, where)
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise where.error(f"{key}[{index}]", f"expected non-empty text, got {value!r}")
    return values


def _mapping(record: Mapping, key: str, where: _Where) -> dict[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise where.error(key, f"expected a mapping, got {_kind(value)}")
    return dict(value)


def _timestamp(record: Mapping, key: str, where: _Where, required: bool = False) -> datetime | None:
    value = record.get(key)
    if value is None:
        if required:
            raise where.error(key, "missing")
        return None
    if isinstance(value, datetime):  # a YAML document read by another loader
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise where.error(key, f"not an RFC 3339 timestamp: {value!r}") from None
    else:
        raise where.error(key, f"expected a timestamp, got {_kind(value)} {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _required_timestamp(record: Mapping, key: str, where: _Where) -> datetime:
    value = _timestamp(record, key, where, required=True)
    if value is None:  # _timestamp raises for a missing required value; this keeps types exact
        raise where.error(key, "missing")
    return value


def _affected(item: Any, where: _Where) -> AffectedPackage:
    if not isinstance(item, Mapping):
        raise where.error(None, f"expected a mapping, got {_kind(item)}")
    package = item.get("package") or {}
    if not isinstance(package, Mapping):
        raise where.error("package", f"expected a mapping, got {_kind(package)}")
    package_where = where.at("package")
    ecosystem = _text(package, "ecosystem", package_where) or ""
    name = _text(package, "name", package_where) or ""
    if bool(ecosystem) != bool(name):
        raise package_where.error(None, "needs both ecosystem and name (or neither)")
    ranges = tuple(
        _range(r, where.at(f"ranges[{i}]")) for i, r in enumerate(_list(item, "ranges", where))
    )
    versions = _list(item, "versions", where)
    for index, version in enumerate(versions):
        if not isinstance(version, str) or not version.strip():
            raise where.error(f"versions[{index}]", f"expected a version string, got {version!r}")
    if not name and any(r.type != "GIT" for r in ranges):
        raise where.error("package", "missing, but needed for ECOSYSTEM and SEMVER ranges")
    return AffectedPackage(
        ecosystem=ecosystem,
        name=name,
        purl=_text(package, "purl", package_where),
        ranges=ranges,
        versions=tuple(versions),
        database_specific=_mapping(item, "database_specific", where),
        ecosystem_specific=_mapping(item, "ecosystem_specific", where),
    )


def _range(item: Any, where: _Where) -> AffectedRange:
    if not isinstance(item, Mapping):
        raise where.error(None, f"expected a mapping, got {_kind(item)}")
    range_type = _text(item, "type", where, required=True)
    if range_type not in RANGE_TYPES:
        raise where.error("type", f"unknown range type {range_type!r} ({', '.join(RANGE_TYPES)})")
    events: list[RangeEvent] = []
    for index, event in enumerate(_list(item, "events", where)):
        if not isinstance(event, Mapping) or len(event) != 1:
            raise where.error(f"events[{index}]", f"expected one 'kind: version' pair: {event!r}")
        ((kind, version),) = event.items()
        if kind not in EVENT_KINDS:
            raise where.error(f"events[{index}]", f"unknown event {kind!r}")
        if not isinstance(version, str) or not version.strip():
            raise where.error(f"events[{index}]", f"{kind}: expected a version, got {version!r}")
        events.append(RangeEvent(kind, version.strip()))
    if not events:
        raise where.error("events", "empty")
    if not any(e.kind == "introduced" for e in events):
        raise where.error("events", "no 'introduced' event")
    repo = _text(item, "repo", where)
    if range_type == "GIT" and not repo:
        raise where.error("repo", "missing (required for GIT ranges)")
    return AffectedRange(range_type, tuple(events), repo)


def _severity(item: Any, where: _Where) -> SeverityVector:
    if not isinstance(item, Mapping):
        raise where.error(None, f"expected a mapping, got {_kind(item)}")
    return SeverityVector(
        _text(item, "type", where, required=True) or "",
        _text(item, "score", where, required=True) or "",
    )

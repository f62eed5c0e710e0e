"""Inventory source: a CSV, JSON or YAML file kept by the people who own the assets.

``get`` only reads and parses the file and remembers where each row came from, so that every
rejected row can be reported as ``file:line``. ``transform`` is pure: it normalises the values,
validates every address with :func:`autosec.domain.targets.validate_target` (inventory values are
untrusted and later reach engine argv lists) and turns each row into an :class:`Asset` or a
:class:`Reject` that names the field, the file and the line.

Columns / keys: ``id`` (optional, defaults to ``name``), ``name``, ``kind``, ``addresses``,
``owner``, ``environment``, ``criticality``, ``tags``. In CSV, ``addresses`` and ``tags`` hold
several values separated by ``|`` (a character no valid target contains); in JSON and YAML they are
lists. A YAML or JSON document is either a list of mappings or a mapping ``{assets: [...]}``.

The split of checks between ``transform`` and the quality suite (:mod:`autosec.inventory.quality`):
``transform`` rejects what cannot become a typed, safe :class:`Asset` (missing fields, unknown
enum values, hostile addresses, duplicate ids). An ``owner`` that is present but empty is let
through on purpose: it is a data-quality breach the quality suite reports and quarantines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.domain.targets import InvalidTarget, validate_target

FORMATS = ("csv", "json", "yaml")
LIST_SEPARATOR = "|"
REQUIRED_FIELDS = ("name", "kind", "owner", "environment", "criticality")
KNOWN_FIELDS = ("id", *REQUIRED_FIELDS, "addresses", "tags")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_MAX_ID_LENGTH = 200
_EXTENSIONS = {".csv": "csv", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class SourceError(Exception):
    """The file as a whole cannot be read: the source failed and must retire nothing."""


@dataclass(frozen=True)
class RawRow:
    """One row as read, with where it came from.

    ``line`` is the physical 1-based line where the row starts (CSV, YAML); JSON gives no line
    numbers, so there ``line`` is None and ``index`` (0-based position in the list) locates it.
    ``error`` is set when the row is structurally unusable (e.g. a list item that is not a mapping).
    """

    file: str
    line: int | None
    index: int
    data: Mapping[str, Any]
    error: str | None = None

    @property
    def position(self) -> str:
        return _position(self.file, self.line, self.index)


@dataclass(frozen=True)
class Reject:
    """A row that did not become an asset, with a reason naming the field, the file and the line."""

    file: str
    line: int | None
    raw: Mapping[str, Any]
    reason: str
    index: int | None = None
    asset_id: str | None = None

    @property
    def position(self) -> str:
        """``file:line``, or ``file item N`` where the format has no line numbers (JSON)."""
        return _position(self.file, self.line, self.index)


@dataclass(frozen=True)
class Origin:
    """Where an accepted asset came from, so later checks can still point at the row."""

    file: str
    line: int | None
    index: int | None


@dataclass
class InventoryBatch:
    """One source's snapshot: accepted assets (``origins`` aligned with them) and rejected rows."""

    assets: list[Asset] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)

    @property
    def rejected_ids(self) -> set[str]:
        """Ids named by rejected rows: a loader must not retire these just because they failed."""
        return {r.asset_id for r in self.rejects if r.asset_id}


def _position(file: str, line: int | None, index: int | None) -> str:
    if line is not None:
        return f"{file}:{line}"
    return f"{file} item {index}"


# --------------------------------------------------------------------------------------- get


def get(
    path: str | Path, fmt: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[RawRow]:
    """Read ``path`` and return its rows; raise :class:`SourceError` when the file is malformed.

    ``fmt`` (csv, json, yaml) overrides the format the extension implies.
    """
    path = Path(path)
    name = str(path)
    fmt = _format_of(path, fmt)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"{name}: file is {size} bytes, larger than the {max_bytes} limit")
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{name}: cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: byte {exc.start}: not valid UTF-8") from None
    if fmt == "csv":
        return _read_csv(name, text)
    if fmt == "json":
        return _read_json(name, text)
    return _read_yaml(name, text)


def _format_of(path: Path, explicit: str | None) -> str:
    if explicit is not None:
        fmt = explicit.strip().lower()
        fmt = "yaml" if fmt == "yml" else fmt
        if fmt not in FORMATS:
            raise SourceError(
                f"{path}: unknown format {explicit!r}: expected one of csv, json, yaml"
            )
        return fmt
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise SourceError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}: "
            "use .csv, .json, .yaml or .yml, or name the format"
        ) from None


def _read_csv(name: str, text: str) -> list[RawRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[RawRow] = []
    header: list[str] | None = None
    try:
        start = 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _csv_header(name, line, cells)
                continue
            data: dict[str, Any] = dict(zip(header, cells, strict=False))
            error = None
            if len(cells) > len(header):
                error = f"{len(cells)} cells but the header names {len(header)} columns"
            for key in KNOWN_FIELDS:
                if key in header and key not in data:
                    data[key] = None
            rows.append(RawRow(name, line, len(rows), data, error))
    except csv.Error as exc:
        raise SourceError(f"{name}:{reader.line_num}: malformed CSV: {exc}") from None
    if header is None:
        raise SourceError(f"{name}: empty file: expected a header row naming the columns")
    return rows


def _csv_header(name: str, line: int, cells: list[str]) -> list[str]:
    header = [cell.strip().lower() for cell in cells]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SourceError(
            f"{name}:{line}: duplicate columns in the header: {', '.join(duplicates)}"
        )
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        raise SourceError(
            f"{name}:{line}: header lacks required columns: {', '.join(missing)} "
            f"(found: {', '.join(h or '<empty>' for h in header)})"
        )
    return header


class _JsonObject(dict):
    """A JSON object that remembers keys it saw twice (json keeps only the last silently)."""

    duplicate_keys: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        obj.duplicate_keys = tuple(sorted({key for key in keys if keys.count(key) > 1}))
    return obj


def _read_json(name: str, text: str) -> list[RawRow]:
    try:
        document = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{name}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    items = _items(name, document, "JSON")
    rows = []
    for index, item in enumerate(items):
        error = _item_error(item)
        if error is None and getattr(item, "duplicate_keys", ()):
            error = f"duplicate keys: {', '.join(item.duplicate_keys)}"
        rows.append(RawRow(name, None, index, dict(item) if error is None else {}, error))
    return rows


def _read_yaml(name: str, text: str) -> list[RawRow]:
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise SourceError(f"{where}: malformed YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"{name}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    items = _items(name, document, "YAML")
    item_nodes: list[yaml.Node | None] = _yaml_item_nodes(node)
    if len(item_nodes) != len(items):  # e.g. 'assets' came through a merge key: no marks
        item_nodes = [None] * len(items)
    rows = []
    for index, (item, item_node) in enumerate(zip(items, item_nodes, strict=True)):
        line = item_node.start_mark.line + 1 if item_node is not None else None
        error = _item_error(item) or _yaml_duplicate_keys(item_node)
        rows.append(RawRow(name, line, index, dict(item) if error is None else {}, error))
    return rows


def _items(name: str, document: Any, kind: str) -> list[Any]:
    if document is None:
        raise SourceError(f"{name}: empty {kind} document: expected a list of assets")
    if isinstance(document, Mapping):
        if "assets" not in document:
            raise SourceError(
                f"{name}: {kind} top level is a mapping without an 'assets' key: "
                "expected a list of assets or {assets: [...]}"
            )
        document = document["assets"]
        if not isinstance(document, list):
            raise SourceError(
                f"{name}: 'assets' is a {_type_name(document)}, expected a list of assets"
            )
    if not isinstance(document, list):
        raise SourceError(
            f"{name}: {kind} top level is a {_type_name(document)}, "
            "expected a list of assets or {assets: [...]}"
        )
    return document


def _yaml_item_nodes(node: yaml.Node) -> list[yaml.Node | None]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "assets":
                node = value
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _yaml_duplicate_keys(node: yaml.Node | None) -> str | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    return f"duplicate keys: {', '.join(duplicates)}" if duplicates else None


def _item_error(item: Any) -> str | None:
    if not isinstance(item, Mapping):
        return f"an asset must be a mapping, found a {_type_name(item)}"
    return None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --------------------------------------------------------------------------------- transform


class _RowProblems(list):
    def add(self, field_name: str, problem: str) -> None:
        self.append(f"field {field_name!r}: {problem}")


def transform(rows: Iterable[RawRow], source_name: str) -> InventoryBatch:
    """Turn raw rows into assets and rejects. Pure: no I/O, deterministic."""
    if not isinstance(source_name, str) or not source_name.strip():
        raise ValueError(f"source name must be a non-empty string, got {source_name!r}")
    source_name = source_name.strip()
    batch = InventoryBatch()
    first_seen: dict[str, str] = {}
    for row in rows:
        if row.error is not None:
            batch.rejects.append(_reject(row, [row.error], None))
            continue
        problems = _RowProblems()
        values = _normalise(row.data, problems)
        asset_id = values.get("id") or values.get("name")
        if asset_id:
            if asset_id in first_seen:
                problems.add(
                    "id", f"duplicate id {asset_id!r}, first used at {first_seen[asset_id]}"
                )
            else:
                first_seen[asset_id] = row.position
        if problems:
            batch.rejects.append(_reject(row, problems, asset_id))
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
        batch.origins.append(Origin(row.file, row.line, row.index))
    return batch


def _reject(row: RawRow, problems: list[str], asset_id: str | None) -> Reject:
    reason = f"{row.position}: " + "; ".join(problems)
    return Reject(row.file, row.line, dict(row.data), reason, row.index, asset_id)


def _normalise(data: Mapping[str, Any], problems: _RowProblems) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("id", "name", "owner"):
        values[key] = _text(data, key, problems, required=key != "id")
    if values["name"] == "":
        problems.add("name", "empty")
        values["name"] = None
    if values["id"] is not None and len(values["id"]) > _MAX_ID_LENGTH:
        problems.add("id", f"longer than {_MAX_ID_LENGTH} characters")
    values["kind"] = _enum(data, "kind", AssetKind, problems)
    values["environment"] = _enum(data, "environment", Environment, problems)
    values["criticality"] = _enum(data, "criticality", Criticality, problems)
    values["addresses"] = _addresses(data, problems)
    values["tags"] = tuple(dict.fromkeys(t.lower() for t in _list(data, "tags", problems)))
    return values


def _text(data: Mapping[str, Any], key: str, problems: _RowProblems, required: bool) -> str | None:
    """A trimmed string; None when absent. Empty strings are returned as "" for the caller."""
    value = data.get(key)
    if value is None:
        if required:
            problems.add(key, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(key, f"expected text, found a {_type_name(value)}")
        return None
    text = str(value).strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        problems.add(key, "contains control characters")
        return None
    return text or ("" if required else None)


def _enum(data: Mapping[str, Any], key: str, enum_class: type, problems: _RowProblems) -> Any:
    text = _text(data, key, problems, required=True)
    if text is None:
        return None
    if text == "":
        problems.add(key, "empty")
        return None
    normalised = text.lower().replace("-", "_").replace(" ", "_")
    try:
        return enum_class(normalised)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_class)
        problems.add(key, f"unknown value {text!r}: expected one of {allowed}")
        return None


def _list(
    data: Mapping[str, Any], key: str, problems: _RowProblems, check_control: bool = True
) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(LIST_SEPARATOR)
    elif isinstance(value, list):
        items = value
    else:
        problems.add(key, f"expected a list, found a {_type_name(value)}")
        return []
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            problems.add(key, f"item {item!r} is a {_type_name(item)}, expected text")
            continue
        text = str(item).strip()
        if check_control and any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            problems.add(key, f"item {text!r} contains control characters")
        elif text:
            out.append(text)
    return out


def _addresses(data: Mapping[str, Any], problems: _RowProblems) -> tuple[str, ...]:
    value = data.get("addresses")
    if isinstance(value, list) and any(not isinstance(v, str) for v in value):
        bad = next(v for v in value if not isinstance(v, str))
        problems.add("addresses", f"item {bad!r} is a {_type_name(bad)}, expected text")
        return ()
    out: list[str] = []
    # Control characters are left for validate_target, whose message names the value.
    for item in _list(data, "addresses", problems, check_control=False):
        try:
            out.append(validate_target(item).value)
        except InvalidTarget as exc:
            problems.add("addresses", str(exc))
    return tuple(dict.fromkeys(out))

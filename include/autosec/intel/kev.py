"""Read CISA's Known Exploited Vulnerabilities catalog (JSON or CSV) into validated records.

The JSON carries the catalog's version and release time; the CSV carries neither, so a CSV
catalog is dated by its newest ``dateAdded``. Every entry is checked against the published
schema (required fields, ``CVE-YYYY-N{4,19}``, ISO dates, ``CWE-N``); a malformed one raises
:class:`KevError` naming the file and the entry (index and CVE in JSON, line in CSV). A JSON
catalog whose ``count`` disagrees with its list is refused: it was cut short somewhere.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

CVE_PATTERN = re.compile(r"^CVE-\d{4}-\d{4,19}$")
CWE_PATTERN = re.compile(r"^CWE-\d+$")
REQUIRED_FIELDS = (
    "cveID",
    "vendorProject",
    "product",
    "vulnerabilityName",
    "dateAdded",
    "shortDescription",
    "requiredAction",
    "dueDate",
)
MAX_FILE_BYTES = 256 * 1024 * 1024


class KevError(ValueError):
    """A KEV catalog that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class KevEntry:
    cve_id: str
    vendor_project: str
    product: str
    vulnerability_name: str
    date_added: date
    short_description: str
    required_action: str
    due_date: date
    known_ransomware_campaign_use: str  # "Known" or "Unknown"
    notes: str = ""
    cwes: tuple[str, ...] = ()

    @property
    def ransomware(self) -> bool:
        return self.known_ransomware_campaign_use.strip().lower() == "known"


@dataclass(frozen=True)
class KevCatalog:
    entries: tuple[KevEntry, ...]
    catalog_version: str | None = None
    date_released: datetime | None = None

    @property
    def feed_date(self) -> datetime | None:
        """When the catalog was released (CSV: midnight of its newest ``dateAdded``)."""
        if self.date_released is not None:
            return self.date_released
        if not self.entries:
            return None
        newest = max(e.date_added for e in self.entries)
        return datetime.combine(newest, time(), tzinfo=UTC)

    @property
    def version(self) -> str | None:
        if self.catalog_version:
            return self.catalog_version
        feed_date = self.feed_date
        return f"{feed_date:%Y.%m.%d}" if feed_date else None


def read_kev(path: str | Path) -> KevCatalog:
    """A catalog from a ``.json`` or ``.csv`` file (the content decides when the suffix does
    not say)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise KevError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise KevError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    looks_like_json = data.lstrip(b"\xef\xbb\xbf \r\n\t")[:1] == b"{"
    if suffix == ".csv" or (suffix != ".json" and not looks_like_json):
        return parse_kev_csv(data, str(path))
    return parse_kev_json(data, str(path))


def parse_kev_json(data: bytes, source: str) -> KevCatalog:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise KevError(f"{source}: not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise KevError(
            f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        ) from exc
    if not isinstance(document, Mapping):
        raise KevError(f"{source}: expected the catalog object, got {type(document).__name__}")
    items = document.get("vulnerabilities")
    if not isinstance(items, list):
        raise KevError(f"{source}: 'vulnerabilities' is missing or not a list")
    version = document.get("catalogVersion")
    if version is not None and not isinstance(version, str):
        raise KevError(f"{source}: catalogVersion: expected text, got {version!r}")
    released = document.get("dateReleased")
    date_released = None
    if released is not None:
        try:
            date_released = _aware(datetime.fromisoformat(str(released)))
        except ValueError:
            raise KevError(f"{source}: dateReleased: not a timestamp: {released!r}") from None
    count = document.get("count")
    if count is not None and count != len(items):
        raise KevError(
            f"{source}: the catalog says count {count} but lists {len(items)} entries (cut short?)"
        )
    entries = []
    for index, item in enumerate(items):
        where = f"{source}: vulnerabilities[{index}]"
        if not isinstance(item, Mapping):
            raise KevError(f"{where}: expected an object, got {item!r}")
        entries.append(_entry(item, where, cwes=item.get("cwes", ())))
    return KevCatalog(_unique(entries, source), version, date_released)


def parse_kev_csv(data: bytes | str, source: str) -> KevCatalog:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KevError(f"{source}: not UTF-8 (byte {exc.start})") from exc
    reader = csv.DictReader(io.StringIO(data.removeprefix("\ufeff"), newline=""))
    missing = [f for f in REQUIRED_FIELDS if f not in (reader.fieldnames or ())]
    if missing:
        raise KevError(f"{source}: line 1: header lacks {', '.join(missing)}")
    entries = []
    try:
        for row in reader:
            where = f"{source}: line {reader.line_num}"
            if None in row:
                raise KevError(f"{where}: more fields than the header names")
            cwes = [c.strip() for c in (row.get("cwes") or "").split(",") if c.strip()]
            entries.append(_entry(row, where, cwes=cwes))
    except csv.Error as exc:
        raise KevError(f"{source}: line {reader.line_num}: malformed CSV: {exc}") from exc
    return KevCatalog(_unique(entries, source))


def _entry(item: Mapping[str, Any], where: str, cwes: Iterable[Any]) -> KevEntry:
    named = item.get("cveID")
    if isinstance(named, str) and named.strip():
        where = f"{where} ({named.strip()})"
    values: dict[str, str] = {}
    for name in REQUIRED_FIELDS:
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            raise KevError(f"{where}: {name} is missing or empty")
        values[name] = value.strip()
    cve_id = values["cveID"]
    if not CVE_PATTERN.match(cve_id):
        raise KevError(f"{where}: cveID {cve_id!r} is not CVE-YYYY-NNNN")
    if isinstance(cwes, str) or not isinstance(cwes, Iterable):
        raise KevError(f"{where}: cwes: expected a list, got {cwes!r}")
    cwe_list = tuple(cwes)
    bad = [c for c in cwe_list if not isinstance(c, str) or not CWE_PATTERN.match(c)]
    if bad:
        raise KevError(f"{where}: cwes: {bad} are not CWE-N")
    notes = item.get("notes") or ""
    ransomware = item.get("knownRansomwareCampaignUse") or "Unknown"
    if not isinstance(notes, str) or not isinstance(ransomware, str):
        raise KevError(f"{where}: notes and knownRansomwareCampaignUse must be text")
    return KevEntry(
        cve_id=cve_id,
        vendor_project=values["vendorProject"],
        product=values["product"],
        vulnerability_name=values["vulnerabilityName"],
        date_added=_date(values["dateAdded"], "dateAdded", where),
        short_description=values["shortDescription"],
        required_action=values["requiredAction"],
        due_date=_date(values["dueDate"], "dueDate", where),
        known_ransomware_campaign_use=ransomware.strip(),
        notes=notes,
        cwes=cwe_list,
    )


def _date(value: str, name: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise KevError(f"{where}: {name} {value!r} is not a YYYY-MM-DD date") from None


def _unique(entries: list[KevEntry], source: str) -> tuple[KevEntry, ...]:
    seen: set[str] = set()
    for entry in entries:
        if entry.cve_id in seen:
            raise KevError(f"{source}: {entry.cve_id} is listed twice")
        seen.add(entry.cve_id)
    return tuple(entries)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)

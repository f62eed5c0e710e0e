"""Discovery source: cloud accounts and projects that someone pays for but no inventory knows.

A billing or account export lists every account and project that spends money, which makes it
the most complete list of cloud estates an organisation has: an account that bills but is in no
inventory is a blind spot, however it was opened.

``get`` reads the export (CSV; BOM and CRLF tolerated) and keeps the columns that matter, under
canonical names; the headers of the common exports are recognised (AWS CUR and CUR 2.0, GCP
billing export, Azure cost details), other exports use the canonical names: ``provider``,
``account_id``, ``account_name``, ``project_id``, ``project_name``, ``service``, ``cost``,
``currency``, ``owner_email``, ``period``. A file that cannot be read as a whole (bad CSV, a row
with the wrong number of cells, a header without an account or project column) raises
:class:`SourceError` naming the file and line, and nothing from it is used.

``transform`` (pure) checks every value (billing data is untrusted: an account name such as
``=HYPERLINK(...)`` or one with control characters is rejected with its file:line, never stored)
and flags each account and project that no inventory asset of kind ``cloud_account`` knows by
its id, its name or a tag (``account:123456789012``, ``project:my-proj``, ``aws:123456789012``
or the blind spot's own address ``aws:account:123456789012``).

An account is not a network target, so its blind spot is stored under an identifier that can
never be read as one: ``address = "<provider>:account:<id>"`` or ``"<provider>:project:<id>"``
(``aws:account:123456789012``, ``gcp:project:shop-prod-1``) with port 0. Identifiers are
lowercased so that a GUID written in two cases is one blind spot.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autosec.domain.models import Asset, AssetKind, BlindSpot

NAME = "billing"
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
EVIDENCE_MAX_ITEMS = 50
MAX_TEXT = 256
MAX_IDENTIFIER = 128
ACCOUNT = "account"
PROJECT = "project"

FIELDS = (
    "provider",
    "account_id",
    "account_name",
    "project_id",
    "project_name",
    "service",
    "cost",
    "currency",
    "owner_email",
    "period",
)
# Header spellings of the common exports -> canonical field. Compared lowercased and trimmed.
ALIASES: dict[str, str] = {
    **{name: name for name in FIELDS},
    "cloud": "provider",
    "cloud_provider": "provider",
    # AWS Cost and Usage Report (legacy and CUR 2.0)
    "lineitem/usageaccountid": "account_id",
    "line_item_usage_account_id": "account_id",
    "lineitem/usageaccountname": "account_name",
    "line_item_usage_account_name": "account_name",
    "lineitem/productcode": "service",
    "line_item_product_code": "service",
    "lineitem/unblendedcost": "cost",
    "line_item_unblended_cost": "cost",
    "lineitem/currencycode": "currency",
    "line_item_currency_code": "currency",
    "bill/billingperiodstartdate": "period",
    "bill_billing_period_start_date": "period",
    # GCP billing export
    "billing_account_id": "account_id",
    "project.id": "project_id",
    "project.name": "project_name",
    "service.description": "service",
    "invoice.month": "period",
    # Azure cost details
    "subscriptionid": "account_id",
    "subscription_id": "account_id",
    "subscriptionname": "account_name",
    "subscription_name": "account_name",
    "metercategory": "service",
    "costinbillingcurrency": "cost",
    "billingcurrency": "currency",
    "billingcurrencycode": "currency",
    "billingperiodstartdate": "period",
}
PROVIDERS = {
    "amazon": "aws",
    "amazon web services": "aws",
    "google": "gcp",
    "google cloud": "gcp",
    "google cloud platform": "gcp",
    "microsoft azure": "azure",
}
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_IDENTIFIER = re.compile(rf"^[a-z0-9][a-z0-9._-]{{0,{MAX_IDENTIFIER - 1}}}$")
_AWS_ACCOUNT = re.compile(r"^\d{12}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FORMULA_START = ("=", "+", "-", "@")
_UNSPECIFIED_CURRENCY = "unspecified"
_KINDS = ((ACCOUNT, "account_id", "project_id"), (PROJECT, "project_id", "account_id"))


class SourceError(Exception):
    """The export as a whole cannot be read: the source failed and must resolve nothing."""


class BillingConfig(BaseModel):
    """One export to read: ``billing.get(c.path, provider=c.provider, max_bytes=c.max_bytes)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    provider: str | None = None
    max_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1)

    @field_validator("provider")
    @classmethod
    def _known_shape(cls, value: str | None) -> str | None:
        return None if value is None else _normalise("provider", value.strip())


@dataclass(frozen=True, slots=True)
class BillingRow:
    """One data row as read: canonical field -> raw text, and where it came from."""

    file: str
    line: int
    values: dict[str, str]

    @property
    def position(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class BillingReject:
    """A row that was not used, with the reason naming the field, and the file and line."""

    file: str
    line: int
    reason: str
    value: str | None = None

    @property
    def position(self) -> str:
        return f"{self.file}:{self.line}"

    def as_rejection(self) -> tuple[str, str | None, str]:
        """(location, value, reason), the shape the store's input rejections take."""
        return (self.position, self.value, self.reason)


@dataclass(frozen=True)
class BillingBlindSpot(BlindSpot):
    """A billed account or project no inventory asset knows; stored like any blind spot."""

    provider: str = ""
    kind: str = ACCOUNT
    identifier: str = ""


@dataclass
class BillingMatch:
    blind_spots: list[BillingBlindSpot]
    known: list[str]  # addresses (provider:kind:id) of billed accounts the inventory knows
    rejects: list[BillingReject]


def blind_spot_address(provider: str, kind: str, identifier: str) -> str:
    """``aws:account:123456789012``: how an account or project blind spot is keyed and stored."""
    if kind not in (ACCOUNT, PROJECT):
        raise ValueError(f"kind must be {ACCOUNT!r} or {PROJECT!r}, got {kind!r}")
    return f"{provider}:{kind}:{identifier.lower()}"


# --------------------------------------------------------------------------------------- get


def get(
    path: str | Path, *, provider: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[BillingRow]:
    """Read the export at ``path``; raise :class:`SourceError` when it is malformed.

    ``provider`` fills the provider of every row when the export has no provider column (an
    AWS CUR, for one, does not say it is AWS).
    """
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{name}: cannot read the export: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise SourceError(f"{name}: export is {size} bytes, larger than the {max_bytes} limit")
    try:
        with path.open("rb") as handle:
            return _read(name, _decoded(name, handle), provider)
    except OSError as exc:
        raise SourceError(f"{name}: cannot read the export: {exc.strerror or exc}") from exc


def _decoded(name: str, handle: Iterable[bytes]) -> Iterator[str]:
    """The file's lines as text, line endings kept; a byte that is not UTF-8 names its line."""
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = f"{name}:{number}: byte {exc.start + 1} of the line"
            raise SourceError(f"{where} is not valid UTF-8") from None


def _read(name: str, lines: Iterable[str], provider: str | None) -> list[BillingRow]:
    reader = csv.reader(lines, strict=True)
    rows: list[BillingRow] = []
    columns: list[tuple[int, str]] | None = None
    width = 0
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns, width = _header(name, line, cells, provider), len(cells)
                continue
            if len(cells) != width:
                raise SourceError(
                    f"{name}:{line}: {len(cells)} cells but the header names {width} columns"
                )
            values = {canonical: cells[index] for index, canonical in columns}
            if "provider" not in values and provider is not None:
                values["provider"] = provider
            rows.append(BillingRow(name, line, values))
    except csv.Error as exc:  # reported where the broken row starts (an open quote, say)
        raise SourceError(f"{name}:{start}: malformed CSV: {exc}") from None
    if columns is None:
        raise SourceError(f"{name}: empty export: expected a header row naming the columns")
    return rows


def _header(name: str, line: int, cells: list[str], provider: str | None) -> list[tuple[int, str]]:
    columns: list[tuple[int, str]] = []
    first: dict[str, str] = {}
    for index, cell in enumerate(cells):
        heading = cell.strip().lower()
        canonical = ALIASES.get(heading)
        if canonical is None:
            continue
        if canonical in first:
            raise SourceError(
                f"{name}:{line}: columns {first[canonical]!r} and {cell.strip()!r} both give "
                f"{canonical}"
            )
        first[canonical] = cell.strip()
        columns.append((index, canonical))
    if "account_id" not in first and "project_id" not in first:
        found = ", ".join(c.strip() or "<empty>" for c in cells[:20])
        raise SourceError(
            f"{name}:{line}: header has no account or project column (account_id, project_id "
            f"or an export's own name for them); found: {found}"
        )
    if "provider" not in first and provider is None:
        raise SourceError(
            f"{name}:{line}: header has no provider column: add one or name the provider"
        )
    return columns


# --------------------------------------------------------------------------------- transform


@dataclass
class _Tally:
    provider: str
    kind: str
    identifier: str
    first: str
    rows: int = 0
    names: set[str] = field(default_factory=set)
    related: set[str] = field(default_factory=set)  # projects of an account, accounts of a project
    services: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)
    periods: set[str] = field(default_factory=set)
    cost: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def match(
    rows: Iterable[BillingRow],
    assets: Iterable[Asset],
    source: str = NAME,
    *,
    now: datetime,
) -> BillingMatch:
    """Billed accounts and projects no asset knows, the ones it does know, and rejected rows."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    bare, scoped = _known_identifiers(assets)
    tallies: dict[str, _Tally] = {}
    rejects: list[BillingReject] = []
    for row in rows:
        checked = _check(row)
        if isinstance(checked, BillingReject):
            rejects.append(checked)
            continue
        provider = checked["provider"]
        for kind, key, other in _KINDS:
            identifier = checked.get(key)
            if not identifier:
                continue
            address = blind_spot_address(provider, kind, identifier)
            tally = tallies.get(address)
            if tally is None:
                tally = tallies[address] = _Tally(provider, kind, identifier, row.position)
            _count(tally, checked, kind, other)

    spots: list[BillingBlindSpot] = []
    known: list[str] = []
    for address, tally in sorted(tallies.items()):
        if tally.identifier in bare or (tally.provider, tally.identifier) in scoped:
            known.append(address)
            continue
        evidence = _evidence(tally, source)
        spots.append(
            BillingBlindSpot(
                address, 0, source, evidence, now, tally.provider, tally.kind, tally.identifier
            )
        )
    return BillingMatch(spots, known, rejects)


def transform(
    rows: Iterable[BillingRow],
    assets: Iterable[Asset],
    source: str = NAME,
    *,
    now: datetime,
) -> list[BillingBlindSpot]:
    """Billed accounts and projects no inventory asset knows. Pure; see :func:`match`."""
    return match(rows, assets, source, now=now).blind_spots


def _known_identifiers(assets: Iterable[Asset]) -> tuple[set[str], set[tuple[str, str]]]:
    """Identifiers the cloud_account assets carry: (any provider, (provider, id) pairs)."""
    bare: set[str] = set()
    scoped: set[tuple[str, str]] = set()
    for asset in assets:
        if asset.kind is not AssetKind.CLOUD_ACCOUNT:
            continue
        bare |= {asset.id.strip().lower(), asset.name.strip().lower()}
        for tag in asset.tags:
            parts = tag.strip().lower().split(":")
            if len(parts) == 2 and parts[0] in (ACCOUNT, PROJECT, "subscription"):
                bare.add(parts[1])
            elif len(parts) == 2:
                scoped.add((PROVIDERS.get(parts[0], parts[0]), parts[1]))
            elif len(parts) == 3 and parts[1] in (ACCOUNT, PROJECT, "subscription"):
                scoped.add((PROVIDERS.get(parts[0], parts[0]), parts[2]))
    return bare, scoped


def _count(tally: _Tally, checked: dict[str, Any], kind: str, other: str) -> None:
    tally.rows += 1
    name = checked.get(f"{kind}_name")
    if name:
        tally.names.add(name)
    if checked.get(other):
        tally.related.add(checked[other])
    for key, bucket in (("service", tally.services), ("owner_email", tally.owners)):
        if checked.get(key):
            bucket.add(checked[key])
    if checked.get("period"):
        tally.periods.add(checked["period"])
    if checked.get("cost") is not None:
        tally.cost[checked.get("currency") or _UNSPECIFIED_CURRENCY] += checked["cost"]


def _evidence(tally: _Tally, source: str) -> dict[str, Any]:
    services = sorted(tally.services)
    related_key = "projects" if tally.kind == ACCOUNT else "accounts"
    return {
        "provider": tally.provider,
        "kind": tally.kind,
        f"{tally.kind}_id": tally.identifier,
        "names": sorted(tally.names)[:EVIDENCE_MAX_ITEMS],
        related_key: sorted(tally.related)[:EVIDENCE_MAX_ITEMS],
        "services": services[:EVIDENCE_MAX_ITEMS],
        "services_total": len(services),
        "owner_emails": sorted(tally.owners)[:EVIDENCE_MAX_ITEMS],
        "periods": sorted(tally.periods),
        "total_cost": {currency: str(total) for currency, total in sorted(tally.cost.items())},
        "rows": tally.rows,
        "first_row": tally.first,
        "method": "billing export",
        "source": source,
    }


def _check(row: BillingRow) -> dict[str, Any] | BillingReject:
    """The row's values, checked and normalised, or why it cannot be used."""
    out: dict[str, Any] = {}
    for key in FIELDS:
        raw = row.values.get(key)
        if raw is None:
            continue
        value = raw.strip()
        problem = _text_problem(value)
        if problem is None and value:
            try:
                value = _normalise(key, value)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            return BillingReject(row.file, row.line, f"field {key!r}: {problem}", _printable(raw))
        out[key] = value if value != "" else None
    if not out.get("provider"):
        return BillingReject(row.file, row.line, "field 'provider': missing")
    if not out.get("account_id") and not out.get("project_id"):
        return BillingReject(row.file, row.line, "neither an account_id nor a project_id")
    aws_account = out.get("account_id") if out["provider"] == "aws" else None
    if aws_account and not _AWS_ACCOUNT.match(aws_account):
        return BillingReject(
            row.file,
            row.line,
            "field 'account_id': an AWS account id is 12 digits (a spreadsheet may have "
            "dropped its leading zeros)",
            aws_account,
        )
    return out


def _text_problem(value: str) -> str | None:
    if len(value) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return "contains control or invisible formatting characters"
    return None


def _normalise(key: str, value: str) -> Any:
    if key == "provider":
        provider = PROVIDERS.get(value.lower(), value.lower())
        if not _PROVIDER.match(provider):
            raise ValueError(f"{value!r} is not a provider name (letters, digits, - and _)")
        return provider
    if key in ("account_id", "project_id"):
        identifier = value.lower()
        if not _IDENTIFIER.match(identifier):
            raise ValueError(
                f"{value!r} is not an identifier (letters, digits, '.', '_' and '-', at most "
                f"{MAX_IDENTIFIER} characters)"
            )
        return identifier
    if key == "cost":
        try:
            cost = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not cost.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        return cost
    if key == "currency":
        if not _CURRENCY.match(value.upper()):
            raise ValueError(f"{value!r} is not a three-letter currency code")
        return value.upper()
    if value.startswith(_FORMULA_START):
        raise ValueError("starts with a spreadsheet formula character (= + - @)")
    if key == "owner_email" and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _printable(value: str, limit: int = 200) -> str:
    """``value`` with control characters escaped and cut to ``limit``: safe to store and log."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

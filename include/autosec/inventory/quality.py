"""The inventory data contract, declared as a Great Expectations suite and applied to every batch.

The source transforms already refuse rows they cannot type or that are unsafe; this suite is the
declared, reportable contract on top, the same for every source: ids present and unique, a
non-empty owner (an asset nobody owns cannot be assigned findings), names present, and kind,
environment and criticality inside the known sets. Rows that break it are quarantined with a
reason; the rest are accepted.

Great Expectations takes seconds to import, so it is imported inside :func:`validate_batch` only.

The rules behind the daily inventory quality figures are here too (pure): who counts as an owner
(:func:`has_owner`) and how many of a source's assets are stale (:func:`stale_assets`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.inventory.file import InventoryBatch, Reject

COLUMNS = ("id", "name", "kind", "owner", "environment", "criticality")


@dataclass(frozen=True)
class Expectation:
    """One line of the contract: a GX expectation type, its arguments, and what it means."""

    type: str
    column: str
    meaning: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _in_set(column: str, values: list[str]) -> Expectation:
    return Expectation(
        "ExpectColumnValuesToBeInSet",
        column,
        f"must be one of {', '.join(values)}",
        {"value_set": values},
    )


SUITE: tuple[Expectation, ...] = (
    Expectation("ExpectColumnValuesToNotBeNull", "id", "must be present"),
    Expectation("ExpectColumnValuesToBeUnique", "id", "must be unique in the batch"),
    Expectation("ExpectColumnValuesToNotBeNull", "name", "must be present"),
    Expectation("ExpectColumnValuesToNotBeNull", "owner", "must be present"),
    Expectation("ExpectColumnValuesToMatchRegex", "owner", "must not be empty", {"regex": r"\S"}),
    Expectation("ExpectColumnValuesToNotBeNull", "kind", "must be present"),
    _in_set("kind", [k.value for k in AssetKind]),
    Expectation("ExpectColumnValuesToNotBeNull", "environment", "must be present"),
    _in_set("environment", [e.value for e in Environment]),
    Expectation("ExpectColumnValuesToNotBeNull", "criticality", "must be present"),
    _in_set("criticality", [c.value for c in Criticality]),
)


class QualityError(RuntimeError):
    """The suite could not run (not a data problem): the sync must fail and retire nothing."""


@dataclass
class QualityResult:
    passed: bool
    failed_expectations: list[str]
    quarantined: list[Reject]
    accepted: list[Asset]
    elapsed_seconds: float = 0.0


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def validate_batch(batch: InventoryBatch) -> QualityResult:
    """Validate ``batch.assets`` against :data:`SUITE`; quarantine the rows that break it."""
    started = time.perf_counter()
    assets = list(batch.assets)
    if not assets:
        return QualityResult(True, [], [], [], time.perf_counter() - started)

    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    frame = pd.DataFrame(
        [{column: _plain(getattr(a, column, None)) for column in COLUMNS} for a in assets],
        columns=list(COLUMNS),
        dtype=object,
    )
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    data_asset = context.data_sources.add_pandas("inventory").add_dataframe_asset("assets")
    batch_definition = data_asset.add_batch_definition_whole_dataframe("batch")
    suite = gx.ExpectationSuite(name="autosec_inventory")
    for expectation in SUITE:
        expectation_class = getattr(gx.expectations, expectation.type)
        suite.add_expectation(expectation_class(column=expectation.column, **expectation.kwargs))
    gx_batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = gx_batch.validate(suite, result_format={"result_format": "COMPLETE"})

    failed: list[str] = []
    row_problems: dict[int, list[str]] = {}
    for expectation, result in zip(SUITE, validation.results, strict=True):
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise QualityError(
                f"inventory quality check {expectation.type}({expectation.column}) could not run: "
                f"{result.exception_info.get('exception_message')}"
            )
        if result.success:
            continue
        details = result.result
        indexes = details.get("unexpected_index_list") or []
        examples = list(dict.fromkeys(map(repr, details.get("partial_unexpected_list") or [])))
        failed.append(
            f"{expectation.column} {expectation.meaning} ({_snake(expectation.type)}): "
            f"{details.get('unexpected_count', len(indexes))} of {len(assets)} rows fail"
            + (f", e.g. {', '.join(examples[:5])}" if examples else "")
        )
        for index in indexes:
            value = frame.at[index, expectation.column]
            row_problems.setdefault(int(index), []).append(
                f"field {expectation.column!r} {expectation.meaning}, found {value!r}"
            )

    quarantined = [_quarantine(batch, i, assets[i], row_problems[i]) for i in sorted(row_problems)]
    accepted = [a for i, a in enumerate(assets) if i not in row_problems]
    return QualityResult(
        passed=not failed,
        failed_expectations=failed,
        quarantined=quarantined,
        accepted=accepted,
        elapsed_seconds=time.perf_counter() - started,
    )


def _quarantine(batch: InventoryBatch, index: int, asset: Asset, problems: list[str]) -> Reject:
    # origins align with assets; an asset added without one is located by source and position
    if index < len(batch.origins):
        origin = batch.origins[index]
        file, line, row_index = origin.file, origin.line, origin.index
    else:
        file, line, row_index = str(asset.source), None, index
    where = f"{file}:{line}" if line is not None else f"{file} item {row_index}"
    raw: dict[str, Any] = {column: _plain(getattr(asset, column, None)) for column in COLUMNS}
    raw["addresses"] = list(asset.addresses)
    raw["tags"] = list(asset.tags)
    reason = f"{where}: quality: " + "; ".join(problems)
    return Reject(file, line, raw, reason, row_index, asset.id if asset.id else None)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


# --------------------------------------------------------------------- quality of the whole

# Owner values that name nobody: an asset "owned" by one of them cannot be assigned findings.
OWNER_PLACEHOLDERS = (
    "-", "?", "n/a", "na", "nobody", "none", "null", "tbd", "todo", "unassigned", "unknown",
    "unowned",
)  # fmt: skip


def has_owner(owner: str | None) -> bool:
    """Whether ``owner`` names someone: not blank and not a placeholder (case-insensitive)."""
    text = (owner or "").strip().lower()
    return bool(text) and text not in OWNER_PLACEHOLDERS


def stale_assets(
    active: int,
    unconfirmed: int,
    last_success_at: datetime | None,
    stale_after_days: int,
    now: datetime,
) -> int:
    """How many of a source's ``active`` assets are stale ``now``.

    All of them when the source has not synced successfully within ``stale_after_days`` (or
    never has); otherwise those its last good sync did not confirm (``unconfirmed``: not listed
    while nothing was swept, or kept because their new row was quarantined).
    """
    if active < 0 or unconfirmed < 0 or stale_after_days < 1:
        raise ValueError(
            f"stale_assets: active={active}, unconfirmed={unconfirmed} must not be negative "
            f"and stale_after_days={stale_after_days} must be at least 1"
        )
    if last_success_at is None or now - last_success_at > timedelta(days=stale_after_days):
        return active
    return min(active, unconfirmed)

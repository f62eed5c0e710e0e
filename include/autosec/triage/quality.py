"""The triage data contract: a Great Expectations suite every triaged batch must pass before the
store is touched.

A batch is all the findings one scan run produced, after fingerprinting, dedupe, enrichment,
priority and due dates. The suite says what engineers rely on when they read a finding:

- severity is one of the known five, and the priority is an outcome of the decision table;
- the fingerprint is 64 lower-case hex digits and unique in the batch (one finding per identity);
- a CVSS score, when there is one, is between 0 and 10 (NaN and infinities fail);
- every open finding whose severity has a deadline in the patching policy has a due date.

A failing batch is refused whole: nothing of the run is stored (the stage marks the run
rejected with the failing expectations and raises an event). Rows are not quarantined one by
one as in the inventory suite, because a finding dropped in silence would later look *fixed*.

The whole batch is validated, not a sample: measured at 1M rows the suite takes about two
seconds, a small part of the upsert it protects. Great Expectations takes seconds to import,
so it is imported inside :func:`validate_batch` only, and an empty batch does not import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autosec.domain.models import Severity
from autosec.triage.normalise import TriagedFinding
from autosec.triage.priority import load_table


@dataclass(frozen=True)
class Expectation:
    """One line of the contract: a GX expectation type, its arguments, and what it means."""

    type: str
    column: str
    meaning: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def suite_definition() -> tuple[Expectation, ...]:
    return (
        Expectation("ExpectColumnValuesToNotBeNull", "severity", "must be present"),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            "severity",
            f"must be one of {', '.join(s.value for s in Severity)}",
            {"value_set": [s.value for s in Severity]},
        ),
        Expectation("ExpectColumnValuesToNotBeNull", "fingerprint", "must be present"),
        Expectation(
            "ExpectColumnValuesToMatchRegex",
            "fingerprint",
            "must be 64 lower-case hex digits",
            {"regex": r"^[0-9a-f]{64}$"},
        ),
        Expectation("ExpectColumnValuesToBeUnique", "fingerprint", "must be unique in the batch"),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            "cvss_score",
            "must be between 0 and 10",
            {"min_value": 0, "max_value": 10},
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            "priority",
            "must be an outcome of the priority table",
            {"value_set": list(load_table().outcomes)},
        ),
        Expectation(
            "ExpectColumnValuesToNotBeNull",
            "due_date",
            "must be set for an open finding whose severity has a deadline in the policy",
            {"row_condition": "due_required==True", "condition_parser": "pandas"},
        ),
    )


class QualityError(RuntimeError):
    """The suite could not run (not a data problem): triage must stop and store nothing."""


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    failed_expectations: list[str]
    rows: int
    elapsed_seconds: float


def _score(value: float | None) -> float | None:
    if value is None:
        return None
    # NaN would be read as missing (and pass): make every non-finite score fail the range check.
    return float(value) if math.isfinite(value) else math.inf


def validate_batch(
    findings: Sequence[TriagedFinding], days_by_severity: Mapping[str, int | None]
) -> QualityResult:
    """Validate one triaged batch against the suite; ``passed`` is False when any fails."""
    started = time.perf_counter()
    if not findings:
        return QualityResult(True, [], 0, time.perf_counter() - started)

    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    deadlines = {s.value: days_by_severity.get(s.value) is not None for s in Severity}
    severities = [
        getattr(f.observation.severity, "value", f.observation.severity) for f in findings
    ]
    frame = pd.DataFrame(
        {
            "fingerprint": pd.Series([f.fingerprint for f in findings], dtype=object),
            "severity": pd.Series(severities, dtype=object),
            "cvss_score": pd.Series([_score(f.cvss_score) for f in findings], dtype="float64"),
            "priority": pd.Series([f.priority for f in findings], dtype=object),
            "due_date": pd.Series([f.due_date for f in findings], dtype=object),
            "due_required": [deadlines.get(s, False) for s in severities],
        }
    )
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    data_asset = context.data_sources.add_pandas("triage").add_dataframe_asset("findings")
    batch_definition = data_asset.add_batch_definition_whole_dataframe("batch")
    definition = suite_definition()
    suite = gx.ExpectationSuite(name="autosec_triage")
    for expectation in definition:
        expectation_class = getattr(gx.expectations, expectation.type)
        suite.add_expectation(expectation_class(column=expectation.column, **expectation.kwargs))
    validation = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
    )

    failed: list[str] = []
    for expectation, result in zip(definition, validation.results, strict=True):
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise QualityError(
                f"triage quality check {expectation.type}({expectation.column}) could not run: "
                f"{result.exception_info.get('exception_message')}"
            )
        if result.success:
            continue
        details = result.result
        examples = list(dict.fromkeys(map(repr, details.get("partial_unexpected_list") or [])))
        rows = details.get("partial_unexpected_index_list") or []
        where = ""
        if rows:
            where = "; e.g. " + ", ".join(_describe(findings[int(i)]) for i in rows[:3])
        failed.append(
            f"{expectation.column} {expectation.meaning} ({_snake(expectation.type)}): "
            f"{details.get('unexpected_count', '?')} of {len(findings)} rows fail"
            + (f", values {', '.join(examples[:5])}" if examples else "")
            + where
        )
    return QualityResult(
        passed=not failed,
        failed_expectations=failed,
        rows=len(findings),
        elapsed_seconds=time.perf_counter() - started,
    )


def _describe(finding: TriagedFinding) -> str:
    o = finding.observation
    return f"{o.engine} {o.rule_id} on {o.asset_id} ({finding.fingerprint[:12]})"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")

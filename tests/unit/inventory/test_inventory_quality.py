"""The Great Expectations inventory contract: clean batches pass, bad rows are quarantined."""

from __future__ import annotations

from pathlib import Path

from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.inventory.file import InventoryBatch, get, transform
from autosec.inventory.quality import validate_batch

HEADER = "id,name,kind,addresses,owner,environment,criticality,tags"
CLEAN = (
    f"{HEADER}\n"
    "web-1,web,web_app,https://www.example.com,team-web,production,high,internet\n"
    "db-1,db,database,10.0.0.9,team-data,staging,medium,\n"
    "ci-1,ci,host,10.0.0.10,team-build,development,low,\n"
)


def batch_from(tmp_path: Path, text: str) -> InventoryBatch:
    path = tmp_path / "assets.csv"
    path.write_text(text)
    return transform(get(path), "file")


def asset(id: str, **overrides) -> Asset:
    values = {
        "id": id,
        "name": id,
        "kind": AssetKind.HOST,
        "source": "other-source",
        "owner": "ops",
        "environment": Environment.TEST,
        "criticality": Criticality.LOW,
    }
    values.update(overrides)
    return Asset(**values)


def test_clean_batch_passes_and_accepts_everything(tmp_path):
    batch = batch_from(tmp_path, CLEAN)
    result = validate_batch(batch)
    assert result.passed
    assert result.failed_expectations == []
    assert result.quarantined == []
    assert result.accepted == batch.assets


def test_empty_owner_and_bad_environment_quarantine_exactly_those_rows(tmp_path):
    # The empty owner comes through the file transform; the unknown environment is what a lax
    # source could hand over, so the batch is extended by hand.
    batch = batch_from(tmp_path, CLEAN + "app-1,app,service,10.0.0.11,   ,test,low,\n")
    batch.assets.append(asset("legacy-1", environment="prod"))
    result = validate_batch(batch)

    assert not result.passed
    assert [r.asset_id for r in result.quarantined] == ["app-1", "legacy-1"]
    assert [a.id for a in result.accepted] == ["web-1", "db-1", "ci-1"]

    empty_owner, bad_env = result.quarantined
    path = tmp_path / "assets.csv"
    assert empty_owner.file == str(path) and empty_owner.line == 5
    assert empty_owner.reason == f"{path}:5: quality: field 'owner' must not be empty, found ''"
    assert bad_env.line is None and bad_env.raw["environment"] == "prod"
    assert bad_env.reason.startswith(
        "other-source item 4: quality: field 'environment' must be one"
    )
    assert bad_env.reason.endswith("found 'prod'")

    assert len(result.failed_expectations) == 2
    owner_failure, environment_failure = result.failed_expectations
    assert owner_failure.startswith("owner must not be empty (expect_column_values_to_match_regex)")
    assert "1 of 5 rows fail" in owner_failure
    assert environment_failure.startswith("environment must be one of production, staging")
    assert "'prod'" in environment_failure


def test_duplicate_ids_quarantine_every_row_sharing_the_id():
    batch = InventoryBatch(assets=[asset("a"), asset("b"), asset("a", name="other")])
    result = validate_batch(batch)
    assert not result.passed
    assert [(r.index, r.asset_id) for r in result.quarantined] == [(0, "a"), (2, "a")]
    assert all("field 'id' must be unique in the batch" in r.reason for r in result.quarantined)
    assert [a.id for a in result.accepted] == ["b"]
    assert result.failed_expectations[0].startswith("id must be unique in the batch")


def test_missing_values_are_caught_even_where_the_set_check_ignores_nulls():
    batch = InventoryBatch(assets=[asset("a", criticality=None, owner=None)])
    result = validate_batch(batch)
    (quarantined,) = result.quarantined
    assert "field 'owner' must be present, found None" in quarantined.reason
    assert "field 'criticality' must be present, found None" in quarantined.reason


def test_empty_batch_passes_without_running_the_suite():
    result = validate_batch(InventoryBatch())
    assert result.passed and result.accepted == [] and result.quarantined == []

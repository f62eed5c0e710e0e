"""Each inventory source's schedule, owner and staleness window, checked when the estate loads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.config.estate import EstateError, InventorySourceConfig, load_estate
from autosec.config.source_sync import (
    PRESETS,
    SourceSyncSettings,
    cron_expression,
    default_stale_days,
    longest_gap,
)
from autosec.inventory.backstage import BackstageSourceConfig
from autosec.inventory.http_cmdb import CmdbSourceConfig


@pytest.mark.parametrize(
    ("schedule", "gap", "stale_days"),
    [
        ("@hourly", timedelta(hours=1), 1),
        ("@daily", timedelta(days=1), 2),
        ("@weekly", timedelta(days=7), 14),
        ("*/15 * * * *", timedelta(minutes=15), 1),
        ("0 9 * * 1-5", timedelta(days=3), 6),  # weekdays: the weekend is the longest gap
        ("0 2 1 * *", timedelta(days=31), 62),
    ],
)
def test_schedules_are_measured_by_their_longest_gap(schedule, gap, stale_days) -> None:
    assert longest_gap(schedule) == gap
    assert default_stale_days(schedule) == stale_days
    assert SourceSyncSettings(schedule=schedule).stale_after == stale_days


def test_presets_are_plain_cron_and_an_unscheduled_source_gets_a_week() -> None:
    assert cron_expression("@daily") == "0 0 * * *" == PRESETS["@daily"]
    assert cron_expression("  0   3 * * * ") == "0 3 * * *"
    settings = SourceSyncSettings(schedule=None)
    assert settings.schedule is None and settings.stale_after == 7
    assert SourceSyncSettings().schedule == "@hourly"


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("@reboot", "unknown preset"),
        ("* * *", "five fields"),
        ("0 0 * * * *", "five fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("every hour please", "five fields"),
        ("0 0 31 2 *", "never runs"),
        ("", "empty"),
    ],
)
def test_a_bad_schedule_is_refused_with_the_reason(schedule: str, problem: str) -> None:
    with pytest.raises(ValidationError) as info:
        SourceSyncSettings(schedule=schedule)
    assert problem in str(info.value)


def test_a_staleness_window_shorter_than_the_schedule_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        SourceSyncSettings(schedule="@weekly", stale_after_days=3)
    assert "shorter than the longest gap" in str(info.value) and "7 days" in str(info.value)
    assert SourceSyncSettings(schedule="@weekly", stale_after_days=10).stale_after == 10
    assert SourceSyncSettings(schedule=None, stale_after_days=2).stale_after == 2


def test_the_owner_is_trimmed_and_must_name_someone() -> None:
    assert SourceSyncSettings(owner="  team-cmdb ").owner == "team-cmdb"
    with pytest.raises(ValidationError, match="owner is empty"):
        SourceSyncSettings(owner="   ")
    with pytest.raises(ValidationError, match="printable"):
        SourceSyncSettings(owner="team\x00x")


def test_every_source_kind_carries_schedule_and_owner() -> None:
    file_source = InventorySourceConfig(
        name="f", kind="file", path=Path("x.csv"), schedule="@daily", owner="team-a"
    )
    backstage = BackstageSourceConfig(name="b", kind="backstage", schedule=None, owner="team-b")
    cmdb = CmdbSourceConfig.model_validate(
        {
            "name": "c",
            "kind": "http_cmdb",
            "conn_id": "cmdb",
            "schedule": "0 */6 * * *",
            "owner": "team-c",
            "mapping": {
                "id": "id",
                "name": "name",
                "kind": "kind",
                "owner": "owner",
                "environment": "env",
                "criticality": "tier",
            },
        }
    )
    assert (file_source.schedule, file_source.owner, file_source.stale_after) == (
        "@daily",
        "team-a",
        2,
    )
    assert (backstage.schedule, backstage.stale_after) == (None, 7)
    assert (cmdb.schedule, cmdb.owner, cmdb.conn_id, cmdb.stale_after) == (
        "0 */6 * * *",
        "team-c",
        "cmdb",
        1,
    )


def test_the_estate_names_the_source_whose_schedule_is_wrong(tmp_path: Path) -> None:
    estate = tmp_path / "estate.yaml"
    estate.write_text(
        "inventory:\n"
        "  - {name: good, kind: file, path: a.csv, schedule: '@daily'}\n"
        "  - {name: bad, kind: file, path: b.csv, schedule: '0 25 * * *'}\n"
        "policy: policy.yaml\n"
    )
    with pytest.raises(EstateError) as info:
        load_estate(estate)
    message = str(info.value)
    assert "inventory.1" in message and "schedule" in message and "0 25 * * *" in message

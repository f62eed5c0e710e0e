"""The rules behind the inventory quality figures: who counts as an owner, what is stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autosec.inventory.quality import has_owner, stale_assets

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize("owner", ["team-web", "alice@example.org", " Team Data "])
def test_a_named_owner_counts(owner: str) -> None:
    assert has_owner(owner)


@pytest.mark.parametrize("owner", ["", "   ", None, "unknown", "N/A", " TBD ", "-", "Nobody"])
def test_blank_and_placeholder_owners_do_not_count(owner) -> None:
    assert not has_owner(owner)


def test_a_source_synced_within_its_window_makes_only_unconfirmed_assets_stale() -> None:
    assert stale_assets(10, 0, NOW - timedelta(hours=20), 1, NOW) == 0
    assert stale_assets(10, 3, NOW - timedelta(hours=20), 1, NOW) == 3
    assert stale_assets(2, 5, NOW - timedelta(hours=20), 1, NOW) == 2  # never more than active


def test_a_source_silent_longer_than_its_window_makes_every_asset_stale() -> None:
    assert stale_assets(10, 0, NOW - timedelta(days=1, seconds=1), 1, NOW) == 10
    assert stale_assets(10, 0, NOW - timedelta(days=1), 1, NOW) == 0  # exactly the window
    assert stale_assets(10, 0, None, 7, NOW) == 10  # never synced successfully
    assert stale_assets(0, 0, None, 7, NOW) == 0


def test_impossible_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="stale_after_days=0"):
        stale_assets(1, 0, NOW, 0, NOW)
    with pytest.raises(ValueError, match="active=-1"):
        stale_assets(-1, 0, NOW, 1, NOW)

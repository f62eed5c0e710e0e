"""The blind spot lifecycle: new -> assigned -> adopted or dismissed, never silently dropped."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from autosec import cli
from autosec.discovery.assignment import rules_from_config
from autosec.discovery.billing import BillingConfig
from autosec.domain.models import Asset, AssetKind, BlindSpot, Criticality, Environment
from autosec.stages.discovery import run_billing
from autosec.store import discovery, inventory

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HEADER = "provider,account_id,account_name,service,cost,currency,owner_email,period\n"
RULES = rules_from_config(
    [
        {"id": "lab", "owner": "team-lab", "range": "10.20.0.0/16"},
        {"id": "ml", "owner": "team-ml", "provider": "aws", "account": "222222222222"},
    ]
)


def _host(asset_id: str, address: str) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.HOST,
        "file",
        "team-ops",
        Environment.PRODUCTION,
        Criticality.LOW,
        (address,),
    )


def _inventory(conn, *assets: Asset, at: datetime = T0) -> None:
    sync = inventory.start_sync(conn, "file", "file")
    inventory.apply_source_snapshot(conn, sync, "file", list(assets), at)
    conn.commit()


def _spot(address: str, at: datetime, port: int = 22) -> BlindSpot:
    return BlindSpot(address, port, "tcp_sweep", {"banner": "ssh"}, at)


def _events(conn, name: str) -> list[tuple[str, dict]]:
    return conn.execute(
        "SELECT subject, payload FROM events WHERE name = %s ORDER BY id", (name,)
    ).fetchall()


def _steps(conn, spot_id: int) -> list[tuple]:
    return [
        (s["from_lifecycle"], s["to_lifecycle"], s["actor"])
        for s in discovery.blind_spot_log(conn, spot_id)
    ]


def test_new_spots_are_logged_and_assigned_by_the_first_matching_rule(conn, tmp_path) -> None:
    export = tmp_path / "billing.csv"
    export.write_text(
        HEADER
        + "aws,222222222222,shadow-ml,SageMaker,9000.00,USD,alice@example.com,2026-10\n"
        + "aws,333333333333,other,EC2,1.00,USD,bob@example.com,2026-10\n"
    )
    outcome = run_billing(conn, BillingConfig(path=export), T0, assignment_rules=RULES)
    assert len(outcome.new_blind_spot_ids) == 2
    spots = {s["address"]: s for s in discovery.list_blind_spots(conn)}
    ml, other = spots["aws:account:222222222222"], spots["aws:account:333333333333"]
    assert (ml["lifecycle"], ml["owner"], ml["assigned_by_rule"]) == ("assigned", "team-ml", "ml")
    assert (other["lifecycle"], other["owner"]) == ("new", None)  # unowned, still listed
    assert _steps(conn, ml["id"]) == [(None, "new", "billing"), ("new", "assigned", "assignment")]
    assert _steps(conn, other["id"]) == [(None, "new", "billing")]
    [(subject, payload)] = _events(conn, "blind_spot.assigned")
    assert subject == "aws:account:222222222222:0"
    assert payload == {"id": ml["id"], "owner": "team-ml", "rule": "ml"}

    # Seen again: already assigned, so nothing is assigned or emitted twice.
    run_billing(conn, BillingConfig(path=export), T0 + timedelta(days=1), assignment_rules=RULES)
    assert len(_events(conn, "blind_spot.assigned")) == 1
    # Rules given later assign the spots that are still new.
    later = rules_from_config([{"id": "aws", "owner": "team-cloud", "provider": "aws"}])
    assigned = discovery.assign_blind_spots(conn, later, T0 + timedelta(days=2))
    assert [(a["id"], a["owner"], a["rule"]) for a in assigned] == [
        (other["id"], "team-cloud", "aws")
    ]


def test_dismissal_needs_a_person_and_a_reason_and_survives_new_sightings(conn) -> None:
    [(spot_id, _)] = discovery.record_blind_spots(conn, [_spot("10.20.0.5", T0)])
    for actor, reason, message in [
        ("alice", "", "needs a reason"),
        ("alice", "   ", "needs a reason"),
        ("", "lab printer", "say who you are"),
    ]:
        with pytest.raises(discovery.BlindSpotRefused, match=message):
            discovery.dismiss_blind_spot(conn, spot_id, actor, reason, T0)
    with pytest.raises(discovery.BlindSpotRefused, match="no blind spot 999"):
        discovery.dismiss_blind_spot(conn, 999, "alice", "x", T0)

    decided_at = T0 + timedelta(hours=1)
    spot = discovery.dismiss_blind_spot(conn, spot_id, "alice", " lab printer ", decided_at)
    assert (spot["lifecycle"], spot["status"], spot["decided_by"], spot["decision_reason"]) == (
        "dismissed",
        "resolved",
        "alice",
        "lab printer",
    )
    assert discovery.open_blind_spots(conn) == []
    [(subject, payload)] = _events(conn, "blind_spot.dismissed")
    assert subject == "10.20.0.5:22" and payload["by"] == "alice"
    with pytest.raises(discovery.BlindSpotRefused, match="already dismissed by alice"):
        discovery.dismiss_blind_spot(conn, spot_id, "bob", "again", decided_at)

    # Discovery sees it again twice: it stays dismissed, last_seen moves, one sighting is logged.
    for days in (1, 2):
        seen = T0 + timedelta(days=days)
        assert discovery.record_blind_spots(conn, [_spot("10.20.0.5", seen)]) == [(spot_id, False)]
    after = discovery.get_blind_spot(conn, spot_id)
    assert (after["lifecycle"], after["status"]) == ("dismissed", "resolved")
    assert after["last_seen"] == T0 + timedelta(days=2)
    assert after["decision_reason"] == "lab printer"
    assert _steps(conn, spot_id) == [
        (None, "new", "tcp_sweep"),
        ("new", "dismissed", "alice"),
        ("dismissed", "dismissed", "tcp_sweep"),
    ]
    # A source that no longer sees it resolves nothing and erases nothing.
    assert discovery.resolve_known(conn, "tcp_sweep", [], T0 + timedelta(days=3)) == 0
    assert discovery.get_blind_spot(conn, spot_id)["lifecycle"] == "dismissed"


def test_undecided_spots_reopen_and_their_resolution_is_logged(conn) -> None:
    [(spot_id, _)] = discovery.record_blind_spots(conn, [_spot("10.20.0.6", T0)])
    assert discovery.assign_blind_spots(conn, RULES, T0)[0]["owner"] == "team-lab"
    assert discovery.resolve_known(conn, "tcp_sweep", [], T0 + timedelta(days=1)) == 1
    assert discovery.open_blind_spots(conn) == []
    discovery.record_blind_spots(conn, [_spot("10.20.0.6", T0 + timedelta(days=2))])
    [again] = discovery.open_blind_spots(conn)
    assert (again["id"], again["lifecycle"], again["owner"]) == (spot_id, "assigned", "team-lab")
    assert _steps(conn, spot_id)[-1] == ("assigned", "assigned", "tcp_sweep")


def test_adoption_needs_an_existing_active_asset(conn) -> None:
    _inventory(conn, _host("web-1", "10.0.0.1"), _host("old-1", "10.0.0.2"))
    _inventory(conn, _host("web-1", "10.0.0.1"), at=T0 + timedelta(hours=1))  # retires old-1
    [(spot_id, _)] = discovery.record_blind_spots(conn, [_spot("10.20.0.7", T0)])
    with pytest.raises(discovery.BlindSpotRefused, match="no inventory asset 'nope'"):
        discovery.adopt_blind_spot(conn, spot_id, "bob", "nope", T0)
    with pytest.raises(discovery.BlindSpotRefused, match="'old-1' is retired, not active"):
        discovery.adopt_blind_spot(conn, spot_id, "bob", "old-1", T0)
    spot = discovery.adopt_blind_spot(conn, spot_id, "bob", "web-1", T0 + timedelta(hours=2))
    assert (spot["lifecycle"], spot["adopted_asset_id"], spot["decided_by"]) == (
        "adopted",
        "web-1",
        "bob",
    )
    [(_, payload)] = _events(conn, "blind_spot.adopted")
    assert payload["asset_id"] == "web-1"
    with pytest.raises(discovery.BlindSpotRefused, match="already adopted"):
        discovery.dismiss_blind_spot(conn, spot_id, "carol", "changed my mind", T0)
    discovery.record_blind_spots(conn, [_spot("10.20.0.7", T0 + timedelta(days=1))])
    assert discovery.get_blind_spot(conn, spot_id)["lifecycle"] == "adopted"


def test_the_log_is_append_only_and_the_schema_refuses_unexplained_decisions(conn) -> None:
    [(spot_id, _)] = discovery.record_blind_spots(conn, [_spot("10.20.0.8", T0)])
    conn.commit()
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE blind_spot_log SET reason = 'edited'")
    conn.rollback()
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "UPDATE blind_spots SET lifecycle = 'dismissed', decided_by = 'x', decided_at = now() "
            "WHERE id = %s",
            (spot_id,),
        )
    conn.rollback()


def test_completeness_is_one_row_a_day(conn) -> None:
    day = date(2026, 11, 1)
    assert discovery.snapshot_completeness(conn, day)["ratio"] is None  # nothing known at all
    _inventory(
        conn, _host("web-1", "10.0.0.1"), _host("web-2", "10.0.0.2"), _host("w3", "10.0.0.3")
    )
    discovery.record_blind_spots(conn, [_spot("10.20.0.9", T0)])
    row = discovery.snapshot_completeness(conn, day)  # same day: replaced, not added
    assert (row["inventoried"], row["open_blind_spots"], row["ratio"]) == (3, 1, Decimal("0.75"))
    [spot] = discovery.open_blind_spots(conn)
    discovery.dismiss_blind_spot(conn, spot["id"], "alice", "guest wifi", T0)
    discovery.snapshot_completeness(conn, day + timedelta(days=1))
    history = discovery.completeness_history(conn, day)
    assert [(h["day"], h["open_blind_spots"], h["ratio"]) for h in history] == [
        (day, 1, Decimal("0.75")),
        (day + timedelta(days=1), 0, Decimal("1")),
    ]
    assert len(discovery.completeness_history(conn, day + timedelta(days=1))) == 1


def test_cli_lists_dismisses_and_adopts(conn, store_url, capsys) -> None:
    _inventory(conn, _host("web-1", "10.0.0.1"))
    stored = discovery.record_blind_spots(
        conn, [_spot("10.20.0.10", T0), _spot("10.20.0.11", T0), _spot("10.20.0.12", T0)]
    )
    conn.commit()
    first, second, third = (spot_id for spot_id, _ in stored)

    def run(*argv: str) -> int:
        return cli.main(["--database-url", store_url, "blind-spots", *argv])

    assert run("dismiss", str(first), "--as", "alice", "--reason", " ") == 1
    assert "needs a reason" in capsys.readouterr().err
    assert run("dismiss", str(first), "--as", "alice", "--reason", "test rig") == 0
    assert "dismissed by alice: test rig" in capsys.readouterr().out
    assert run("adopt", str(second), "--as", "bob", "--asset", "missing") == 1
    assert "no inventory asset 'missing'" in capsys.readouterr().err
    assert run("adopt", str(second), "--as", "bob", "--asset", "web-1") == 0
    assert "adopted as asset web-1 by bob" in capsys.readouterr().out

    assert run("list") == 0
    out = capsys.readouterr().out
    assert f"#{third} [new, open] 10.20.0.12:22" in out and f"#{first} " not in out
    assert run("list", "--status", "dismissed", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["decided_by"]) for r in listed] == [(first, "alice")]
    conn.rollback()
    assert discovery.get_blind_spot(conn, second)["lifecycle"] == "adopted"

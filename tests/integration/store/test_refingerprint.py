"""The fingerprint migration path: stored findings recomputed to a new algorithm version, their
exceptions following, and a merge of two findings refused before anything is written."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from autosec.domain.fingerprint import FINGERPRINT_VERSION, fingerprint_of
from autosec.domain.models import Location
from autosec.store import db, findings
from autosec.store.findings import FingerprintCollision, refingerprint_findings

pytestmark = pytest.mark.integration
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
LOCATIONS = {
    "port": Location(host="127.0.0.11", port=443, protocol="tcp"),
    "dotfile": Location(file=".env", line=3),
    "url": Location(url="https://web.example/login?session=1"),
    "package": Location(purl="pkg:pypi/django@3.2.1"),
}


def _seed(
    conn, version: int, locations: dict[str, Location], rule: str | None = None
) -> dict[str, int]:
    conn.execute(
        "INSERT INTO sync_runs (source, kind, status) VALUES ('cmdb', 'file', 'succeeded')"
    )
    conn.execute(
        "INSERT INTO assets (id, name, kind, source, owner, environment, criticality, "
        "first_seen, last_seen) VALUES ('web', 'web', 'web_app', 'cmdb', 'team-web', "
        "'production', 'high', %s, %s)",
        (T0, T0),
    )
    ids = {}
    for name, location in locations.items():
        rule_id = rule or f"rule.{name}"
        ids[name] = conn.execute(
            "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, "
            "title, severity, status, priority, location, first_seen, last_seen) VALUES "
            "(%s, %s, 'web', 'nmap', %s, 't', 'high', 'open', 'act', %s, %s, %s) RETURNING id",
            (
                fingerprint_of("web", rule_id, location, version),
                version,
                rule_id,
                json.dumps(location.as_dict()),
                T0,
                T0,
            ),
        ).fetchone()[0]
    conn.commit()
    return ids


def _stored(conn) -> dict[int, tuple[str, int]]:
    rows = conn.execute("SELECT id, fingerprint, fingerprint_version FROM findings").fetchall()
    return {r[0]: (r[1].strip(), r[2]) for r in rows}


def _expected(ids: dict[str, int], version: int) -> dict[int, tuple[str, int]]:
    return {
        ids[name]: (fingerprint_of("web", f"rule.{name}", location, version), version)
        for name, location in LOCATIONS.items()
        if name in ids
    }


@pytest.fixture
def fresh_url(postgres_available) -> Iterator[str]:
    name = f"autosec_refingerprint_{os.getpid()}_{secrets.token_hex(3)}"
    db.create_database(ADMIN_URL, name)
    try:
        yield ADMIN_URL.rpartition("/")[0] + "/" + name
    finally:
        db.drop_database(ADMIN_URL, name)


def test_migration_0006_recomputes_version_1_fingerprints_and_back(fresh_url) -> None:
    db.upgrade(fresh_url, "0005")
    with db.connect(fresh_url) as conn:
        ids = _seed(conn, 1, LOCATIONS)
        assert _stored(conn) == _expected(ids, 1)

    db.upgrade(fresh_url, "0006")
    with db.connect(fresh_url) as conn:
        assert _stored(conn) == _expected(ids, 2)

    db.downgrade(fresh_url, "0005")
    with db.connect(fresh_url) as conn:
        assert _stored(conn) == _expected(ids, 1)


def test_a_downgrade_that_would_merge_findings_is_refused_whole(fresh_url) -> None:
    db.upgrade(fresh_url, "0006")
    both = {"dotfile": Location(file=".env", line=3), "plain": Location(file="env", line=3)}
    with db.connect(fresh_url) as conn:
        _seed(conn, 2, both, rule="r")
        before = _stored(conn)
        # Version 1 reads '.env' as 'env': the two would become one finding.
        assert len({fingerprint_of("web", "r", loc, 1) for loc in both.values()}) == 1
    with pytest.raises(FingerprintCollision):
        db.downgrade(fresh_url, "0005")
    with db.connect(fresh_url) as conn:
        assert db.current_revision(conn) == "0006"
        assert _stored(conn) == before


def test_refingerprinting_moves_exceptions_along_and_is_idempotent(conn) -> None:
    ids = _seed(conn, 1, LOCATIONS)
    old = _stored(conn)[ids["dotfile"]][0]
    conn.execute(
        "INSERT INTO finding_exceptions (kind, scope, fingerprint, reason, requested_by, "
        "requested_at, expires_at) VALUES ('false_positive', 'finding', %s, 'test fixture', "
        "'alice', %s, %s)",
        (old, T0, T0 + timedelta(days=30)),
    )
    result = refingerprint_findings(conn, 2)
    conn.commit()
    assert (result.version, result.updated, result.unchanged) == (2, len(LOCATIONS), 0)
    assert _stored(conn) == _expected(ids, 2)
    moved = conn.execute("SELECT fingerprint FROM finding_exceptions").fetchone()[0]
    assert moved == _stored(conn)[ids["dotfile"]][0] != old
    assert refingerprint_findings(conn, 2).updated == 0
    assert FINGERPRINT_VERSION == 2


def test_a_collision_with_a_finding_already_at_the_new_version_is_refused(conn) -> None:
    ids = _seed(conn, 1, {"dotfile": Location(file="./src/app.py", line=1)})
    # The same identity already stored at version 2 (say, seen again after a partial upgrade).
    conn.execute(
        "INSERT INTO findings (fingerprint, fingerprint_version, asset_id, engine, rule_id, "
        "title, severity, status, priority, location, first_seen, last_seen) SELECT %s, 2, "
        "asset_id, engine, rule_id, title, severity, status, priority, location, first_seen, "
        "last_seen FROM findings WHERE id = %s",
        (
            fingerprint_of("web", "rule.dotfile", Location(file="src/app.py", line=1), 2),
            ids["dotfile"],
        ),
    )
    conn.commit()
    before = _stored(conn)
    with pytest.raises(FingerprintCollision, match="would give 1 fingerprint"):
        findings.refingerprint_findings(conn, 2)
    conn.rollback()
    assert _stored(conn) == before

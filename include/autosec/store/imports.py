"""What the import stage needs from the store: which asset a report's target is, and a digest
of each finding's rating (severity, CVSS, CVE ids, CWE) so a reimport can tell updated from
unchanged. Titles and descriptions are scanner wording: a reworded finding is unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


def asset_addresses(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    """(id, name, addresses) of every active asset: the candidates a report target may name."""
    rows = conn.execute(
        "SELECT id, name, addresses FROM assets WHERE status = 'active' ORDER BY id"
    ).fetchall()
    return [(r[0], r[1], list(r[2])) for r in rows]


def active_asset_ids(conn: psycopg.Connection, asset_ids: Sequence[str]) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM assets WHERE status = 'active' AND id = ANY(%s)", (list(asset_ids),)
    ).fetchall()
    return {r[0] for r in rows}


def finding_digests(
    conn: psycopg.Connection, asset_ids: Sequence[str], engine: str
) -> dict[str, str]:
    """fingerprint -> digest of the finding's rating (not its status, not its wording)."""
    rows = conn.execute(
        "SELECT fingerprint, md5(concat_ws(E'\\x1f', severity, cvss_vector, cvss_score::text, "
        "array_to_string(cve_ids, ','), cwe)) "
        "FROM findings WHERE asset_id = ANY(%s) AND engine = %s",
        (list(asset_ids), engine),
    ).fetchall()
    return {r[0]: r[1] for r in rows}

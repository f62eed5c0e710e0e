"""What the import stage needs from the store beyond the inventory: a digest of each finding's
rating (severity, CVSS, CVE ids, CWE) so a reimport can tell updated from
unchanged. Titles and descriptions are scanner wording: a reworded finding is unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


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

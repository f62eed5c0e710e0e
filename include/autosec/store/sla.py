"""SLA breaches: open findings past their due date, each raised as ``sla.breached`` once.

One sweep is two statements whatever the number of findings: end the breaches that are over
(the finding was closed or reopened, or its due date moved), then record every new breach and
its event in one ``INSERT ... SELECT``. A finding still in the same breach is never raised
again; a later breach of the same finding (reopened, or a new due date passed) is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

_LOCK_KEY = "autosec.sla_sweep"
OPEN_STATUSES = ("open", "reopened")

# A finding (re)entered an open status after the breach was recorded: that is a new span.
_END_BREACHES = """
UPDATE sla_breaches b SET ended_at = %(now)s
FROM findings f
WHERE b.ended_at IS NULL AND f.id = b.finding_id
  AND (f.status NOT IN ('open', 'reopened')
       OR f.due_date IS DISTINCT FROM b.due_date
       OR f.due_date >= %(today)s
       OR EXISTS (
           SELECT 1 FROM finding_history h
           WHERE h.finding_id = b.finding_id AND h.at > b.breached_at
             AND h.to_status IN ('open', 'reopened')
             AND h.from_status IS DISTINCT FROM 'open'
             AND h.from_status IS DISTINCT FROM 'reopened'))
"""

# The team is the finding's owner, else its asset's: who must act on it.
_RAISE_BREACHES = """
WITH breached AS (
    INSERT INTO sla_breaches (finding_id, due_date, breached_at)
    SELECT f.id, f.due_date, %(now)s
    FROM findings f
    WHERE f.status IN ('open', 'reopened') AND f.due_date < %(today)s
      AND NOT EXISTS (
          SELECT 1 FROM sla_breaches b WHERE b.finding_id = f.id AND b.ended_at IS NULL)
    ON CONFLICT (finding_id) WHERE ended_at IS NULL DO NOTHING
    RETURNING finding_id, due_date
)
INSERT INTO events (name, subject, payload, at)
SELECT 'sla.breached', 'finding:' || f.id,
       jsonb_build_object(
           'finding_id', f.id,
           'asset_id', f.asset_id,
           'team', coalesce(nullif(f.owner, ''), a.owner, ''),
           'owner', f.owner,
           'severity', f.severity,
           'priority', f.priority,
           'title', left(f.title, 300),
           'due_date', b.due_date,
           'days_overdue', %(today)s::date - b.due_date,
           'summary', f.severity || ' ' || left(f.title, 120) || ' on ' || f.asset_id
               || ', due ' || b.due_date || ' (' || (%(today)s::date - b.due_date)
               || ' days overdue)'),
       %(now)s
FROM breached b
JOIN findings f ON f.id = b.finding_id
LEFT JOIN assets a ON a.id = f.asset_id
ORDER BY f.id
"""


@dataclass(frozen=True)
class SweepCounts:
    breached: int
    ended: int

    def as_dict(self) -> dict[str, int]:
        return {"breached": self.breached, "ended": self.ended}


def sweep(conn: psycopg.Connection, now: datetime) -> SweepCounts:
    """Raise ``sla.breached`` for every open finding newly past its due date (``now``'s UTC day
    is the first day a finding due the day before is late). The caller commits."""
    params = {"now": now, "today": now.astimezone(UTC).date()}
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
    ended = conn.execute(_END_BREACHES, params).rowcount
    breached = conn.execute(_RAISE_BREACHES, params).rowcount
    return SweepCounts(breached=breached, ended=ended)


def active_breaches(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM sla_breaches WHERE ended_at IS NULL").fetchone()[0]

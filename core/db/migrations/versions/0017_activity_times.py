"""Activity at its own time: correct what was dated when it was processed.

Until now, an event's activity moved the member's ``last_activity_at`` to the time it was processed, and a tier move
it caused was dated then too (``tier_changes.changed_at``, ``members.tier_since``), so a backfill of old events made
every member look active the day of the import. The application now uses each event's ``occurred_at`` (never later
than when it was received); this migration recomputes the stored times from the events:

- ``point_balances.last_activity_at``: the newest activity time of the member's awarded events (``occurred_at``,
  at most ``received_at``), but never before the enrolment (a member enrolled by an event starts at that event's
  time); only ever moved earlier, and only for members with such events. Events of types that do not count as
  activity (the hotel plugin's points gifts and transfers) are left out.
- ``members.tier_since`` and ``tier_changes.changed_at`` of moves an event caused (``details.event_id``): that
  event's activity time, where earlier. (The validity a move computed from its processing time is left as it is.)

Row-level security is forced on these tables, for the owner too: it is lifted for the correction, inside this
migration's transaction, as 0009 does.

Revision ID: 0017_activity_times
Revises: 0016_data_imports
Create Date: 2026-12-05 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017_activity_times"
down_revision: str | Sequence[str] | None = "0016_data_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("point_balances", "members", "events", "tier_changes")
#: Event types registered with ``counts_as_activity=False`` (plugins/hotel/events.py) when this was written.
NOT_ACTIVITY = ("hotel.points_gift", "hotel.points_transfer")

#: An event's activity time: when it occurred, never later than when it was received.
ACTIVITY_AT = "CASE WHEN e.occurred_at < e.received_at THEN e.occurred_at ELSE e.received_at END"

_NOT_ACTIVITY_SQL = ", ".join(f"'{t}'" for t in NOT_ACTIVITY)
#: The newest activity of the balance's member.
LATEST = f"""(SELECT MAX({ACTIVITY_AT}) FROM events e
    WHERE e.tenant_id = b.tenant_id AND e.member_id = b.member_id AND e.status = 'awarded'
      AND e.type NOT IN ({_NOT_ACTIVITY_SQL}))"""  # noqa: S608 (constants only)
#: Where the member's clock starts: the event that enrolled it (received the very moment the member was created), or
#: the enrolment.
START = f"""COALESCE(
    (SELECT MIN({ACTIVITY_AT}) FROM events e JOIN members m ON m.tenant_id = e.tenant_id AND m.id = e.member_id
     WHERE e.tenant_id = b.tenant_id AND e.member_id = b.member_id AND e.received_at = m.created_at),
    (SELECT m.created_at FROM members m WHERE m.tenant_id = b.tenant_id AND m.id = b.member_id))"""  # noqa: S608
CORRECTED = f"CASE WHEN {LATEST} > {START} THEN {LATEST} ELSE {START} END"


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(
        f"UPDATE point_balances AS b SET last_activity_at = {CORRECTED} "  # noqa: S608 (constants only)
        f"WHERE {LATEST} IS NOT NULL AND {CORRECTED} < b.last_activity_at"
    )
    event_id = "tc.details ->> 'event_id'" if postgres else "json_extract(tc.details, '$.event_id')"
    caused = f"""(SELECT {ACTIVITY_AT} FROM events e
        WHERE e.tenant_id = tc.tenant_id AND e.event_id = {event_id})"""  # noqa: S608 (constants only)
    # The member's current tier since the move that gave it (read before that move's own time is corrected).
    op.execute(
        f"""UPDATE members AS m SET tier_since = (
              SELECT {caused} FROM tier_changes tc
              WHERE tc.tenant_id = m.tenant_id AND tc.member_id = m.id AND tc.changed_at = m.tier_since
                AND tc.reason <> 'renewal' AND {caused} < tc.changed_at
              ORDER BY 1 DESC LIMIT 1)
            WHERE EXISTS (
              SELECT 1 FROM tier_changes tc
              WHERE tc.tenant_id = m.tenant_id AND tc.member_id = m.id AND tc.changed_at = m.tier_since
                AND tc.reason <> 'renewal' AND {caused} < tc.changed_at)"""  # noqa: S608 (constants only)
    )
    op.execute(
        f"UPDATE tier_changes AS tc SET changed_at = {caused} "  # noqa: S608 (constants only)
        f"WHERE {event_id} IS NOT NULL AND {caused} < tc.changed_at"
    )
    if postgres:
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    """Nothing to undo: the processing times this corrected are not kept, and the corrected times stay valid."""

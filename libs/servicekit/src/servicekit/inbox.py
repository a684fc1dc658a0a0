"""The inbox: the ids of the events a service has handled, so a redelivery is handled once.

`servicekit.consumer` records a batch's ids with `RECORD_NEW` in the transaction of its
handlers; the maintenance loop forgets old ids with `prune_inbox`.
"""

from datetime import timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.tables import inbox_event

RECORD_NEW = text(
    "INSERT INTO inbox_event (event_id, event_type)"
    " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS varchar[]))"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
"""Record a batch's event ids; returns those not seen before. One statement, built once,
whatever the batch size (a multi-row VALUES would be rebuilt for every batch)."""


async def prune_inbox(session: AsyncSession, limit: int, *, older_than_s: float) -> int:
    """Forget up to `limit` handled event ids older than `older_than_s` (far past any
    redelivery); returns how many."""
    old = select(inbox_event.c.event_id).where(
        inbox_event.c.received_at < func.now() - timedelta(seconds=older_than_s)
    )
    result = await session.execute(
        delete(inbox_event).where(inbox_event.c.event_id.in_(old.limit(limit)))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

"""Acknowledge and resolve a page. States move forward only; doing again what is done is
success. Each stops the page's ladder (its timer) in the same transaction. Nothing here
commits."""

import uuid
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person
from contracts.notifier import PageAcknowledged, PageResolved
from notifier import timeline
from notifier.models import page
from notifier.paging import ESCALATE
from notifier.settings import Settings
from servicekit import timers
from servicekit.outbox import publish
from servicekit.problems import Conflict, NotFound


async def acknowledge(
    session: AsyncSession,
    settings: Settings,
    page_id: uuid.UUID,
    *,
    by: Person,
    by_id: uuid.UUID | None,
    causation: Envelope | None = None,
) -> Row[Any]:
    """Acknowledge a page: its ladder stops. Acknowledging again is success; a resolved
    page cannot be acknowledged (409)."""
    row = await timeline.locked_page(session, page_id)
    if row is None:
        raise NotFound(f"no page {page_id}")
    if row.state == "resolved":
        raise Conflict("the page is already resolved")
    if row.state == "acknowledged":
        return row
    at = timeline.now()
    await session.execute(
        update(page)
        .where(page.c.id == page_id)
        .values(
            state="acknowledged",
            acknowledged_at=at,
            acknowledged_by=by_id,
            acknowledged_by_name=by.name,
        )
    )
    await timers.cancel(session, kind=ESCALATE, key=str(page_id))
    await timeline.note(session, page_id, "acknowledged", f"by {by.name}")
    await publish(
        session,
        PageAcknowledged(
            page_id=page_id,
            product=timeline.product_of(row),
            by=by,
            ticket_ids=await timeline.ticket_ids(session, page_id),
            acknowledged_at=at,
        ),
        producer=timeline.PRODUCER,
        causation=causation,
    )
    return await timeline.locked_page(session, page_id) or row


async def resolve(
    session: AsyncSession,
    page_id: uuid.UUID,
    *,
    note: str,
    causation: Envelope | None = None,
) -> Row[Any]:
    """Resolve a page (from triggered or acknowledged); resolving again is success."""
    row = await timeline.locked_page(session, page_id)
    if row is None:
        raise NotFound(f"no page {page_id}")
    if row.state == "resolved":
        return row
    at = timeline.now()
    await session.execute(
        update(page).where(page.c.id == page_id).values(state="resolved", resolved_at=at)
    )
    await timers.cancel(session, kind=ESCALATE, key=str(page_id))
    await timeline.note(session, page_id, "resolved", note)
    await publish(
        session,
        PageResolved(
            page_id=page_id,
            product=timeline.product_of(row),
            ticket_ids=await timeline.ticket_ids(session, page_id),
            resolved_at=at,
            note=note[:2000],
        ),
        producer=timeline.PRODUCER,
        causation=causation,
    )
    return await timeline.locked_page(session, page_id) or row

"""Ticket status and timeline: statuses only move forward, and each move is published."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import ProductRef
from contracts.intake import TicketStatusChanged
from intake.models import product, ticket, ticket_event
from intake.schemas import STATUS_ORDER, TicketRead
from intake.settings import Settings
from intake.tickets.filing import PRODUCER
from intake.tickets.queries import get_ticket
from servicekit.outbox import publish


async def advance(
    *,
    session: AsyncSession,
    ticket_ids: Sequence[uuid.UUID],
    to_status: str,
    at: datetime,
    detail: str,
    causation: Envelope | None = None,
) -> list[uuid.UUID]:
    """Move tickets forward to `to_status` (never back), log it, publish ticket.status_changed.

    Returns the ids of the tickets that moved; unknown ids and tickets already
    at or past `to_status` are left alone.
    """
    if not ticket_ids:
        return []
    rank = STATUS_ORDER.index(to_status)
    rows = (
        await session.execute(
            select(
                ticket.c.id, ticket.c.number, ticket.c.status, ticket.c.product_slug, product.c.name
            )
            .join(product, product.c.slug == ticket.c.product_slug)
            .where(ticket.c.id.in_(sorted(set(ticket_ids))))
            .order_by(ticket.c.id)
            .with_for_update(of=ticket)
        )
    ).all()
    moved = []
    for row in rows:
        if STATUS_ORDER.index(row.status) >= rank:
            continue
        await session.execute(
            update(ticket)
            .where(ticket.c.id == row.id)
            .values(status=to_status, updated_at=func.now())
        )
        await session.execute(
            insert(ticket_event).values(
                ticket_id=row.id,
                kind="status_changed",
                status=to_status,
                detail=detail,
                event_id=causation.id if causation else None,
                at=at,
            )
        )
        await publish(
            session,
            TicketStatusChanged(
                ticket_id=row.id,
                number=row.number,
                product=ProductRef(slug=row.product_slug, name=row.name),
                old_status=row.status,
                new_status=to_status,
                changed_at=at,
            ),
            producer=PRODUCER,
            causation=causation,
        )
        moved.append(row.id)
    return moved


async def note(
    *,
    session: AsyncSession,
    ticket_ids: Sequence[uuid.UUID],
    kind: str,
    at: datetime,
    detail: str,
    causation: Envelope | None = None,
) -> None:
    """Add a timeline entry (no status change) to each of our tickets among `ticket_ids`."""
    if not ticket_ids:
        return
    known = (
        await session.scalars(select(ticket.c.id).where(ticket.c.id.in_(set(ticket_ids))))
    ).all()
    if known:
        await session.execute(
            insert(ticket_event),
            [
                {
                    "ticket_id": ticket_id,
                    "kind": kind,
                    "detail": detail,
                    "event_id": causation.id if causation else None,
                    "at": at,
                }
                for ticket_id in known
            ],
        )


async def close_ticket(*, session: AsyncSession, ref: str, settings: Settings) -> TicketRead:
    """Close a ticket: the last step; closing a closed ticket changes nothing."""
    found = await get_ticket(session=session, ref=ref, settings=settings, for_update=True)
    await advance(
        session=session,
        ticket_ids=[found.id],
        to_status="closed",
        at=datetime.now(UTC),
        detail="Closed by support.",
    )
    return await get_ticket(session=session, ref=ref, settings=settings)

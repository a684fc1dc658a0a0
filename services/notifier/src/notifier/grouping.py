"""Grouping tickets into pages and remembering signals already acted on; shared by the
event handlers. Nothing here commits."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Person
from contracts.intake import TicketFiled
from notifier.models import handled_signal, page_ticket


async def first_time(session: AsyncSession, subject_id: uuid.UUID, at: Any, kind: str) -> bool:
    """Record a signal; False if it was handled before."""
    result = await session.execute(
        insert(handled_signal)
        .values(subject_id=subject_id, at=at, kind=kind)
        .on_conflict_do_nothing()
        .returning(handled_signal.c.subject_id)
    )
    return result.first() is not None


async def add_ticket(
    session: AsyncSession,
    page_id: uuid.UUID,
    *,
    ticket_id: uuid.UUID,
    number: str,
    reporter: Person,
    subject: str,
    filed_at: datetime,
) -> bool:
    """Group a ticket into a page; False if it already is in one."""
    result = await session.execute(
        insert(page_ticket)
        .values(
            ticket_id=ticket_id,
            page_id=page_id,
            number=number,
            reporter_name=reporter.name,
            reporter_email=reporter.email,
            subject=subject[:300],
            filed_at=filed_at,
        )
        .on_conflict_do_nothing()
        .returning(page_ticket.c.ticket_id)
    )
    return result.first() is not None


async def one_at_a_time(session: AsyncSession, monitor_id: uuid.UUID) -> None:
    """Serialize a monitor's events across consumer workers and replicas (until commit), so
    a down and an up handled at once cannot each miss the other."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"notifier:monitor:{monitor_id}")))
    )


async def fill_number(session: AsyncSession, ticket: TicketFiled) -> None:
    """Complete a ticket grouped before its ``ticket.filed`` arrived (from its overdue
    deadline, which does not carry the number)."""
    await session.execute(
        update(page_ticket)
        .where(page_ticket.c.ticket_id == ticket.ticket_id, page_ticket.c.number == "")
        .values(number=ticket.number, subject=ticket.subject[:300])
    )

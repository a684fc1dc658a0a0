"""A page's timeline and the page as use cases read it."""

import uuid
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Person, ProductRef
from notifier.models import page, page_event, page_ticket
from notifier.settings import Settings

PRODUCER = "notifier"


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


async def note(session: AsyncSession, page_id: uuid.UUID, kind: str, detail: str = "") -> None:
    """Add a step to a page's timeline."""
    await session.execute(
        insert(page_event).values(page_id=page_id, kind=kind, detail=detail[:4000])
    )


async def locked_page(session: AsyncSession, page_id: uuid.UUID) -> Row[Any] | None:
    """The page, locked for this transaction, or None."""
    return (
        await session.execute(select(page).where(page.c.id == page_id).with_for_update())
    ).first()


async def ticket_ids(session: AsyncSession, page_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """Tickets grouped into a page, in the order they joined."""
    rows = await session.scalars(
        select(page_ticket.c.ticket_id)
        .where(page_ticket.c.page_id == page_id)
        .order_by(page_ticket.c.joined_at, page_ticket.c.ticket_id)
    )
    return tuple(rows)


def product_of(row: Row[Any]) -> ProductRef:
    """A page's product as events carry it."""
    return ProductRef(slug=row.product_slug, name=row.product_name)


def klaxon_person(settings: Settings, name: str) -> Person:
    """A Person for an action no known person took (an API key, the system): Klaxon's own
    sender address with `name`."""
    address = parseaddr(settings.mail_from)[1] or f"klaxon@{settings.mail_domain}"
    return Person(name=name[:200] or "Klaxon", email=address)

"""Pages as the API shows them, and the acknowledge/resolve actions by API or link."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Person
from notifier import actions, schemas, timeline
from notifier.models import page, page_event, page_ticket, person
from notifier.settings import Settings
from servicekit.problems import NotFound, Unprocessable


async def read_page(
    session: AsyncSession, row: Row[Any], *, with_timeline: bool
) -> schemas.PageRead:
    """A page row with its tickets (and timeline)."""
    tickets = (
        await session.execute(
            select(page_ticket)
            .where(page_ticket.c.page_id == row.id)
            .order_by(page_ticket.c.joined_at)
        )
    ).all()
    events: Sequence[Row[Any]] = ()
    if with_timeline:
        events = (
            await session.execute(
                select(page_event).where(page_event.c.page_id == row.id).order_by(page_event.c.id)
            )
        ).all()
    return schemas.PageRead(
        **{
            name: getattr(row, name) for name in schemas.PageRead.model_fields if hasattr(row, name)
        },
        tickets=[schemas.PageTicket.model_validate(t._asdict()) for t in tickets],
        timeline=[schemas.PageEventRead.model_validate(e._asdict()) for e in events],
    )


async def get_page(session: AsyncSession, page_id: uuid.UUID) -> schemas.PageRead:
    """One page with its timeline; 404 if unknown."""
    row = (await session.execute(select(page).where(page.c.id == page_id))).first()
    if row is None:
        raise NotFound(f"no page {page_id}")
    return await read_page(session, row, with_timeline=True)


async def list_pages(
    session: AsyncSession, *, state: str | None, product: str | None, limit: int
) -> list[schemas.PageRead]:
    """Pages, newest first, filtered by state and product."""
    query = select(page).order_by(page.c.opened_at.desc()).limit(limit)
    if state:
        query = query.where(page.c.state == state)
    if product:
        query = query.where(page.c.product_slug == product)
    return [
        await read_page(session, row, with_timeline=False) for row in await session.execute(query)
    ]


async def actor(
    session: AsyncSession, settings: Settings, person_id: uuid.UUID | None, fallback: str
) -> tuple[Person, uuid.UUID | None]:
    """Who acts: a known person (422 if unknown), or `fallback` by name."""
    if person_id is None:
        return timeline.klaxon_person(settings, fallback), None
    row = (await session.execute(select(person).where(person.c.id == person_id))).first()
    if row is None:
        raise Unprocessable("person_id", f"unknown person {person_id}")
    if row.email:
        return Person(name=row.name, email=row.email), row.id
    return timeline.klaxon_person(settings, row.name), row.id


async def act(
    session: AsyncSession,
    settings: Settings,
    page_id: uuid.UUID,
    *,
    action: str,
    person_id: uuid.UUID | None,
    fallback: str,
    note: str = "",
) -> schemas.PageRead:
    """Acknowledge or resolve a page as `person_id` (or `fallback`)."""
    by, by_id = await actor(session, settings, person_id, fallback)
    if action == "acknowledge":
        row = await actions.acknowledge(session, settings, page_id, by=by, by_id=by_id)
    else:
        row = await actions.resolve(session, page_id, note=note or f"resolved by {by.name}")
    return await read_page(session, row, with_timeline=False)

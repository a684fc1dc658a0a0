"""A page's timeline and the page as use cases read it."""

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Insert, Row, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person, ProductRef
from notifier.models import page, page_event, page_ticket
from notifier.settings import Settings
from servicekit.outbox import OUTBOX_VALUES, outbox_params
from servicekit.tables import outbox_event

PRODUCER = "notifier"


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@functools.lru_cache(maxsize=32)
def _notes_stmt(count: int, with_event: bool) -> Insert:
    stmt = insert(page_event).values(
        [
            {
                "page_id": bindparam(f"p{i}"),
                "kind": bindparam(f"k{i}"),
                "detail": bindparam(f"d{i}"),
            }
            for i in range(count)
        ]
    )
    if with_event:
        stmt = stmt.add_cte(insert(outbox_event).values(OUTBOX_VALUES).cte("event"))
    return stmt


async def write_notes(
    session: AsyncSession,
    steps: Sequence[tuple[uuid.UUID, str, str]],
    *,
    event: Envelope | None = None,
) -> None:
    """Add several (page, kind, detail) steps, in this order, and queue `event` in the
    outbox, with one statement (built once per number of steps)."""
    params: dict[str, Any] = outbox_params(event) if event is not None else {}
    for i, (page_id, kind, detail) in enumerate(steps):
        params.update({f"p{i}": page_id, f"k{i}": kind, f"d{i}": detail[:4000]})
    await session.execute(_notes_stmt(len(steps), event is not None), params)


async def note(session: AsyncSession, page_id: uuid.UUID, kind: str, detail: str = "") -> None:
    """Add a step to a page's timeline."""
    await write_notes(session, [(page_id, kind, detail)])


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

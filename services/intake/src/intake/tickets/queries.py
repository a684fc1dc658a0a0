"""Reading tickets: one by id or number, pages of them (keyset cursors), an attachment."""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.errors import TicketNotFound, Unprocessable
from intake.models import attachment, product, ticket, ticket_event
from intake.schemas import (
    AttachmentRead,
    ProductBrief,
    Reporter,
    TicketPage,
    TicketRead,
    TicketSummary,
    TimelineEntry,
)
from intake.settings import Settings
from intake.tickets.files import attachment_url
from intake.tickets.wording import next_steps


def parse_ref(ref: str) -> tuple[str, Any]:
    """A ticket reference as ("number", "KLX-1042") or ("id", UUID)."""
    upper = ref.strip().upper()
    if upper.startswith("KLX-") and upper[4:].isdigit() and len(upper) <= 20:
        return "number", upper
    try:
        return "id", uuid.UUID(ref)
    except ValueError:
        raise Unprocessable("ref", "must be a ticket UUID or a number like KLX-1042") from None


def ticket_ref(ref: str) -> Any:
    """A WHERE clause for a ticket id (UUID) or number (KLX-1042)."""
    column, value = parse_ref(ref)
    return ticket.c[column] == value


def ticket_url(ticket_id: uuid.UUID | str) -> str:
    """Where a ticket is served."""
    return f"/v1/tickets/{ticket_id}"


_SUMMARY_COLUMNS = (
    ticket.c.id,
    ticket.c.number,
    ticket.c.organization,
    ticket.c.reporter_name,
    ticket.c.reporter_email,
    ticket.c.product_slug,
    product.c.name.label("product_name"),
    ticket.c.severity,
    ticket.c.subject,
    ticket.c.status,
    ticket.c.monitoring_state,
    ticket.c.created_at,
    ticket.c.updated_at,
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "organization": row.organization,
        "reporter": Reporter.model_construct(name=row.reporter_name, email=row.reporter_email),
        "product": ProductBrief(slug=row.product_slug, name=row.product_name),
        "severity": row.severity,
        "subject": row.subject,
        "status": row.status,
        "monitoring_state": row.monitoring_state,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def get_ticket(
    *, session: AsyncSession, ref: str, settings: Settings, for_update: bool = False
) -> TicketRead:
    """The ticket with that id or number, with its attachments and timeline."""
    query = (
        select(*_SUMMARY_COLUMNS, ticket.c.description, ticket.c.urls, ticket.c.error_text)
        .join(product, product.c.slug == ticket.c.product_slug)
        .where(ticket_ref(ref))
    )
    if for_update:
        query = query.with_for_update(of=ticket)
    row = (await session.execute(query)).first()
    if row is None:
        raise TicketNotFound(f"no ticket {ref!r}")
    files = (
        await session.execute(
            select(
                attachment.c.id,
                attachment.c.filename,
                attachment.c.content_type,
                attachment.c.size_bytes,
                attachment.c.sha256,
                attachment.c.created_at,
            )
            .where(attachment.c.ticket_id == row.id)
            .order_by(attachment.c.seq)
        )
    ).all()
    events = (
        await session.execute(
            select(
                ticket_event.c.at, ticket_event.c.kind, ticket_event.c.status, ticket_event.c.detail
            )
            .where(ticket_event.c.ticket_id == row.id)
            .order_by(ticket_event.c.id)
        )
    ).all()
    return TicketRead(
        **_summary(row),
        description=row.description,
        urls=list(row.urls),
        error_text=row.error_text,
        attachments=[AttachmentRead(**f._mapping, url=attachment_url(row.id, f.id)) for f in files],
        timeline=[TimelineEntry(**e._mapping) for e in events],
        next_steps=next_steps(
            row.severity, row.product_name, settings.status_page_update_promise_min, row.status
        ),
    )


def encode_cursor(created_at: datetime, ticket_id: uuid.UUID) -> str:
    """An opaque cursor for the page after (created_at, id)."""
    raw = json.dumps([created_at.isoformat(), str(ticket_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor stands for; 422 if this API did not make it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, ticket_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(ticket_id, str):
            raise TypeError("not two strings")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), uuid.UUID(ticket_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor", "is not a cursor this API returned") from None


@dataclass(frozen=True)
class TicketFilter:
    """Filters of the ticket list."""

    status: str | None = None
    severity: str | None = None
    product: str | None = None
    organization: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


async def list_tickets(
    *, session: AsyncSession, filters: TicketFilter, cursor: str | None, limit: int
) -> TicketPage:
    """Tickets newest first, filtered, one page at a time (keyset on created_at, id)."""
    conditions = []
    if filters.status:
        conditions.append(ticket.c.status == filters.status)
    if filters.severity:
        conditions.append(ticket.c.severity == filters.severity)
    if filters.product:
        conditions.append(ticket.c.product_slug == filters.product)
    if filters.organization:
        conditions.append(ticket.c.organization == filters.organization)
    if filters.created_from:
        conditions.append(ticket.c.created_at >= filters.created_from)
    if filters.created_to:
        conditions.append(ticket.c.created_at < filters.created_to)
    if cursor:
        at, last_id = decode_cursor(cursor)
        conditions.append(
            or_(ticket.c.created_at < at, and_(ticket.c.created_at == at, ticket.c.id < last_id))
        )
    rows = (
        await session.execute(
            select(*_SUMMARY_COLUMNS)
            .join(product, product.c.slug == ticket.c.product_slug)
            .where(*conditions)
            .order_by(ticket.c.created_at.desc(), ticket.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    items = [TicketSummary(**_summary(row)) for row in rows[:limit]]
    next_cursor = (
        encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return TicketPage(items=items, next_cursor=next_cursor)

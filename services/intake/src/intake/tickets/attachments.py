"""Attachments added to a filed ticket, and serving an attachment's bytes.

Adding runs in the route's session; its Idempotency-Key claim, shared with filing, runs on
the session's own asyncpg connection inside that transaction (`servicekit.driver.of_session`).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.errors import TicketNotFound, Unprocessable
from intake.models import attachment, ticket, ticket_event
from intake.schemas import AttachmentRead
from intake.settings import Settings
from intake.tickets import idempotency
from intake.tickets.files import (
    Upload,
    attachment_read,
    attachment_rows,
    check_room,
    check_uploads,
    file_digests,
)
from intake.tickets.filing import Filed, replayed
from intake.tickets.queries import parse_ref, ticket_ref
from servicekit.driver import of_session

_ATTACHMENTS = TypeAdapter(list[AttachmentRead])


async def add_attachments(
    *,
    session: AsyncSession,
    ref: str,
    uploads: Sequence[Upload],
    api_key_id: uuid.UUID,
    idempotency_key: str | None,
    settings: Settings,
) -> Filed:
    """Attach files to a ticket, within the per-ticket limit, with a timeline entry (or
    replay the first request with the same Idempotency-Key)."""
    if not uploads:
        raise Unprocessable("file", "send at least one file part")
    column, value = parse_ref(ref)
    ticket_id = await session.scalar(
        select(ticket.c.id).where(ticket.c[column] == value).with_for_update()
    )
    if ticket_id is None:
        raise TicketNotFound(f"no ticket {ref!r}")
    checked = check_uploads(uploads, settings=settings)
    rows = attachment_rows(ticket_id, checked, datetime.now(UTC))
    added = [attachment_read(r) for r in rows]
    content = _ATTACHMENTS.dump_json(added)
    if idempotency_key is not None:
        earlier = await idempotency.claim(
            await of_session(session),
            api_key_id=api_key_id,
            key=idempotency_key,
            request_hash=idempotency.fingerprint(
                {"attach_to": [column, str(value)], "attachments": file_digests(uploads)}
            ),
            status_code=201,
            response=content.decode(),
        )
        if earlier is not None:  # replayed before the limit is checked: it counts itself
            return replayed(earlier, location=None)
    existing = await session.scalar(
        select(func.count()).select_from(attachment).where(attachment.c.ticket_id == ticket_id)
    )
    check_room(existing=existing or 0, adding=len(rows), settings=settings)
    await session.execute(insert(attachment), rows)
    await session.execute(
        insert(ticket_event).values(
            ticket_id=ticket_id,
            kind="attachment_added",
            detail=f"Attached {', '.join(a.filename for a in added)}.",
        )
    )
    await session.execute(
        update(ticket).where(ticket.c.id == ticket_id).values(updated_at=func.now())
    )
    return Filed(201, content, replayed=False)


@dataclass(frozen=True)
class StoredFile:
    """An attachment's bytes and how to serve them."""

    filename: str
    content_type: str
    content: bytes


async def get_attachment(
    *, session: AsyncSession, ref: str, attachment_id: uuid.UUID
) -> StoredFile:
    """The bytes of one attachment of a ticket."""
    row = (
        await session.execute(
            select(attachment.c.filename, attachment.c.content_type, attachment.c.content)
            .join(ticket, ticket.c.id == attachment.c.ticket_id)
            .where(ticket_ref(ref), attachment.c.id == attachment_id)
        )
    ).first()
    if row is None:
        raise TicketNotFound(f"ticket {ref!r} has no attachment {attachment_id}")
    return StoredFile(row.filename, row.content_type, row.content)

"""Emails to the people who reported an outage, and reminders before a status deadline.

Guarantee: a reporter's acknowledgement email is one delivery with the dedupe key
``reporter-ack:<ticket>``, queued only once the page's first on-call notification was
accepted by its channel (or at once for a ticket joining a page already notified), so
it goes out exactly once however often either path runs. A reminder is one delivery
per ticket and deadline.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, any_, select
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import emails, links
from notifier.models import page_ticket, status_page_link
from notifier.settings import Settings
from servicekit.deliveries import enqueue


async def status_links(
    session: AsyncSession, settings: Settings, product_slug: str
) -> list[tuple[str, str]]:
    """(title, url) of the status pages covering a product; the default page if none does."""
    rows = (
        await session.execute(
            select(status_page_link.c.title, status_page_link.c.url)
            .where(
                any_(status_page_link.c.products) == product_slug,
                status_page_link.c.active,
            )
            .order_by(status_page_link.c.status_page)
        )
    ).all()
    return [(r.title or r.url, r.url) for r in rows] or [
        ("Status page", settings.default_status_page_url)
    ]


def _context(
    settings: Settings, page_row: Row[Any], ticket: Row[Any], links: list[tuple[str, str]]
) -> dict[str, Any]:
    deadline = ticket.filed_at + timedelta(minutes=settings.status_update_promise_min)
    return {
        "reporter_name": ticket.reporter_name,
        "number": ticket.number or "(pending)",
        "subject": ticket.subject,
        "product_name": page_row.product_name,
        "links": emails.link_list(links),
        "phone": settings.phone_for(page_row.product_slug),
        "promise_min": settings.status_update_promise_min,
        "deadline": emails.fmt_time(deadline),
    }


async def acknowledge_reporters(
    session: AsyncSession,
    settings: Settings,
    page_row: Row[Any],
    *,
    only: uuid.UUID | None = None,
) -> int:
    """Queue the acknowledgement email of every ticket on the page not yet sent one (or of
    ticket `only`); returns how many were queued now."""
    query = select(page_ticket).where(
        page_ticket.c.page_id == page_row.id, page_ticket.c.reporter_acknowledged_at.is_(None)
    )
    if only is not None:
        query = query.where(page_ticket.c.ticket_id == only)
    tickets = (await session.execute(query)).all()
    if not tickets:
        return 0
    links = await status_links(session, settings, page_row.product_slug)
    queued = 0
    for ticket in tickets:
        key = f"reporter-ack:{ticket.ticket_id}"
        payload = emails.render(
            settings,
            template="reporter_ack",
            to=ticket.reporter_email,
            subject=f"[{ticket.number or 'CRITICAL report'}] The on-call engineer has been notified",
            dedupe_key=key,
            thread=emails.ticket_thread(settings, ticket.ticket_id),
            is_thread_start=True,
            context={
                "heading": "The on-call engineer has been notified",
                **_context(settings, page_row, ticket, links),
            },
            meta={
                "purpose": "reporter_ack",
                "page_id": str(page_row.id),
                "ticket_id": str(ticket.ticket_id),
                "reporter_name": ticket.reporter_name,
            },
        )
        queued += await enqueue(session, channel="email", dedupe_key=key, payload=payload)
    return queued


async def remind_reporter(
    session: AsyncSession,
    settings: Settings,
    page_row: Row[Any],
    ticket: Row[Any],
    *,
    deadline_at: datetime,
) -> bool:
    """Queue the reminder of a missed status deadline, with the number (once per deadline)."""
    key = f"reporter-reminder:{ticket.ticket_id}:{deadline_at.isoformat()}"
    links = await status_links(session, settings, page_row.product_slug)
    payload = emails.render(
        settings,
        template="reporter_reminder",
        to=ticket.reporter_email,
        subject=(
            f"[{ticket.number or 'CRITICAL report'}] No status update yet: please call"
            f" {settings.phone_for(page_row.product_slug)}"
        ),
        dedupe_key=key,
        thread=emails.ticket_thread(settings, ticket.ticket_id),
        is_thread_start=False,
        context={
            "heading": "No status-page update yet",
            "accent": "#b45309",
            **_context(settings, page_row, ticket, links),
        },
        meta={
            "purpose": "reporter_reminder",
            "page_id": str(page_row.id),
            "ticket_id": str(ticket.ticket_id),
        },
    )
    return await enqueue(session, channel="email", dedupe_key=key, payload=payload)


async def remind_engineer(
    session: AsyncSession,
    settings: Settings,
    page_row: Row[Any],
    *,
    to: str,
    person_id: uuid.UUID,
    person_name: str,
    key: str,
    message: str,
    due_at: datetime,
    status_page_url: str,
) -> bool:
    """Queue a 'status update due soon' reminder to an engineer, threaded with the page."""
    payload = emails.render(
        settings,
        template="due_soon",
        to=to,
        subject=f"[Klaxon] {page_row.product_name}: status update due {emails.fmt_time(due_at)}",
        dedupe_key=key,
        thread=emails.page_thread(settings, page_row.id),
        is_thread_start=False,
        context={
            "heading": "Status-page update due soon",
            "accent": "#b45309",
            "message": message,
            "product_name": page_row.product_name,
            "due_at": emails.fmt_time(due_at),
            "status_page_url": status_page_url or settings.default_status_page_url,
            "ack_url": links.action_url(
                settings, page_id=page_row.id, action="acknowledge", person_id=person_id
            ),
            "resolve_url": links.action_url(
                settings, page_id=page_row.id, action="resolve", person_id=person_id
            ),
        },
        meta={"purpose": "due_soon", "page_id": str(page_row.id), "person_name": person_name},
    )
    return await enqueue(session, channel="email", dedupe_key=key, payload=payload)

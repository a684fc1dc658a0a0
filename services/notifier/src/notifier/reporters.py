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

from sqlalchemy import Row, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import emails, link_secret, links
from notifier.models import page_ticket, status_page_link
from notifier.settings import Settings
from servicekit.deliveries import enqueue


def _links_of(product_slug: Any) -> Any:
    """(title, url) pairs of the active status pages covering a product, as one JSON array
    (NULL if none does)."""
    pair = func.json_build_array(
        func.coalesce(func.nullif(status_page_link.c.title, ""), status_page_link.c.url),
        status_page_link.c.url,
    )
    return (
        select(func.json_agg(aggregate_order_by(pair, status_page_link.c.status_page)))
        .where(any_(status_page_link.c.products) == product_slug, status_page_link.c.active)
        .scalar_subquery()
    )


# Built once, with bound parameters (cheaper than building them per call).
_TICKETS_AND_LINKS = (
    select(page_ticket, _links_of(bindparam("product_slug", type_=String)).label("status_links"))
    .where(page_ticket.c.page_id == bindparam("page_id"))
    .order_by(page_ticket.c.joined_at, page_ticket.c.ticket_id)
)
_TICKET_AND_LINKS = _TICKETS_AND_LINKS.where(page_ticket.c.ticket_id == bindparam("only"))


def _links(settings: Settings, raw: list[list[str]] | None) -> list[tuple[str, str]]:
    return [(title, url) for title, url in raw or ()] or [
        ("Status page", settings.default_status_page_url)
    ]


async def status_links(
    session: AsyncSession, settings: Settings, product_slug: str
) -> list[tuple[str, str]]:
    """(title, url) of the status pages covering a product; the default page if none does."""
    return _links(settings, await session.scalar(select(_links_of(product_slug))))


async def tickets_and_links(
    session: AsyncSession,
    settings: Settings,
    page_row: Row[Any],
    *,
    only: uuid.UUID | None = None,
) -> tuple[list[Row[Any]], list[tuple[str, str]]]:
    """The page's tickets in the order they joined (or ticket `only`) and the status-page
    links of its product, in one query."""
    params: dict[str, Any] = {"page_id": page_row.id, "product_slug": page_row.product_slug}
    query = _TICKETS_AND_LINKS
    if only is not None:
        query, params["only"] = _TICKET_AND_LINKS, only
    tickets = list((await session.execute(query, params)).all())
    return tickets, _links(settings, tickets[0].status_links if tickets else None)


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
    loaded: tuple[list[Row[Any]], list[tuple[str, str]]] | None = None,
) -> int:
    """Queue the acknowledgement email of every ticket on the page not yet sent one (or of
    ticket `only`); returns how many were queued now. `loaded`: the page's tickets and
    links as `tickets_and_links` gave them, if the caller has them already."""
    if loaded is None:
        loaded = await tickets_and_links(session, settings, page_row, only=only)
    tickets, links = loaded
    queued = 0
    for ticket in tickets:
        if ticket.reporter_acknowledged_at is not None or (only and ticket.ticket_id != only):
            continue
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
    secret = link_secret.current(settings)
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
                settings, secret, page_id=page_row.id, action="acknowledge", person_id=person_id
            ),
            "resolve_url": links.action_url(
                settings, secret, page_id=page_row.id, action="resolve", person_id=person_id
            ),
        },
        meta={"purpose": "due_soon", "page_id": str(page_row.id), "person_name": person_name},
    )
    return await enqueue(session, channel="email", dedupe_key=key, payload=payload)

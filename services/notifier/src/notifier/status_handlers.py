"""Event handlers for statuspage-sync's events: an overdue status update escalates the page
and reminds the reporter (once per deadline), a due-soon reminder reaches the engineer,
notices go on the timeline, status-page links feed the reporter email's read model. Each
runs in the consumer's transaction, never commits, and accepts its event late, early or
twice."""

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.notifier import PageSource, Urgency
from contracts.statuspage import (
    IncidentNoticePosted,
    StatusPagePublished,
    StatusUpdateDueSoon,
    StatusUpdateOverdue,
)
from notifier import paging, reporters, timeline
from notifier.grouping import add_ticket, first_time
from notifier.models import page, page_ticket, status_page_link
from notifier.oncall import contact, target_person
from notifier.settings import Settings
from servicekit.consumer import Handler


def make_status_handlers(settings: Settings) -> dict[str, Handler]:
    """The handlers of statuspage-sync's events, bound to the notifier's settings."""

    async def on_update_overdue(
        session: AsyncSession, payload: StatusUpdateOverdue, envelope: Envelope
    ) -> None:
        """No status update within the promise: escalate and remind the reporter, once."""
        if not await first_time(session, payload.ticket_id, payload.deadline_at, "overdue"):
            return
        page_id = await session.scalar(
            select(page_ticket.c.page_id).where(page_ticket.c.ticket_id == payload.ticket_id)
        )
        if page_id is None:
            row, opened = await paging.trigger(
                session,
                dedup_key=f"product:{payload.product.slug}",
                product=payload.product,
                source=PageSource.OVERDUE,
                summary=f"No status-page update for a CRITICAL report by {payload.reporter.email}",
                urgency=Urgency.HIGH,
            )
            await add_ticket(
                session,
                row.id,
                ticket_id=payload.ticket_id,
                number="",
                reporter=payload.reporter,
                subject="CRITICAL report",
                filed_at=payload.reported_at,
            )
            if opened:
                await paging.start(
                    session, settings, row, causation=envelope, ticket_ids=(payload.ticket_id,)
                )
            # The ticket's own page: this one, or the one its ticket.filed (handled
            # meanwhile) grouped it into.
            page_id = (
                await session.scalar(
                    select(page_ticket.c.page_id).where(
                        page_ticket.c.ticket_id == payload.ticket_id
                    )
                )
                or row.id
            )
        minutes = settings.status_update_promise_min
        await paging.escalate(
            session,
            settings,
            page_id,
            reason=f"no status-page update within {minutes} minutes of a CRITICAL report",
            causation=envelope,
            step=f"overdue:{payload.ticket_id}:{payload.deadline_at.isoformat()}",
        )
        current = await timeline.locked_page(session, page_id)
        ticket = (
            await session.execute(
                select(page_ticket).where(page_ticket.c.ticket_id == payload.ticket_id)
            )
        ).first()
        if current is not None and ticket is not None and current.state != "resolved":
            await reporters.remind_reporter(
                session, settings, current, ticket, deadline_at=payload.deadline_at
            )
            await timeline.note(session, page_id, "reporter_reminded", ticket.reporter_email)

    async def on_update_due_soon(
        session: AsyncSession, payload: StatusUpdateDueSoon, envelope: Envelope
    ) -> None:
        """A status promise is about to break: remind whoever acknowledged the page, else
        the current level's on-call."""
        page_id = payload.page_id
        if page_id is None and payload.ticket_id is not None:
            page_id = await session.scalar(
                select(page_ticket.c.page_id).where(page_ticket.c.ticket_id == payload.ticket_id)
            )
        if page_id is None:
            page_id = await session.scalar(
                select(page.c.id).where(
                    page.c.dedup_key == f"product:{payload.product.slug}",
                    page.c.state != "resolved",
                )
            )
        row = await timeline.locked_page(session, page_id) if page_id else None
        if row is None or row.state == "resolved":
            return
        await _remind_engineer(session, row, payload)

    async def _remind_engineer(
        session: AsyncSession, row: Row[Any], payload: StatusUpdateDueSoon
    ) -> None:
        who = None
        if row.acknowledged_by is not None:
            who = await contact(session, row.acknowledged_by)
        if who is None and row.policy["levels"]:
            who = await target_person(session, row.policy["levels"][row.level - 1], timeline.now())
        if who is None or not who.email:
            await timeline.note(session, row.id, "not_sent", "due-soon reminder: nobody to remind")
            return
        await reporters.remind_engineer(
            session,
            settings,
            row,
            to=who.email,
            person_id=who.id,
            person_name=who.name,
            key=f"due-soon:{payload.deadline_id}:{payload.reason}",
            message=payload.message,
            due_at=payload.due_at,
            status_page_url=payload.status_page_url,
        )
        await timeline.note(session, row.id, "engineer_reminded", f"{who.name}: {payload.message}")

    async def on_notice_posted(
        session: AsyncSession, payload: IncidentNoticePosted, envelope: Envelope
    ) -> None:
        """A status-page notice for a product: noted on its open pages' timelines."""
        pages = await session.scalars(
            select(page.c.id).where(
                page.c.product_slug == payload.product.slug, page.c.state != "resolved"
            )
        )
        for page_id in pages:
            await timeline.note(
                session, page_id, "status_notice", f"{payload.incident_status}: {payload.message}"
            )

    async def on_status_page_published(
        session: AsyncSession, payload: StatusPagePublished, envelope: Envelope
    ) -> None:
        """Keep the status-page links read model (newest change wins)."""
        values = {
            "url": payload.status_page_url,
            "title": payload.title[:200],
            "products": list(payload.products),
            "active": payload.active,
            "changed_at": payload.changed_at,
        }
        stmt = insert(status_page_link).values(status_page=str(payload.status_page_id), **values)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[status_page_link.c.status_page],
                set_=values,
                where=status_page_link.c.changed_at < stmt.excluded.changed_at,
            )
        )

    return {
        StatusUpdateOverdue.event_type: on_update_overdue,
        StatusUpdateDueSoon.event_type: on_update_due_soon,
        IncidentNoticePosted.event_type: on_notice_posted,
        StatusPagePublished.event_type: on_status_page_published,
    }

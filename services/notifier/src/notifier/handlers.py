"""Event handlers: tickets, monitors and status deadlines open, join, escalate or resolve
pages; status-page events keep the links read model. Each runs in the consumer's
transaction, never commits, and accepts its event late, early or twice."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person, Severity
from contracts.intake import TicketFiled
from contracts.monitor import MonitorCameUp, MonitorVerificationFailed, MonitorWentDown
from contracts.notifier import PageSource, Urgency
from contracts.statuspage import (
    IncidentNoticePosted,
    StatusPagePublished,
    StatusUpdateDueSoon,
    StatusUpdateOverdue,
)
from notifier import actions, outcomes, paging, reporters, timeline
from notifier.models import handled_signal, page, page_monitor, page_ticket, status_page_link
from notifier.oncall import contact, target_person
from notifier.settings import Settings
from servicekit import catalogue
from servicekit.consumer import Handler
from servicekit.timers import DueTimer, TimerHandler


async def _first_time(session: AsyncSession, subject_id: uuid.UUID, at: Any, kind: str) -> bool:
    """Record a signal; False if it was handled before."""
    result = await session.execute(
        insert(handled_signal)
        .values(subject_id=subject_id, at=at, kind=kind)
        .on_conflict_do_nothing()
        .returning(handled_signal.c.subject_id)
    )
    return result.first() is not None


async def _add_ticket(
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


async def _fill_number(session: AsyncSession, ticket: TicketFiled) -> None:
    """Complete a ticket grouped before its ``ticket.filed`` arrived (from its overdue
    deadline, which does not carry the number)."""
    await session.execute(
        update(page_ticket)
        .where(page_ticket.c.ticket_id == ticket.ticket_id, page_ticket.c.number == "")
        .values(number=ticket.number, subject=ticket.subject[:300])
    )


def make_handlers(settings: Settings) -> dict[str, Handler]:
    """The notifier's event handlers, bound to its settings."""

    async def on_ticket_filed(
        session: AsyncSession, payload: TicketFiled, envelope: Envelope
    ) -> None:
        """A CRITICAL ticket joins an open page a monitor opened for its product, else
        opens the product's page or joins it."""
        if payload.severity != Severity.CRITICAL:
            return
        known = await session.scalar(
            select(page_ticket.c.page_id).where(page_ticket.c.ticket_id == payload.ticket_id)
        )
        if known is not None:  # already grouped (its overdue deadline may have come first)
            await _fill_number(session, payload)
            return
        row = await paging.open_monitor_page(session, payload.product.slug)
        opened = False
        if row is None:
            row, opened = await paging.trigger(
                session,
                dedup_key=f"product:{payload.product.slug}",
                product=payload.product,
                source=PageSource.TICKET,
                summary=f"CRITICAL ticket {payload.number}: {payload.subject}",
                urgency=Urgency.HIGH,
            )
        added = await _add_ticket(
            session,
            row.id,
            ticket_id=payload.ticket_id,
            number=payload.number,
            reporter=payload.reporter,
            subject=payload.subject,
            filed_at=payload.filed_at,
        )
        if not added:  # grouped meanwhile by a concurrent overdue deadline
            await _fill_number(session, payload)
            if not opened:
                return
        if opened:
            await paging.start(
                session, settings, row, causation=envelope, ticket_ids=(payload.ticket_id,)
            )
            return
        await timeline.note(
            session, row.id, "ticket_joined", f"{payload.number} from {payload.reporter.email}"
        )
        await paging.raise_urgency(session, row, f"CRITICAL ticket {payload.number} joined")
        if row.notified_at is not None:
            await reporters.acknowledge_reporters(session, settings, row, only=payload.ticket_id)
            await outcomes.publish_notified(session, row, (payload.ticket_id,), envelope)

    async def on_monitor_down(
        session: AsyncSession, payload: MonitorWentDown, envelope: Envelope
    ) -> None:
        """A monitor went down: page (low urgency inside a patch window)."""
        recovered = await session.scalar(
            select(handled_signal.c.subject_id).where(
                handled_signal.c.subject_id == payload.monitor_id,
                handled_signal.c.at == payload.down_since,
                handled_signal.c.kind == "monitor_up",
            )
        )
        if recovered is not None:
            return  # this outage's recovery arrived first
        urgency = Urgency.LOW if payload.in_patch_window else Urgency.HIGH
        row, opened = await paging.trigger(
            session,
            dedup_key=f"monitor:{payload.monitor_id}",
            product=payload.product,
            source=PageSource.MONITOR,
            summary=f"{payload.monitor_name} is down: {payload.error}",
            urgency=urgency,
        )
        await session.execute(
            insert(page_monitor)
            .values(page_id=row.id, monitor_id=payload.monitor_id, down=True)
            .on_conflict_do_update(index_elements=["page_id", "monitor_id"], set_={"down": True})
        )
        if opened:
            await paging.start(
                session, settings, row, causation=envelope, monitor_ids=(payload.monitor_id,)
            )

    async def on_monitor_up(
        session: AsyncSession, payload: MonitorCameUp, envelope: Envelope
    ) -> None:
        """A monitor is up again: a page only monitors opened, all of them up, resolves."""
        await _first_time(session, payload.monitor_id, payload.down_since, "monitor_up")
        pages = (
            (
                await session.execute(
                    update(page_monitor)
                    .where(
                        page_monitor.c.monitor_id == payload.monitor_id,
                        page_monitor.c.page_id.in_(
                            select(page.c.id).where(page.c.state != "resolved")
                        ),
                    )
                    .values(down=False)
                    .returning(page_monitor.c.page_id)
                )
            )
            .scalars()
            .all()
        )
        for page_id in pages:
            row = await timeline.locked_page(session, page_id)
            if row is None or row.source != PageSource.MONITOR:
                continue
            await timeline.note(session, page_id, "monitor_up", f"{payload.monitor_name} is up")
            still_down = await session.scalar(
                select(page_monitor.c.monitor_id).where(
                    page_monitor.c.page_id == page_id, page_monitor.c.down
                )
            )
            has_tickets = await session.scalar(
                select(page_ticket.c.ticket_id).where(page_ticket.c.page_id == page_id).limit(1)
            )
            if still_down is None and has_tickets is None:
                await actions.resolve(
                    session,
                    page_id,
                    note=f"{payload.monitor_name} came back up",
                    causation=envelope,
                )

    async def on_verification_failed(
        session: AsyncSession, payload: MonitorVerificationFailed, envelope: Envelope
    ) -> None:
        """A patch window produced no alert: monitoring is broken, page about it."""
        row, opened = await paging.trigger(
            session,
            dedup_key=f"verification:{payload.patch_window_id}",
            product=payload.product,
            source=PageSource.VERIFICATION,
            summary=f"Monitoring unverified: {payload.reason}",
            urgency=Urgency.HIGH,
        )
        if opened:
            await paging.start(session, settings, row, causation=envelope)

    async def on_update_overdue(
        session: AsyncSession, payload: StatusUpdateOverdue, envelope: Envelope
    ) -> None:
        """No status update within the promise: escalate and remind the reporter, once."""
        if not await _first_time(session, payload.ticket_id, payload.deadline_at, "overdue"):
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
            await _add_ticket(
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
        **catalogue.HANDLERS,
        TicketFiled.event_type: on_ticket_filed,
        MonitorWentDown.event_type: on_monitor_down,
        MonitorCameUp.event_type: on_monitor_up,
        MonitorVerificationFailed.event_type: on_verification_failed,
        StatusUpdateOverdue.event_type: on_update_overdue,
        StatusUpdateDueSoon.event_type: on_update_due_soon,
        IncidentNoticePosted.event_type: on_notice_posted,
        StatusPagePublished.event_type: on_status_page_published,
    }


def make_timer_handlers(settings: Settings) -> dict[str, TimerHandler]:
    """The notifier's timer handlers: the escalation ladder."""

    async def fire_escalation(session: AsyncSession, due: DueTimer) -> None:
        """Nobody acknowledged in time: the next level."""
        level, round_ = int(due.payload["level"]), int(due.payload["round"])
        await paging.escalate(
            session,
            settings,
            uuid.UUID(due.payload["page_id"]),
            reason=f"not acknowledged at level {level}",
            causation=None,
            expected=(level, round_),
        )

    return {paging.ESCALATE: fire_escalation}

"""Event handlers: tickets and monitors open, join or resolve pages (statuspage-sync's
events: `status_handlers`). Each runs in the consumer's
transaction, never commits, and accepts its event late, early or twice."""

import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Severity
from contracts.intake import TicketFiled
from contracts.monitor import MonitorCameUp, MonitorVerificationFailed, MonitorWentDown
from contracts.notifier import PageSource, Urgency
from notifier import actions, outcomes, paging, reporters, timeline
from notifier.grouping import add_ticket, fill_number, first_time, one_at_a_time
from notifier.models import handled_signal, page, page_monitor, page_ticket
from notifier.settings import Settings
from notifier.status_handlers import make_status_handlers
from servicekit import catalogue
from servicekit.consumer import Handler
from servicekit.timers import DueTimer, TimerHandler


def make_handlers(settings: Settings) -> dict[str, Handler]:
    """The notifier's event handlers, bound to its settings."""

    async def on_ticket_filed(
        session: AsyncSession, payload: TicketFiled, envelope: Envelope
    ) -> None:
        """A CRITICAL ticket joins an open page a monitor opened for its product, else
        opens the product's page or joins it."""
        if payload.severity != Severity.CRITICAL:
            return
        known, row = await paging.grouped_or_monitor_page(
            session, payload.ticket_id, payload.product.slug
        )
        if known is not None:  # already grouped (its overdue deadline may have come first)
            await fill_number(session, payload)
            return
        opened = False
        if row is None:
            row, opened, added = await paging.trigger_for_ticket(
                session,
                dedup_key=f"product:{payload.product.slug}",
                product=payload.product,
                source=PageSource.TICKET,
                summary=f"CRITICAL ticket {payload.number}: {payload.subject}",
                urgency=Urgency.HIGH,
                ticket=payload,
            )
        else:
            added = await add_ticket(
                session,
                row.id,
                ticket_id=payload.ticket_id,
                number=payload.number,
                reporter=payload.reporter,
                subject=payload.subject,
                filed_at=payload.filed_at,
            )
        if not added:  # grouped meanwhile by a concurrent overdue deadline
            await fill_number(session, payload)
            if not opened:
                return
        if opened:
            await paging.start(
                session,
                settings,
                row,
                causation=envelope,
                ticket_ids=(payload.ticket_id,),
                # Just opened, in this transaction: this ticket is its only one, if added.
                tickets=[
                    {
                        "number": payload.number,
                        "subject": payload.subject[:300],
                        "reporter_name": payload.reporter.name,
                    }
                ]
                if added
                else [],
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
        await one_at_a_time(session, payload.monitor_id)
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
        await one_at_a_time(session, payload.monitor_id)
        await first_time(session, payload.monitor_id, payload.down_since, "monitor_up")
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

    return {
        **catalogue.HANDLERS,
        TicketFiled.event_type: on_ticket_filed,
        MonitorWentDown.event_type: on_monitor_down,
        MonitorCameUp.event_type: on_monitor_up,
        MonitorVerificationFailed.event_type: on_verification_failed,
        **make_status_handlers(settings),
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

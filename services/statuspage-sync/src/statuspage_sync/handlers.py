"""Event handlers: monitors move components, CRITICAL reports start deadlines, pages of
the notifier are noted on them, product names are kept (`servicekit.catalogue`). Each runs in the consumer's transaction, never commits,
and accepts events late, early and twice."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import ComponentStatus, Severity
from contracts.intake import TicketFiled
from contracts.monitor import MonitorCameUp, MonitorDegraded, MonitorWentDown
from contracts.notifier import PageAcknowledged, PageNotified
from servicekit import catalogue
from servicekit.consumer import Handler
from statuspage_sync import deadlines, monitoring
from statuspage_sync.settings import Settings


async def on_page_notified(
    session: AsyncSession, payload: PageNotified, envelope: Envelope
) -> None:
    """The on-call engineer was paged for these reports: their reminders name the page."""
    await deadlines.link_page(session, ticket_ids=payload.ticket_ids, page_id=payload.page_id)


async def on_page_acknowledged(
    session: AsyncSession, payload: PageAcknowledged, envelope: Envelope
) -> None:
    """An engineer took the page: noted on the reports' deadlines (the promise still holds)."""
    await deadlines.acknowledged(session, ticket_ids=payload.ticket_ids, at=payload.acknowledged_at)


def make_handlers(settings: Settings) -> dict[str, Handler]:
    """The service's event handlers, bound to its settings."""

    async def on_ticket_filed(
        session: AsyncSession, payload: TicketFiled, envelope: Envelope
    ) -> None:
        """A CRITICAL report starts the 30-minute deadline on the pages of its product."""
        if payload.severity == Severity.CRITICAL:
            await deadlines.watch_report(session, settings, payload)

    async def apply(
        session: AsyncSession,
        payload: MonitorWentDown | MonitorDegraded | MonitorCameUp,
        status: ComponentStatus,
        *,
        detail: str,
        url: str | None,
        at: datetime,
    ) -> None:
        await monitoring.verdict(
            session,
            settings,
            monitor_id=payload.monitor_id,
            monitor_name=payload.monitor_name,
            product_slug=payload.product.slug,
            component_name=payload.component,
            status=status,
            detail=detail,
            url=url,
            at=at,
        )

    async def on_monitor_down(
        session: AsyncSession, payload: MonitorWentDown, envelope: Envelope
    ) -> None:
        """A monitor is down: its components show a major outage."""
        at = payload.confirmed_at or payload.down_since
        await apply(
            session,
            payload,
            ComponentStatus.MAJOR_OUTAGE,
            detail=payload.error,
            url=payload.url,
            at=at,
        )

    async def on_monitor_degraded(
        session: AsyncSession, payload: MonitorDegraded, envelope: Envelope
    ) -> None:
        """A monitor answers slowly: its components show degraded performance."""
        await apply(
            session,
            payload,
            ComponentStatus.DEGRADED_PERFORMANCE,
            detail=payload.error,
            url=payload.url,
            at=payload.degraded_since,
        )

    async def on_monitor_up(
        session: AsyncSession, payload: MonitorCameUp, envelope: Envelope
    ) -> None:
        """A monitor passes again: its components follow, its incidents may resolve."""
        await apply(
            session, payload, ComponentStatus.OPERATIONAL, detail="", url=None, at=payload.up_at
        )

    handlers: dict[str, Handler] = {
        TicketFiled.event_type: on_ticket_filed,
        MonitorWentDown.event_type: on_monitor_down,
        MonitorDegraded.event_type: on_monitor_degraded,
        MonitorCameUp.event_type: on_monitor_up,
        PageNotified.event_type: on_page_notified,
        PageAcknowledged.event_type: on_page_acknowledged,
        **catalogue.HANDLERS,
    }
    return handlers

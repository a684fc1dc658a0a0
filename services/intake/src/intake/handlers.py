"""Event handlers: page events move tickets along; monitor and incident events feed the
product-health read model; a catalogue request republishes every product. Each runs in
the consumer's transaction and never commits."""

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import ComponentStatus, HealthState
from contracts.monitor import MonitorCameUp, MonitorWentDown
from contracts.notifier import (
    PageAcknowledged,
    PageEscalated,
    PageNotified,
    PageResolved,
    ReporterAcknowledged,
)
from contracts.products import CatalogueRequested
from contracts.statuspage import ComponentStatusChanged, IncidentOpened, IncidentResolved
from intake import product_health, products, tickets
from servicekit.consumer import Handler


async def on_page_notified(
    session: AsyncSession, payload: PageNotified, envelope: Envelope
) -> None:
    """The on-call engineer was notified: the tickets move to oncall_notified."""
    channels = ", ".join(payload.channels) or "no channel"
    await tickets.advance(
        session=session,
        ticket_ids=payload.ticket_ids,
        to_status="oncall_notified",
        at=payload.notified_at,
        detail=f"On-call engineer {payload.oncall.name} notified (level {payload.level}, {channels}).",
        causation=envelope,
    )


async def on_page_acknowledged(
    session: AsyncSession, payload: PageAcknowledged, envelope: Envelope
) -> None:
    """An engineer acknowledged the page: the tickets move to acknowledged."""
    await tickets.advance(
        session=session,
        ticket_ids=payload.ticket_ids,
        to_status="acknowledged",
        at=payload.acknowledged_at,
        detail=f"Acknowledged by {payload.by.name}.",
        causation=envelope,
    )


async def on_page_resolved(
    session: AsyncSession, payload: PageResolved, envelope: Envelope
) -> None:
    """The page was resolved: the tickets move to resolved."""
    detail = "Resolved." + (f" {payload.note}" if payload.note else "")
    await tickets.advance(
        session=session,
        ticket_ids=payload.ticket_ids,
        to_status="resolved",
        at=payload.resolved_at,
        detail=detail[:2000],
        causation=envelope,
    )


async def on_page_escalated(
    session: AsyncSession, payload: PageEscalated, envelope: Envelope
) -> None:
    """Nobody acknowledged in time: note the escalation on each ticket's timeline."""
    await tickets.note(
        session=session,
        ticket_ids=payload.ticket_ids,
        kind="escalated",
        at=payload.escalated_at,
        detail=(
            f"Escalated from level {payload.from_level} to {payload.to_level} "
            f"({payload.oncall.name}): {payload.reason}"
        )[:2000],
        causation=envelope,
    )


async def on_reporter_acknowledged(
    session: AsyncSession, payload: ReporterAcknowledged, envelope: Envelope
) -> None:
    """The reporter was emailed that on-call knows: note it on the ticket's timeline."""
    await tickets.note(
        session=session,
        ticket_ids=[payload.ticket_id],
        kind="reporter_emailed",
        at=payload.sent_at,
        detail=f"Acknowledgement email sent to {payload.reporter.email}.",
        causation=envelope,
    )


async def on_monitor_down(
    session: AsyncSession, payload: MonitorWentDown, envelope: Envelope
) -> None:
    """A monitor of a product went down."""
    await product_health.observe(
        session,
        product_slug=payload.product.slug,
        source=f"monitor:{payload.monitor_id}",
        state=HealthState.DOWN,
        observed_at=payload.down_since,
        detail=payload.error,
    )


async def on_monitor_up(session: AsyncSession, payload: MonitorCameUp, envelope: Envelope) -> None:
    """A monitor of a product came back up."""
    await product_health.observe(
        session,
        product_slug=payload.product.slug,
        source=f"monitor:{payload.monitor_id}",
        state=HealthState.UP,
        observed_at=payload.up_at,
    )


async def on_incident_opened(
    session: AsyncSession, payload: IncidentOpened, envelope: Envelope
) -> None:
    """An incident is open for a product: it counts as down until resolved."""
    await product_health.observe(
        session,
        product_slug=payload.product.slug,
        source=f"incident:{payload.incident_id}",
        state=HealthState.DOWN,
        observed_at=payload.opened_at,
        detail=payload.title,
    )


async def on_incident_resolved(
    session: AsyncSession, payload: IncidentResolved, envelope: Envelope
) -> None:
    """An incident of a product was resolved."""
    await product_health.observe(
        session,
        product_slug=payload.product.slug,
        source=f"incident:{payload.incident_id}",
        state=HealthState.UP,
        observed_at=payload.resolved_at,
    )


async def on_component_status_changed(
    session: AsyncSession, payload: ComponentStatusChanged, envelope: Envelope
) -> None:
    """A status-page component changed: anything but operational counts as down."""
    state = (
        HealthState.UP if payload.new_status == ComponentStatus.OPERATIONAL else HealthState.DOWN
    )
    await product_health.observe(
        session,
        product_slug=payload.product.slug,
        source=f"component:{payload.component_id}",
        state=state,
        observed_at=payload.changed_at,
        detail=f"{payload.component}: {payload.new_status}",
    )


async def on_catalogue_requested(
    session: AsyncSession, payload: CatalogueRequested, envelope: Envelope
) -> None:
    """Another service asked for the catalogue: publish every product as it is now."""
    await products.republish_catalogue(session=session, causation=envelope)


HANDLERS: dict[str, Handler] = {
    PageNotified.event_type: on_page_notified,
    PageAcknowledged.event_type: on_page_acknowledged,
    PageResolved.event_type: on_page_resolved,
    PageEscalated.event_type: on_page_escalated,
    ReporterAcknowledged.event_type: on_reporter_acknowledged,
    MonitorWentDown.event_type: on_monitor_down,
    MonitorCameUp.event_type: on_monitor_up,
    IncidentOpened.event_type: on_incident_opened,
    IncidentResolved.event_type: on_incident_resolved,
    ComponentStatusChanged.event_type: on_component_status_changed,
    CatalogueRequested.event_type: on_catalogue_requested,
}

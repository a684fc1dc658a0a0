"""Monitor verdicts move components, and open or resolve incidents by themselves.

A verdict older than the monitor's last one changes nothing (events may arrive late
or twice). On a component's outage, a page configured to do so opens an incident
saying in plain words what failed, unless one already covers the component; when
the monitor is back and every component of that incident is operational, the
incident is resolved, if the page is configured to.
"""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ComponentStatus
from contracts.statuspage import IncidentImpact
from statuspage_sync import components, incidents
from statuspage_sync.models import component, incident, incident_component, status_page
from statuspage_sync.schemas import ComponentChange
from statuspage_sync.settings import Settings

OUTAGES = (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE)


async def verdict(
    session: AsyncSession,
    settings: Settings,
    *,
    monitor_id: uuid.UUID,
    monitor_name: str,
    product_slug: str,
    component_name: str | None,
    status: ComponentStatus,
    detail: str,
    url: str | None,
    at: datetime,
) -> None:
    """Apply one monitor's verdict to the components it feeds."""
    ids = await components.observe(
        session,
        monitor_id=monitor_id,
        monitor_name=monitor_name,
        product_slug=product_slug,
        component_name=component_name,
        status=status,
        detail=detail,
        observed_at=at,
    )
    changes = await components.refresh(session, ids, at=at)
    if status in OUTAGES:
        down = [c for c in changes if c.new_status in OUTAGES]
        for page_id in sorted({c.status_page_id for c in down}):
            mine = [c for c in down if c.status_page_id == page_id]
            await _open_if_needed(
                session, settings, page_id, mine, monitor_id, monitor_name, detail, url, at
            )
    elif status == ComponentStatus.OPERATIONAL:
        await _resolve_if_recovered(session, settings, monitor_id, monitor_name, at)


async def _open_if_needed(
    session: AsyncSession,
    settings: Settings,
    page_id: uuid.UUID,
    down: list[components.Change],
    monitor_id: uuid.UUID,
    monitor_name: str,
    detail: str,
    url: str | None,
    at: datetime,
) -> None:
    page = (await session.execute(select(status_page).where(status_page.c.id == page_id))).one()
    if not page.auto_open_incidents:
        return
    ids = [c.component_id for c in down]
    covered = await session.scalar(
        select(incident.c.id)
        .join(incident_component, incident_component.c.incident_id == incident.c.id)
        .where(
            incident.c.kind == "incident",
            incident.c.status != "resolved",
            incident_component.c.component_id.in_(ids),
        )
        .limit(1)
    )
    if covered is not None:
        return
    names = ", ".join(c.name for c in down)
    where = f" ({url})" if url else ""
    body = (
        f"Our monitoring found {names} failing at {at:%H:%M} UTC: {monitor_name}{where} "
        f"reports {detail or 'no answer'}. We are investigating and will post an update here."
    )
    await incidents.open_incident(
        session,
        settings,
        page=page,
        name=f"{names} {'unavailable' if any(c.new_status == ComponentStatus.MAJOR_OUTAGE for c in down) else 'partly unavailable'}",
        status="investigating",
        impact=IncidentImpact.MAJOR,
        body=body,
        changes=[ComponentChange(component_id=c.component_id, status=c.new_status) for c in down],
        eta=None,
        at=at,
        automatic=True,
        monitor_id=monitor_id,
        manual=False,
    )


async def _resolve_if_recovered(
    session: AsyncSession,
    settings: Settings,
    monitor_id: uuid.UUID,
    monitor_name: str,
    at: datetime,
) -> None:
    rows = await session.execute(
        select(incident.c.id, incident.c.status_page_id).where(
            incident.c.monitor_id == monitor_id,
            incident.c.automatic.is_(True),
            incident.c.status != "resolved",
        )
    )
    for incident_id, page_id in rows.all():
        page = await incidents.page_by_id(session, page_id)
        if not page.auto_resolve_incidents:
            continue
        statuses = set(
            await session.scalars(
                select(component.c.status)
                .join(incident_component, incident_component.c.component_id == component.c.id)
                .where(incident_component.c.incident_id == incident_id)
            )
        )
        if statuses - {ComponentStatus.OPERATIONAL.value}:
            continue
        await incidents.post_notice(
            session,
            settings,
            page=page,
            incident_id=incident_id,
            body=(
                f"{monitor_name} is responding normally again since {at:%H:%M} UTC. "
                "This incident is resolved."
            ),
            status="resolved",
            changes=[],
            eta=None,
            at=at,
            automatic=True,
            manual=False,
        )

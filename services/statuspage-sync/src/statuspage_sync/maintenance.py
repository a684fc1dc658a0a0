"""Scheduled maintenances: their components are under maintenance for the window.

Two durable timers per maintenance move it: at ``scheduled_for`` to in_progress
(its components show under_maintenance) and at ``scheduled_until`` to completed
(they return to what their monitors say). A firing re-reads the maintenance and
moves it only forward, so a timer that fires twice changes nothing the second time.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import timers
from servicekit.problems import Unprocessable
from servicekit.timers import DueTimer
from statuspage_sync import components, incidents, pages
from statuspage_sync.models import incident, incident_component
from statuspage_sync.schemas import MaintenanceCreate
from statuspage_sync.settings import Settings

START = "maintenance.start"
END = "maintenance.end"


async def schedule_maintenance(
    *, session: AsyncSession, settings: Settings, slug: str, data: MaintenanceCreate
) -> uuid.UUID:
    """Schedule a maintenance (POST /v1/pages/{slug}/maintenances)."""
    page = await pages.get_page(session, slug, lock=True)
    now = datetime.now(UTC)
    if data.scheduled_until <= now:
        raise Unprocessable("scheduled_until", "is in the past")
    await incidents._check_components(session, page.id, data.component_ids, "component_ids")
    maintenance_id = uuid.uuid4()
    await session.execute(
        insert(incident).values(
            id=maintenance_id,
            status_page_id=page.id,
            kind="maintenance",
            name=data.name,
            status="scheduled",
            impact="maintenance",
            product_slug=page.products[0] if page.products else None,
            started_at=data.scheduled_for,
            scheduled_for=data.scheduled_for,
            scheduled_until=data.scheduled_until,
        )
    )
    for component_id in dict.fromkeys(data.component_ids):
        await session.execute(
            insert(incident_component).values(incident_id=maintenance_id, component_id=component_id)
        )
    await incidents.post_notice(
        session,
        settings,
        page=page,
        incident_id=maintenance_id,
        body=data.body,
        status="scheduled",
        changes=[],
        eta=data.scheduled_until,
        at=now,
        automatic=False,
        manual=False,
    )
    payload = {"maintenance_id": str(maintenance_id)}
    key = str(maintenance_id)
    await timers.schedule(session, kind=START, key=key, due_at=data.scheduled_for, payload=payload)
    await timers.schedule(session, kind=END, key=key, due_at=data.scheduled_until, payload=payload)
    return maintenance_id


async def _move(
    session: AsyncSession, settings: Settings, timer: DueTimer, *, to: str, frm: set[str]
) -> None:
    maintenance_id = uuid.UUID(timer.payload["maintenance_id"])
    page_id = await session.scalar(
        select(incident.c.status_page_id).where(incident.c.id == maintenance_id)
    )
    if page_id is None:
        return
    await pages.lock_pages(session, [page_id])
    row: Any = (
        await session.execute(
            select(incident).where(incident.c.id == maintenance_id).with_for_update()
        )
    ).first()
    if row is None or row.status not in frm:
        return
    page = await incidents.page_by_id(session, row.status_page_id)
    now = datetime.now(UTC)
    body = (
        "The scheduled maintenance is in progress."
        if to == "in_progress"
        else "The scheduled maintenance is complete."
    )
    await incidents.post_notice(
        session,
        settings,
        page=page,
        incident_id=maintenance_id,
        body=body,
        status=to,
        changes=[],
        eta=None,
        at=now,
        automatic=True,
        manual=False,
    )
    ids = await session.scalars(
        select(incident_component.c.component_id).where(
            incident_component.c.incident_id == maintenance_id
        )
    )
    await components.refresh(session, list(ids), at=now)


def make_timer_handlers(settings: Settings) -> dict[str, timers.TimerHandler]:
    """The maintenance window's timers."""

    async def start(session: AsyncSession, timer: DueTimer) -> None:
        """The window opened: components go under maintenance."""
        await _move(session, settings, timer, to="in_progress", frm={"scheduled"})

    async def end(session: AsyncSession, timer: DueTimer) -> None:
        """The window closed: components return to what their monitors say."""
        await _move(
            session, settings, timer, to="completed", frm={"scheduled", "in_progress", "verifying"}
        )

    return {START: start, END: end}

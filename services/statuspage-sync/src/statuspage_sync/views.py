"""Rows as the admin API's response models."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from statuspage_sync.models import deadline, incident, incident_component, notice
from statuspage_sync.pages import page_url
from statuspage_sync.schemas import (
    ComponentRead,
    DeadlineRead,
    DeadlineState,
    IncidentRead,
    NoticeRead,
    PageRead,
)
from statuspage_sync.settings import Settings


def page_read(settings: Settings, row: Any) -> PageRead:
    """A page row as `PageRead`."""
    return PageRead(
        id=row.id,
        slug=row.slug,
        title=row.title,
        url=page_url(settings, row.slug),
        time_zone=row.time_zone,
        products=list(row.products),
        auto_open_incidents=row.auto_open_incidents,
        auto_resolve_incidents=row.auto_resolve_incidents,
        version=row.version,
        updated_at=row.updated_at,
    )


def component_read(row: Any) -> ComponentRead:
    """A component row as `ComponentRead`."""
    return ComponentRead(
        id=row.id,
        name=row.name,
        description=row.description,
        group_id=row.group_id,
        position=row.position,
        only_show_if_degraded=row.only_show_if_degraded,
        product=row.product_slug,
        monitor_ids=list(row.monitor_ids),
        status=row.status,
        status_source=row.status_source,
        manual_status=row.manual_status,
    )


async def _read(session: AsyncSession, rows: list[Any]) -> list[IncidentRead]:
    ids = [row.id for row in rows]
    notices: dict[uuid.UUID, list[NoticeRead]] = {i: [] for i in ids}
    for n in await session.execute(
        select(notice).where(notice.c.incident_id.in_(ids)).order_by(notice.c.created_at.desc())
    ):
        notices[n.incident_id].append(NoticeRead.model_validate(n, from_attributes=True))
    members: dict[uuid.UUID, list[uuid.UUID]] = {i: [] for i in ids}
    for link in await session.execute(
        select(incident_component).where(incident_component.c.incident_id.in_(ids))
    ):
        members[link.incident_id].append(link.component_id)
    return [
        IncidentRead(
            id=row.id,
            kind=row.kind,
            name=row.name,
            status=row.status,
            impact=row.impact,
            automatic=row.automatic,
            started_at=row.started_at,
            resolved_at=row.resolved_at,
            scheduled_for=row.scheduled_for,
            scheduled_until=row.scheduled_until,
            component_ids=members[row.id],
            notices=notices[row.id],
        )
        for row in rows
    ]


async def incident_read(session: AsyncSession, incident_id: uuid.UUID) -> IncidentRead:
    """One incident with its notices."""
    row = (await session.execute(select(incident).where(incident.c.id == incident_id))).one()
    return (await _read(session, [row]))[0]


async def incidents_of(session: AsyncSession, page_id: uuid.UUID) -> list[IncidentRead]:
    """A page's incidents, newest first (at most 200)."""
    rows = await session.execute(
        select(incident)
        .where(incident.c.status_page_id == page_id)
        .order_by(incident.c.created_at.desc())
        .limit(200)
    )
    return await _read(session, list(rows))


async def deadlines_of(session: AsyncSession, page_id: uuid.UUID) -> list[DeadlineRead]:
    """A page's deadlines, newest first (at most 200)."""
    rows = await session.execute(
        select(deadline)
        .where(deadline.c.status_page_id == page_id)
        .order_by(deadline.c.started_at.desc())
        .limit(200)
    )
    result = []
    for row in rows:
        state = (
            DeadlineState.CLEARED
            if row.cleared_at
            else DeadlineState.EXPIRED
            if row.expired_at
            else DeadlineState.WATCHING
        )
        result.append(
            DeadlineRead.model_validate({**row._mapping, "state": state}, from_attributes=False)
        )
    return result

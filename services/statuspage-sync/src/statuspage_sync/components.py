"""A component's status: manual if set, else under maintenance in a window, else the
worst of its monitors' verdicts (operational when none has a complaint).

`refresh` recomputes components from those sources, writes the status history the
uptime bars are drawn from, publishes ``component.status_changed`` and raises the
page's version, all in the caller's transaction.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, and_, any_, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ComponentStatus
from contracts.statuspage import ComponentStatusChanged
from servicekit.outbox import publish
from statuspage_sync import pages
from statuspage_sync.models import (
    component,
    component_status_span,
    incident,
    incident_component,
    monitor_observation,
    status_page,
)

SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}
"""Worse statuses rank higher; a component with several monitors shows the worst."""

MAINTENANCE_ACTIVE = ("in_progress", "verifying")


@dataclass(frozen=True)
class Change:
    """A component that moved from one status to another."""

    component_id: uuid.UUID
    status_page_id: uuid.UUID
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus
    source: str


def fed_by(monitor_id: uuid.UUID, product_slug: str, component_name: str | None) -> Any:
    """The condition under which a monitor feeds a component (see `models.component`)."""
    by_product = [
        func.cardinality(component.c.monitor_ids) == 0,
        component.c.product_slug == product_slug,
    ]
    if component_name is not None:
        by_product.append(func.lower(component.c.name) == component_name.lower())
    return or_(literal(monitor_id, Uuid) == any_(component.c.monitor_ids), and_(*by_product))


async def observe(
    session: AsyncSession,
    *,
    monitor_id: uuid.UUID,
    monitor_name: str,
    product_slug: str,
    component_name: str | None,
    status: ComponentStatus,
    detail: str,
    observed_at: datetime,
) -> list[uuid.UUID]:
    """Record a monitor's verdict if it is newer than the last one; the ids of the
    components it feeds (empty if the verdict was stale)."""
    stmt = pg_insert(monitor_observation).values(
        monitor_id=monitor_id,
        monitor_name=monitor_name,
        product_slug=product_slug,
        component=component_name,
        status=status.value,
        detail=detail,
        observed_at=observed_at,
    )
    applied = (
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[monitor_observation.c.monitor_id],
                set_={
                    "monitor_name": stmt.excluded.monitor_name,
                    "product_slug": stmt.excluded.product_slug,
                    "component": stmt.excluded.component,
                    "status": stmt.excluded.status,
                    "detail": stmt.excluded.detail,
                    "observed_at": stmt.excluded.observed_at,
                },
                where=monitor_observation.c.observed_at <= stmt.excluded.observed_at,
            ).returning(monitor_observation.c.monitor_id)
        )
    ).first()
    if applied is None:
        return []
    ids = await session.scalars(
        select(component.c.id).where(fed_by(monitor_id, product_slug, component_name))
    )
    return list(ids)


async def _monitor_status(session: AsyncSession, row: Any) -> ComponentStatus:
    feeds: Any
    if row.monitor_ids:
        feeds = monitor_observation.c.monitor_id.in_(list(row.monitor_ids))
    else:
        feeds = and_(
            monitor_observation.c.product_slug == row.product_slug,
            or_(
                monitor_observation.c.component.is_(None),
                func.lower(monitor_observation.c.component) == row.name.lower(),
            ),
        )
    statuses = await session.scalars(select(monitor_observation.c.status).where(feeds))
    worst = ComponentStatus.OPERATIONAL
    for value in statuses:
        status = ComponentStatus(value)
        if SEVERITY[status] > SEVERITY[worst]:
            worst = status
    return worst


async def _in_maintenance(session: AsyncSession, component_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(incident.c.id)
        .join(incident_component, incident_component.c.incident_id == incident.c.id)
        .where(
            incident_component.c.component_id == component_id,
            incident.c.kind == "maintenance",
            incident.c.status.in_(MAINTENANCE_ACTIVE),
        )
        .limit(1)
    )
    return found is not None


async def refresh(
    session: AsyncSession, component_ids: Iterable[uuid.UUID], *, at: datetime
) -> list[Change]:
    """Recompute the components' statuses; record, publish and show every change."""
    ids = sorted(set(component_ids))
    if not ids:
        return []
    page_ids = await session.scalars(
        select(component.c.status_page_id).where(component.c.id.in_(ids)).distinct()
    )
    await pages.lock_pages(session, list(page_ids))
    rows = (
        await session.execute(
            select(component)
            .where(component.c.id.in_(ids))
            .order_by(component.c.id)
            .with_for_update()
        )
    ).all()
    changes: list[Change] = []
    for row in rows:
        if row.manual_status is not None:
            new, source = ComponentStatus(row.manual_status), "manual"
        elif await _in_maintenance(session, row.id):
            new, source = ComponentStatus.UNDER_MAINTENANCE, "maintenance"
        else:
            new, source = await _monitor_status(session, row), "monitor"
        old = ComponentStatus(row.status)
        if new == old and source == row.status_source:
            continue
        await session.execute(
            update(component)
            .where(component.c.id == row.id)
            .values(status=new.value, status_source=source, updated_at=func.now())
        )
        if new != old:
            changes.append(Change(row.id, row.status_page_id, row.name, old, new, source))
            await _record_span(session, row.id, new, at)
    for page_id in sorted({change.status_page_id for change in changes}):
        await _announce(session, page_id, [c for c in changes if c.status_page_id == page_id], at)
    return changes


async def _record_span(
    session: AsyncSession, component_id: uuid.UUID, status: ComponentStatus, at: datetime
) -> None:
    open_span = component_status_span.c.ended_at.is_(None)
    await session.execute(
        update(component_status_span)
        .where(component_status_span.c.component_id == component_id, open_span)
        .values(ended_at=func.greatest(component_status_span.c.started_at, at))
    )
    await session.execute(
        insert(component_status_span).values(
            component_id=component_id, status=status.value, started_at=at
        )
    )


async def _announce(
    session: AsyncSession, page_id: uuid.UUID, changes: list[Change], at: datetime
) -> None:
    page = (await session.execute(select(status_page).where(status_page.c.id == page_id))).one()
    for change in changes:
        slug = await session.scalar(
            select(component.c.product_slug).where(component.c.id == change.component_id)
        )
        product = slug or (page.products[0] if page.products else page.slug)
        await publish(
            session,
            ComponentStatusChanged(
                component_id=change.component_id,
                status_page=page.slug,
                product=await pages.product_ref(session, product),
                component=change.name,
                old_status=change.old_status,
                new_status=change.new_status,
                source=change.source,
                changed_at=at,
            ),
            producer=pages.PRODUCER,
        )
    await pages.touch(session, page_id)


async def set_manual(
    session: AsyncSession,
    component_ids: Iterable[uuid.UUID],
    status: ComponentStatus | None,
    *,
    at: datetime,
) -> list[Change]:
    """Set (or with None clear) the manual status of components, then refresh them."""
    ids = list(component_ids)
    await session.execute(
        update(component)
        .where(component.c.id.in_(ids))
        .values(manual_status=status.value if status else None)
    )
    return await refresh(session, ids, at=at)

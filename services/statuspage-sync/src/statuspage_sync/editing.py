"""Changing and removing what a page is made of: component groups, components, and
cancelling a maintenance. Each use case locks the page first (`pages.get_page`),
raises a problem for bad input, touches the page, and never commits."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import catalogue, timers
from servicekit.problems import Conflict, NotFound, Unprocessable
from statuspage_sync import components, incidents, maintenance, pages
from statuspage_sync.models import component, component_group, incident, incident_component
from statuspage_sync.schemas import ComponentUpdate, GroupUpdate, changes
from statuspage_sync.settings import Settings

CANCELLED = "The scheduled maintenance was cancelled."
"""The notice a cancelled maintenance closes with."""


async def _row_of_page(
    session: AsyncSession, table: Table, page: Any, row_id: uuid.UUID, what: str
) -> Any:
    row = (
        await session.execute(
            select(table).where(table.c.id == row_id, table.c.status_page_id == page.id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no {what} {row_id} on {page.slug!r}")
    return row


async def _group(session: AsyncSession, page: Any, group_id: uuid.UUID) -> Any:
    return await _row_of_page(session, component_group, page, group_id, "component group")


async def _component(session: AsyncSession, page: Any, component_id: uuid.UUID) -> Any:
    return await _row_of_page(session, component, page, component_id, "component")


async def update_group(
    *, session: AsyncSession, slug: str, group_id: uuid.UUID, data: GroupUpdate
) -> Any:
    """Rename, describe or move a component group."""
    page = await pages.get_page(session, slug, lock=True)
    await _group(session, page, group_id)
    values = changes(data)
    if values:
        await pages.write_unique(
            session,
            update(component_group).where(component_group.c.id == group_id).values(values),
            f"the page has a group {values.get('name')!r}",
        )
    await pages.touch(session, page.id)
    return await _group(session, page, group_id)


async def delete_group(*, session: AsyncSession, slug: str, group_id: uuid.UUID) -> None:
    """Remove a component group; its components stay on the page, ungrouped."""
    page = await pages.get_page(session, slug, lock=True)
    await _group(session, page, group_id)
    await session.execute(
        update(component).where(component.c.group_id == group_id).values(group_id=None)
    )
    await session.execute(delete(component_group).where(component_group.c.id == group_id))
    await pages.touch(session, page.id)


async def update_component(
    *, session: AsyncSession, slug: str, component_id: uuid.UUID, data: ComponentUpdate
) -> Any:
    """Change a component; a new product or monitor list takes effect at once (its status
    is recomputed from what those monitors said last)."""
    page = await pages.get_page(session, slug, lock=True)
    await _component(session, page, component_id)
    values = changes(data)
    if data.group_id is not None:
        await _group_of_page(session, page, data.group_id)
    if data.product is not None and not await catalogue.product_exists(session, data.product):
        raise Unprocessable("product", f"no active product {data.product!r} in the catalogue")
    if "product" in values:
        values["product_slug"] = values.pop("product")
    if values:
        await pages.write_unique(
            session,
            update(component).where(component.c.id == component_id).values(values),
            f"the page has a component {values.get('name')!r}",
        )
    if {"product_slug", "monitor_ids"} & values.keys():
        await components.refresh(session, [component_id], at=datetime.now(UTC))
    await pages.touch(session, page.id)
    return await _component(session, page, component_id)


async def _group_of_page(session: AsyncSession, page: Any, group_id: uuid.UUID) -> None:
    try:
        await _group(session, page, group_id)
    except NotFound:
        raise Unprocessable("group_id", "is not a component group of this page") from None


async def delete_component(*, session: AsyncSession, slug: str, component_id: uuid.UUID) -> None:
    """Remove a component with its status history; incidents that listed it keep their
    notices (which name it) but no longer list it."""
    page = await pages.get_page(session, slug, lock=True)
    await _component(session, page, component_id)
    await session.execute(delete(component).where(component.c.id == component_id))
    await pages.touch(session, page.id)


async def cancel_maintenance(
    *, session: AsyncSession, settings: Settings, slug: str, maintenance_id: uuid.UUID
) -> None:
    """End a maintenance now, scheduled or under way: it is completed with a notice that
    says it was cancelled, its timers are cancelled, and its components return to what
    their monitors say. A completed maintenance is a 409."""
    page = await pages.get_page(session, slug, lock=True)
    row = (
        await session.execute(
            select(incident)
            .where(
                incident.c.id == maintenance_id,
                incident.c.status_page_id == page.id,
                incident.c.kind == "maintenance",
            )
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"no maintenance {maintenance_id} on {slug!r}")
    if row.status == "completed":
        raise Conflict("the maintenance is completed")
    now = datetime.now(UTC)
    await incidents.post_notice(
        session,
        settings,
        page=page,
        incident_id=maintenance_id,
        body=CANCELLED,
        status="completed",
        changes=[],
        eta=None,
        at=now,
        manual=False,
    )
    for kind in (maintenance.START, maintenance.END):
        await timers.cancel(session, kind=kind, key=str(maintenance_id))
    ids = await session.scalars(
        select(incident_component.c.component_id).where(
            incident_component.c.incident_id == maintenance_id
        )
    )
    await components.refresh(session, list(ids), at=now)

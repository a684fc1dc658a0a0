"""Incidents and their notices: opened by people or by a monitor's verdict.

Posting a notice publishes ``incident.notice_posted`` (subscribers are told) and,
when a person wrote it, keeps the page's 30-minute promises (`deadlines`). A
notice's component statuses become those components' manual statuses; resolving
the incident clears them, so monitors speak for the components again.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ComponentStatus
from contracts.statuspage import (
    AffectedComponent,
    IncidentImpact,
    IncidentNoticePosted,
    IncidentOpened,
    IncidentResolved,
)
from servicekit.outbox import publish
from servicekit.problems import NotFound, Unprocessable
from statuspage_sync import components, deadlines, pages
from statuspage_sync.models import component, incident, incident_component, notice, status_page
from statuspage_sync.schemas import ComponentChange, IncidentCreate, NoticeCreate
from statuspage_sync.settings import Settings

RESOLVED = {"resolved", "completed"}


class IncidentNotFound(NotFound):
    """No incident of this page has that id."""

    title = "Incident not found"


async def _check_components(
    session: AsyncSession, page_id: uuid.UUID, ids: list[uuid.UUID], field: str
) -> None:
    if not ids:
        return
    known = set(
        await session.scalars(
            select(component.c.id).where(
                component.c.id.in_(ids), component.c.status_page_id == page_id
            )
        )
    )
    for index, component_id in enumerate(ids):
        if component_id not in known:
            raise Unprocessable(f"{field}[{index}]", f"no component {component_id} on this page")


def _check_eta(eta: datetime | None, now: datetime) -> None:
    if eta is not None and eta <= now:
        raise Unprocessable("expected_resolution_at", "is in the past")


async def _product_of(session: AsyncSession, page: Any, component_ids: list[uuid.UUID]) -> str:
    if component_ids:
        slug = await session.scalar(
            select(component.c.product_slug).where(
                component.c.id.in_(component_ids), component.c.product_slug.is_not(None)
            )
        )
        if slug:
            return str(slug)
    return str(page.products[0]) if page.products else str(page.slug)


async def open_incident(
    session: AsyncSession,
    settings: Settings,
    *,
    page: Any,
    name: str,
    status: str,
    impact: IncidentImpact,
    body: str,
    changes: list[ComponentChange],
    eta: datetime | None,
    at: datetime,
    automatic: bool = False,
    monitor_id: uuid.UUID | None = None,
    manual: bool = True,
) -> uuid.UUID:
    """Open an incident with its first notice; publish both."""
    ids = [change.component_id for change in changes]
    product_slug = await _product_of(session, page, ids)
    incident_id = uuid.uuid4()
    await session.execute(
        insert(incident).values(
            id=incident_id,
            status_page_id=page.id,
            name=name,
            status=status,
            impact=impact.value,
            automatic=automatic,
            monitor_id=monitor_id,
            product_slug=product_slug,
            started_at=at,
        )
    )
    product = await pages.product_ref(session, product_slug)
    await publish(
        session,
        IncidentOpened(
            incident_id=incident_id,
            status_page=page.slug,
            status_page_url=pages.page_url(settings, page.slug),
            product=product,
            title=name,
            impact=impact,
            automatic=automatic,
            opened_at=at,
        ),
        producer=pages.PRODUCER,
    )
    await deadlines.watch_eta(
        session,
        settings,
        page_id=page.id,
        incident_id=incident_id,
        product=product,
        opened_at=at,
    )
    await post_notice(
        session,
        settings,
        page=page,
        incident_id=incident_id,
        body=body,
        status=status,
        changes=changes,
        eta=eta,
        at=at,
        automatic=automatic,
        manual=manual,
    )
    return incident_id


async def post_notice(
    session: AsyncSession,
    settings: Settings,
    *,
    page: Any,
    incident_id: uuid.UUID,
    body: str,
    status: str,
    changes: list[ComponentChange],
    eta: datetime | None,
    at: datetime,
    automatic: bool = False,
    manual: bool = True,
) -> uuid.UUID:
    """Post a notice on an incident: move its components and status, publish it.

    `manual` False moves no component (a monitor already did, or a maintenance does).
    An `automatic` notice (Klaxon's own, from a monitor's verdict) clears no deadline:
    only an update a person posts keeps the 30-minute promises (`deadlines.on_notice`)."""
    await pages.lock_pages(session, [page.id])
    row = (
        await session.execute(
            select(incident).where(incident.c.id == incident_id).with_for_update()
        )
    ).one()
    affected: list[AffectedComponent] = []
    for change in changes:
        await session.execute(
            pg_insert(incident_component)
            .values(incident_id=incident_id, component_id=change.component_id)
            .on_conflict_do_nothing()
        )
        if not manual:
            continue
        for moved in await components.set_manual(
            session, [change.component_id], change.status, at=at
        ):
            affected.append(
                AffectedComponent(
                    component_id=moved.component_id,
                    name=moved.name,
                    old_status=moved.old_status,
                    new_status=moved.new_status,
                )
            )
    resolving = status in RESOLVED and row.status not in RESOLVED
    values: dict[str, Any] = {"status": status, "updated_at": at}
    if status == "monitoring" and row.monitoring_at is None:
        values["monitoring_at"] = at
    if resolving:
        values["resolved_at"] = at
    await session.execute(update(incident).where(incident.c.id == incident_id).values(values))
    if resolving and row.kind == "incident" and manual:
        ids = list(
            await session.scalars(
                select(incident_component.c.component_id).where(
                    incident_component.c.incident_id == incident_id
                )
            )
        )
        for moved in await components.set_manual(session, ids, None, at=at):
            affected.append(
                AffectedComponent(
                    component_id=moved.component_id,
                    name=moved.name,
                    old_status=moved.old_status,
                    new_status=moved.new_status,
                )
            )
    notice_id = uuid.uuid4()
    await session.execute(
        insert(notice).values(
            id=notice_id,
            incident_id=incident_id,
            status=status,
            body=body,
            expected_resolution_at=eta,
            affected_components=[
                {
                    "code": str(a.component_id),
                    "name": a.name,
                    "old_status": a.old_status.value,
                    "new_status": a.new_status.value,
                }
                for a in affected
            ],
            automatic=automatic,
            created_at=at,
        )
    )
    product = await pages.product_ref(session, row.product_slug or page.slug)
    await publish(
        session,
        IncidentNoticePosted(
            incident_id=incident_id,
            notice_id=notice_id,
            status_page=page.slug,
            status_page_url=pages.page_url(settings, page.slug),
            status_page_title=page.title,
            product=product,
            incident_name=row.name,
            incident_status=status,
            impact=IncidentImpact(row.impact)
            if row.impact != "maintenance"
            else IncidentImpact.NONE,
            message=body,
            expected_resolution_at=eta,
            affected_components=tuple(affected),
            automatic=automatic,
            posted_at=at,
        ),
        producer=pages.PRODUCER,
    )
    if resolving:
        await publish(
            session,
            IncidentResolved(
                incident_id=incident_id,
                status_page=page.slug,
                status_page_url=pages.page_url(settings, page.slug),
                product=product,
                resolved_at=at,
            ),
            producer=pages.PRODUCER,
        )
        await deadlines.on_resolved(session, incident_id=incident_id, at=at)
    if not automatic and row.kind == "incident":
        await deadlines.on_notice(
            session,
            page_id=page.id,
            incident_id=incident_id,
            notice_id=notice_id,
            posted_at=at,
            has_eta=eta is not None,
            resolved=resolving,
        )
    await pages.touch(session, page.id)
    return notice_id


async def create_incident(
    *, session: AsyncSession, settings: Settings, slug: str, data: IncidentCreate
) -> uuid.UUID:
    """A person opens an incident (POST /v1/pages/{slug}/incidents)."""
    page = await pages.get_page(session, slug, lock=True)
    now = datetime.now(UTC)
    _check_eta(data.expected_resolution_at, now)
    ids = [change.component_id for change in data.components]
    await _check_components(session, page.id, ids, "components")
    return await open_incident(
        session,
        settings,
        page=page,
        name=data.name,
        status=data.status.value,
        impact=data.impact,
        body=data.body,
        changes=data.components,
        eta=data.expected_resolution_at,
        at=now,
    )


async def add_notice(
    *,
    session: AsyncSession,
    settings: Settings,
    slug: str,
    incident_id: uuid.UUID,
    data: NoticeCreate,
) -> uuid.UUID:
    """A person posts a notice on an incident."""
    page = await pages.get_page(session, slug, lock=True)
    row = (
        await session.execute(
            select(incident).where(
                incident.c.id == incident_id,
                incident.c.status_page_id == page.id,
                incident.c.kind == "incident",
            )
        )
    ).first()
    if row is None:
        raise IncidentNotFound(f"no incident {incident_id} on {slug!r}")
    now = datetime.now(UTC)
    _check_eta(data.expected_resolution_at, now)
    await _check_components(
        session, page.id, [change.component_id for change in data.components], "components"
    )
    return await post_notice(
        session,
        settings,
        page=page,
        incident_id=incident_id,
        body=data.body,
        status=(data.status.value if data.status else row.status),
        changes=data.components,
        eta=data.expected_resolution_at,
        at=now,
    )


async def set_component_status(
    *, session: AsyncSession, slug: str, component_id: uuid.UUID, status: ComponentStatus | None
) -> None:
    """Set or clear a component's manual status."""
    page = await pages.get_page(session, slug, lock=True)
    found = await session.scalar(
        select(component.c.id).where(
            component.c.id == component_id, component.c.status_page_id == page.id
        )
    )
    if found is None:
        raise NotFound(f"no component {component_id} on {slug!r}")
    await components.set_manual(session, [component_id], status, at=datetime.now(UTC))
    await pages.touch(session, page.id)


async def page_by_id(session: AsyncSession, page_id: uuid.UUID) -> Any:
    """The page row by id."""
    return (await session.execute(select(status_page).where(status_page.c.id == page_id))).one()

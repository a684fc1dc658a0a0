"""The admin API (``/v1``): thin routes that parse, call one use case, commit and respond.

Scopes: ``statuspage:read`` to read, ``statuspage:write`` to change (``admin`` has both).
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.api import json_body, json_request_body
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope
from servicekit.deps import SessionDep, commit
from statuspage_sync import incidents, maintenance, pages, views
from statuspage_sync.schemas import (
    ComponentCreate,
    ComponentRead,
    DeadlineRead,
    GroupCreate,
    GroupRead,
    IncidentCreate,
    IncidentRead,
    MaintenanceCreate,
    ManualStatus,
    NoticeCreate,
    PageCreate,
    PageRead,
    PageUpdate,
)
from statuspage_sync.settings import Settings

READ = "statuspage:read"
WRITE = "statuspage:write"
SCOPES = frozenset({"admin", READ, WRITE})

Reader = Annotated[Principal, Depends(require_scope(READ, WRITE))]
Writer = Annotated[Principal, Depends(require_scope(WRITE))]

BODY_MODELS = (
    PageCreate,
    PageUpdate,
    GroupCreate,
    ComponentCreate,
    ManualStatus,
    IncidentCreate,
    NoticeCreate,
    MaintenanceCreate,
)


async def get_settings(request: Request) -> Settings:
    """The settings of the running service."""
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]

router = APIRouter(prefix="/v1", tags=["admin"])
WRITE_ERRORS = error_responses(401, 403, 404, 409, 413, 415, 422, 503)
_READ_ERRORS = error_responses(401, 403, 404, 503)


async def save(request: Request, session: AsyncSession) -> None:
    """Commit, and tell this process's page cache at once which pages changed, so a
    client reads its own change on the next request (other replicas learn by NOTIFY)."""
    touched = dict(session.info.get(pages.TOUCHED, {}))
    await commit(session)
    request.app.state.page_cache.saw(touched)


def body(model: Any) -> Any:
    """The capped JSON body parsed as `model` (a dependency)."""
    return Depends(json_body(model))


@router.post(
    "/pages",
    status_code=201,
    response_model=PageRead,
    openapi_extra=json_request_body(PageCreate),
    responses=WRITE_ERRORS,
)
async def create_page(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    data: Annotated[PageCreate, body(PageCreate)],
) -> PageRead:
    """Create a status page."""
    row = await pages.create_page(session=session, settings=settings, data=data)
    await save(request, session)
    return views.page_read(settings, row)


@router.get("/pages", response_model=list[PageRead], responses=_READ_ERRORS)
async def list_pages(_: Reader, session: SessionDep, settings: SettingsDep) -> list[PageRead]:
    """Every status page."""
    return [views.page_read(settings, row) for row in await pages.list_pages(session=session)]


@router.get("/pages/{slug}", response_model=PageRead, responses=_READ_ERRORS)
async def get_page(_: Reader, session: SessionDep, settings: SettingsDep, slug: str) -> PageRead:
    """One status page."""
    return views.page_read(settings, await pages.get_page(session, slug))


@router.patch(
    "/pages/{slug}",
    response_model=PageRead,
    openapi_extra=json_request_body(PageUpdate),
    responses=WRITE_ERRORS,
)
async def update_page(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    data: Annotated[PageUpdate, body(PageUpdate)],
) -> PageRead:
    """Change a status page."""
    row = await pages.update_page(session=session, settings=settings, slug=slug, data=data)
    await save(request, session)
    return views.page_read(settings, row)


@router.post(
    "/pages/{slug}/groups",
    status_code=201,
    response_model=GroupRead,
    openapi_extra=json_request_body(GroupCreate),
    responses=WRITE_ERRORS,
)
async def create_group(
    _: Writer,
    request: Request,
    session: SessionDep,
    slug: str,
    data: Annotated[GroupCreate, body(GroupCreate)],
) -> GroupRead:
    """Add a component group."""
    row = await pages.create_group(session=session, slug=slug, data=data)
    await save(request, session)
    return GroupRead.model_validate(row, from_attributes=True)


@router.post(
    "/pages/{slug}/components",
    status_code=201,
    response_model=ComponentRead,
    openapi_extra=json_request_body(ComponentCreate),
    responses=WRITE_ERRORS,
)
async def create_component(
    _: Writer,
    request: Request,
    session: SessionDep,
    slug: str,
    data: Annotated[ComponentCreate, body(ComponentCreate)],
) -> ComponentRead:
    """Add a component."""
    row = await pages.create_component(session=session, slug=slug, data=data)
    await save(request, session)
    return views.component_read(row)


@router.get("/pages/{slug}/components", response_model=list[ComponentRead], responses=_READ_ERRORS)
async def list_components(_: Reader, session: SessionDep, slug: str) -> list[ComponentRead]:
    """A page's components with their statuses and where they came from."""
    page = await pages.get_page(session, slug)
    return [views.component_read(row) for row in await pages.page_components(session, page.id)]


@router.put(
    "/pages/{slug}/components/{component_id}/manual-status",
    status_code=204,
    openapi_extra=json_request_body(ManualStatus),
    responses=WRITE_ERRORS,
)
async def set_manual_status(
    _: Writer,
    request: Request,
    session: SessionDep,
    slug: str,
    component_id: uuid.UUID,
    data: Annotated[ManualStatus, body(ManualStatus)],
) -> Response:
    """Set a component's status by hand; monitors do not change it until it is cleared."""
    await incidents.set_component_status(
        session=session, slug=slug, component_id=component_id, status=data.status
    )
    await save(request, session)
    return Response(status_code=204)


@router.delete(
    "/pages/{slug}/components/{component_id}/manual-status",
    status_code=204,
    responses=WRITE_ERRORS,
)
async def clear_manual_status(
    _: Writer, request: Request, session: SessionDep, slug: str, component_id: uuid.UUID
) -> Response:
    """Clear a manual status: the component follows its monitors again."""
    await incidents.set_component_status(
        session=session, slug=slug, component_id=component_id, status=None
    )
    await save(request, session)
    return Response(status_code=204)


@router.post(
    "/pages/{slug}/incidents",
    status_code=201,
    response_model=IncidentRead,
    openapi_extra=json_request_body(IncidentCreate),
    responses=WRITE_ERRORS,
)
async def create_incident(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    data: Annotated[IncidentCreate, body(IncidentCreate)],
) -> IncidentRead:
    """Open an incident with its first notice."""
    incident_id = await incidents.create_incident(
        session=session, settings=settings, slug=slug, data=data
    )
    result = await views.incident_read(session, incident_id)
    await save(request, session)
    return result


@router.get("/pages/{slug}/incidents", response_model=list[IncidentRead], responses=_READ_ERRORS)
async def list_incidents(_: Reader, session: SessionDep, slug: str) -> list[IncidentRead]:
    """A page's incidents and maintenances, newest first."""
    page = await pages.get_page(session, slug)
    return await views.incidents_of(session, page.id)


@router.post(
    "/pages/{slug}/incidents/{incident_id}/notices",
    status_code=201,
    response_model=IncidentRead,
    openapi_extra=json_request_body(NoticeCreate),
    responses=WRITE_ERRORS,
)
async def post_notice(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    incident_id: uuid.UUID,
    data: Annotated[NoticeCreate, body(NoticeCreate)],
) -> IncidentRead:
    """Post a notice: what is known, and when it should be resolved."""
    await incidents.add_notice(
        session=session, settings=settings, slug=slug, incident_id=incident_id, data=data
    )
    result = await views.incident_read(session, incident_id)
    await save(request, session)
    return result


@router.post(
    "/pages/{slug}/maintenances",
    status_code=201,
    response_model=IncidentRead,
    openapi_extra=json_request_body(MaintenanceCreate),
    responses=WRITE_ERRORS,
)
async def schedule_maintenance(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    data: Annotated[MaintenanceCreate, body(MaintenanceCreate)],
) -> IncidentRead:
    """Schedule a maintenance; its components are under maintenance for its window."""
    maintenance_id = await maintenance.schedule_maintenance(
        session=session, settings=settings, slug=slug, data=data
    )
    result = await views.incident_read(session, maintenance_id)
    await save(request, session)
    return result


@router.get("/pages/{slug}/deadlines", response_model=list[DeadlineRead], responses=_READ_ERRORS)
async def list_deadlines(_: Reader, session: SessionDep, slug: str) -> list[DeadlineRead]:
    """The promises watched on a page, newest first."""
    page = await pages.get_page(session, slug)
    return await views.deadlines_of(session, page.id)

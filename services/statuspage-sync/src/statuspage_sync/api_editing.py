"""Admin routes that change or remove groups and components, and cancel a maintenance:
thin, like `statuspage_sync.api` (parse, call one use case, commit, respond)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response

from servicekit.api import json_request_body
from servicekit.deps import SessionDep
from statuspage_sync import editing, views
from statuspage_sync.api import WRITE_ERRORS, SettingsDep, Writer, body, save
from statuspage_sync.schemas import (
    ComponentRead,
    ComponentUpdate,
    GroupRead,
    GroupUpdate,
    IncidentRead,
)

BODY_MODELS = (GroupUpdate, ComponentUpdate)

router = APIRouter(prefix="/v1", tags=["admin"])


@router.patch(
    "/pages/{slug}/groups/{group_id}",
    response_model=GroupRead,
    openapi_extra=json_request_body(GroupUpdate),
    responses=WRITE_ERRORS,
)
async def update_group(
    _: Writer,
    request: Request,
    session: SessionDep,
    slug: str,
    group_id: uuid.UUID,
    data: Annotated[GroupUpdate, body(GroupUpdate)],
) -> GroupRead:
    """Change a component group."""
    row = await editing.update_group(session=session, slug=slug, group_id=group_id, data=data)
    await save(request, session)
    return GroupRead.model_validate(row, from_attributes=True)


@router.delete("/pages/{slug}/groups/{group_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_group(
    _: Writer, request: Request, session: SessionDep, slug: str, group_id: uuid.UUID
) -> Response:
    """Remove a component group; its components stay, ungrouped."""
    await editing.delete_group(session=session, slug=slug, group_id=group_id)
    await save(request, session)
    return Response(status_code=204)


@router.patch(
    "/pages/{slug}/components/{component_id}",
    response_model=ComponentRead,
    openapi_extra=json_request_body(ComponentUpdate),
    responses=WRITE_ERRORS,
)
async def update_component(
    _: Writer,
    request: Request,
    session: SessionDep,
    slug: str,
    component_id: uuid.UUID,
    data: Annotated[ComponentUpdate, body(ComponentUpdate)],
) -> ComponentRead:
    """Change a component."""
    row = await editing.update_component(
        session=session, slug=slug, component_id=component_id, data=data
    )
    await save(request, session)
    return views.component_read(row)


@router.delete("/pages/{slug}/components/{component_id}", status_code=204, responses=WRITE_ERRORS)
async def delete_component(
    _: Writer, request: Request, session: SessionDep, slug: str, component_id: uuid.UUID
) -> Response:
    """Remove a component and its status history."""
    await editing.delete_component(session=session, slug=slug, component_id=component_id)
    await save(request, session)
    return Response(status_code=204)


@router.post(
    "/pages/{slug}/maintenances/{maintenance_id}/cancel",
    response_model=IncidentRead,
    responses=WRITE_ERRORS,
)
async def cancel_maintenance(
    _: Writer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    slug: str,
    maintenance_id: uuid.UUID,
) -> IncidentRead:
    """End a maintenance now (scheduled or under way): its components return to their
    monitors' statuses."""
    await editing.cancel_maintenance(
        session=session, settings=settings, slug=slug, maintenance_id=maintenance_id
    )
    result = await views.incident_read(session, maintenance_id)
    await save(request, session)
    return result

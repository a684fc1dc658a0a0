"""The /v1 REST API: thin routes that parse, call one use case, commit and respond."""

import html
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from notifier import coverage, directory, links, pages_view, schemas, timeline
from notifier.settings import Settings
from servicekit.api import UtcDatetime, json_body, json_request_body
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope
from servicekit.deps import SessionDep, commit
from servicekit.problems import Problem

router = APIRouter(prefix="/v1")


async def get_settings(request: Request) -> Settings:
    """The notifier settings of the running service."""
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
Reader = Annotated[Principal, Depends(require_scope("oncall:read", "oncall:write"))]
Writer = Annotated[Principal, Depends(require_scope("oncall:write"))]
Pager = Annotated[Principal, Depends(require_scope("pages:write"))]
Id = uuid.UUID
ERRORS = error_responses(401, 403, 404, 409, 422)


def body(model: type[schemas.Strict]) -> dict[str, object]:
    """OpenAPI of a route's JSON body."""
    return json_request_body(model)


# --- people -------------------------------------------------------------------------


@router.post("/people", status_code=201, responses=ERRORS, openapi_extra=body(schemas.PersonCreate))
async def create_person(
    _: Writer,
    data: Annotated[schemas.PersonCreate, Depends(json_body(schemas.PersonCreate))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.PersonRead:
    """Add a person with their contact methods and notification rules."""
    row = await directory.create_person(session, data)
    read = await directory.read_person(session, settings, row)
    await commit(session)
    return read


@router.get("/people", responses=ERRORS)
async def list_people(
    _: Reader, session: SessionDep, settings: SettingsDep
) -> list[schemas.PersonRead]:
    """Every person."""
    return [
        await directory.read_person(session, settings, row)
        for row in await directory.list_person_rows(session)
    ]


@router.get("/people/{person_id}", responses=ERRORS)
async def get_person(
    person_id: Id, _: Reader, session: SessionDep, settings: SettingsDep
) -> schemas.PersonRead:
    """One person."""
    return await directory.read_person(
        session, settings, await directory.get_person_row(session, person_id)
    )


@router.put("/people/{person_id}", responses=ERRORS, openapi_extra=body(schemas.PersonCreate))
async def replace_person(
    person_id: Id,
    _: Writer,
    data: Annotated[schemas.PersonCreate, Depends(json_body(schemas.PersonCreate))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.PersonRead:
    """Replace a person's details and rules."""
    row = await directory.replace_person(session, person_id, data)
    read = await directory.read_person(session, settings, row)
    await commit(session)
    return read


@router.delete("/people/{person_id}", status_code=204, responses=ERRORS)
async def delete_person(person_id: Id, _: Writer, session: SessionDep) -> Response:
    """Remove a person who is in no schedule or policy."""
    await directory.delete_person(session, person_id)
    await commit(session)
    return Response(status_code=204)


# --- schedules ----------------------------------------------------------------------


@router.post(
    "/schedules", status_code=201, responses=ERRORS, openapi_extra=body(schemas.ScheduleCreate)
)
async def create_schedule(
    _: Writer,
    data: Annotated[schemas.ScheduleCreate, Depends(json_body(schemas.ScheduleCreate))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.ScheduleRead:
    """Add a schedule with its layers."""
    row = await directory.create_schedule(session, data)
    read = await directory.read_schedule(session, settings, row)
    await commit(session)
    return read


@router.get("/schedules/{schedule_id}", responses=ERRORS)
async def get_schedule(
    schedule_id: Id, _: Reader, session: SessionDep, settings: SettingsDep
) -> schemas.ScheduleRead:
    """One schedule."""
    row = await directory.get_schedule_row(session, schedule_id)
    return await directory.read_schedule(session, settings, row)


@router.put(
    "/schedules/{schedule_id}", responses=ERRORS, openapi_extra=body(schemas.ScheduleCreate)
)
async def replace_schedule(
    schedule_id: Id,
    _: Writer,
    data: Annotated[schemas.ScheduleCreate, Depends(json_body(schemas.ScheduleCreate))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.ScheduleRead:
    """Replace a schedule's name, zone and layers."""
    row = await directory.replace_schedule(session, schedule_id, data)
    read = await directory.read_schedule(session, settings, row)
    await commit(session)
    return read


@router.delete("/schedules/{schedule_id}", status_code=204, responses=ERRORS)
async def delete_schedule(schedule_id: Id, _: Writer, session: SessionDep) -> Response:
    """Remove a schedule no policy targets."""
    await directory.delete_schedule(session, schedule_id)
    await commit(session)
    return Response(status_code=204)


@router.get("/schedules/{schedule_id}/shifts", responses=ERRORS)
async def list_shifts(
    schedule_id: Id, _: Reader, session: SessionDep, start: UtcDatetime, end: UtcDatetime
) -> list[schemas.Shift]:
    """Who is on call, shift by shift, over [start, end) (at most 92 days)."""
    if end <= start or (end - start).days > 92:
        raise Problem("end must be after start, at most 92 days later")
    found = await coverage.shifts(session, schedule_id, start, end)
    names = await coverage.names(session)
    return [
        schemas.Shift(
            person_id=s.person_id,
            person_name=names.get(s.person_id) if s.person_id else None,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
        )
        for s in found
    ]


@router.post(
    "/schedules/{schedule_id}/overrides",
    status_code=201,
    responses=ERRORS,
    openapi_extra=body(schemas.OverrideCreate),
)
async def create_override(
    schedule_id: Id,
    _: Writer,
    data: Annotated[schemas.OverrideCreate, Depends(json_body(schemas.OverrideCreate))],
    session: SessionDep,
) -> schemas.OverrideRead:
    """Someone covers the schedule for a period (no overlap with another override)."""
    row = await directory.create_override(session, schedule_id, data)
    await commit(session)
    return schemas.OverrideRead.model_validate(row._asdict())


@router.delete(
    "/schedules/{schedule_id}/overrides/{override_id}", status_code=204, responses=ERRORS
)
async def delete_override(
    schedule_id: Id, override_id: Id, _: Writer, session: SessionDep
) -> Response:
    """Remove an override."""
    await directory.delete_override(session, schedule_id, override_id)
    await commit(session)
    return Response(status_code=204)


@router.get("/oncall", responses=ERRORS)
async def who_is_oncall(
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    schedule: Annotated[uuid.UUID, Query(description="The schedule's id.")],
    at: Annotated[UtcDatetime | None, Query(description="When (default: now).")] = None,
) -> schemas.OncallRead:
    """Who is on call on a schedule, now or at any time."""
    return await coverage.oncall(session, settings, schedule, at or timeline.now())


@router.get("/warnings", responses=ERRORS)
async def list_warnings(_: Reader, session: SessionDep, settings: SettingsDep) -> schemas.Warnings:
    """Schedule gaps in the coming days and people nobody can reach."""
    return schemas.Warnings(warnings=await coverage.warnings(session, settings))


@router.get("/ical/schedules/{token}.ics", responses=error_responses(404))
async def schedule_feed(token: str, session: SessionDep) -> Response:
    """A schedule's iCal feed (the token is the secret: no API key)."""
    return Response(await coverage.schedule_feed(session, token), media_type="text/calendar")


@router.get("/ical/people/{token}.ics", responses=error_responses(404))
async def person_feed(token: str, session: SessionDep) -> Response:
    """A person's iCal feed of their shifts (the token is the secret: no API key)."""
    return Response(await coverage.person_feed(session, token), media_type="text/calendar")


# --- policies -----------------------------------------------------------------------


@router.post(
    "/policies", status_code=201, responses=ERRORS, openapi_extra=body(schemas.PolicyCreate)
)
async def create_policy(
    _: Writer,
    data: Annotated[schemas.PolicyCreate, Depends(json_body(schemas.PolicyCreate))],
    session: SessionDep,
) -> schemas.PolicyRead:
    """Add an escalation policy for a product, or the default one."""
    row = await directory.create_policy(session, data)
    await commit(session)
    return directory.read_policy(row)


@router.get("/policies/{policy_id}", responses=ERRORS)
async def get_policy(policy_id: Id, _: Reader, session: SessionDep) -> schemas.PolicyRead:
    """One escalation policy."""
    return directory.read_policy(await directory.get_policy_row(session, policy_id))


@router.put("/policies/{policy_id}", responses=ERRORS, openapi_extra=body(schemas.PolicyCreate))
async def replace_policy(
    policy_id: Id,
    _: Writer,
    data: Annotated[schemas.PolicyCreate, Depends(json_body(schemas.PolicyCreate))],
    session: SessionDep,
) -> schemas.PolicyRead:
    """Replace a policy (open pages keep the copy they took)."""
    row = await directory.replace_policy(session, policy_id, data)
    await commit(session)
    return directory.read_policy(row)


@router.delete("/policies/{policy_id}", status_code=204, responses=ERRORS)
async def delete_policy(policy_id: Id, _: Writer, session: SessionDep) -> Response:
    """Remove a policy."""
    await directory.delete_policy(session, policy_id)
    await commit(session)
    return Response(status_code=204)


# --- pages --------------------------------------------------------------------------


@router.get("/pages", responses=ERRORS)
async def list_pages(
    _: Reader,
    session: SessionDep,
    state: Literal["triggered", "acknowledged", "resolved"] | None = None,
    product: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.PageRead]:
    """Pages, newest first."""
    return await pages_view.list_pages(session, state=state, product=product, limit=limit)


@router.get("/pages/{page_id}", responses=ERRORS)
async def get_page(page_id: Id, _: Reader, session: SessionDep) -> schemas.PageRead:
    """One page with its tickets and timeline."""
    return await pages_view.get_page(session, page_id)


@router.post("/pages/{page_id}/{action}", responses=ERRORS, openapi_extra=body(schemas.PageAction))
async def act_on_page(
    page_id: Id,
    action: Literal["acknowledge", "resolve"],
    principal: Pager,
    data: Annotated[schemas.PageAction, Depends(json_body(schemas.PageAction))],
    session: SessionDep,
    settings: SettingsDep,
) -> schemas.PageRead:
    """Acknowledge (stops the escalation) or resolve a page."""
    read = await pages_view.act(
        session,
        settings,
        page_id,
        action=action,
        person_id=data.person_id,
        fallback=f"API key {principal.name}",
        note=data.note,
    )
    await commit(session)
    return read


_CONFIRM = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>Klaxon: {verb} page</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:40px auto;padding:0 16px">
<h1 style="font-size:22px">{verb} this page?</h1><p>{product}: {summary}</p><p>State: {state}</p>
<form method="post"><button type="submit" style="padding:10px 18px;font-size:16px">{verb}</button></form>
</body></html>"""


def _link(settings: Settings, token: str) -> links.LinkAction:
    try:
        return links.read_link(settings, token)
    except links.BadLink as exc:
        raise LinkRefused(str(exc)) from exc


class LinkRefused(Problem):
    """A forged, altered or expired action link."""

    status = 403
    title = "Link refused"


@router.get("/links/{token}", response_class=HTMLResponse, responses=error_responses(403, 404))
async def confirm_link(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The confirm page of a signed acknowledge/resolve link (a GET changes nothing)."""
    link = _link(settings, token)
    current = await pages_view.get_page(session, link.page_id)
    verb = "Acknowledge" if link.action == "acknowledge" else "Resolve"
    return HTMLResponse(
        _CONFIRM.format(
            verb=verb,
            product=html.escape(current.product_name),
            summary=html.escape(current.summary),
            state=html.escape(current.state),
        )
    )


@router.post(
    "/links/{token}", response_class=HTMLResponse, responses=error_responses(403, 404, 409)
)
async def act_by_link(token: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """Perform a signed link's action."""
    link = _link(settings, token)
    read = await pages_view.act(
        session,
        settings,
        link.page_id,
        action=link.action,
        person_id=link.person_id,
        fallback="link",
    )
    await commit(session)
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="en"><body style="font-family:Arial,sans-serif">'
        f"<h1>Page {html.escape(read.state)}</h1><p>{html.escape(read.summary)}</p></body></html>"
    )

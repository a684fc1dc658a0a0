"""The /v1 REST API for people, schedules, overrides, policies and who is on call: thin
routes that parse, call one use case, commit and respond."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from notifier import coverage, directory, policies, schemas, timeline
from notifier.api_deps import ERRORS, Reader, SettingsDep, Writer, body
from servicekit.api import UtcDatetime, json_body
from servicekit.api_openapi import error_responses
from servicekit.deps import SessionDep, commit
from servicekit.problems import Unprocessable

router = APIRouter(prefix="/v1")
Id = uuid.UUID


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


@router.get("/schedules", responses=ERRORS)
async def list_schedules(
    _: Reader, session: SessionDep, settings: SettingsDep
) -> list[schemas.ScheduleRead]:
    """Every schedule."""
    return [
        await directory.read_schedule(session, settings, row)
        for row in await directory.list_schedule_rows(session)
    ]


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
        raise Unprocessable("end", "must be after start, at most 92 days later")
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


@router.get("/schedules/{schedule_id}/overrides", responses=ERRORS)
async def list_overrides(
    schedule_id: Id, _: Reader, session: SessionDep
) -> list[schemas.OverrideRead]:
    """A schedule's overrides, by start."""
    rows = await directory.list_override_rows(session, schedule_id)
    return [schemas.OverrideRead.model_validate(row._asdict()) for row in rows]


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
    row = await policies.create_policy(session, data)
    await commit(session)
    return policies.read_policy(row)


@router.get("/policies", responses=ERRORS)
async def list_policies(_: Reader, session: SessionDep) -> list[schemas.PolicyRead]:
    """Every escalation policy."""
    return [policies.read_policy(row) for row in await policies.list_policy_rows(session)]


@router.get("/policies/{policy_id}", responses=ERRORS)
async def get_policy(policy_id: Id, _: Reader, session: SessionDep) -> schemas.PolicyRead:
    """One escalation policy."""
    return policies.read_policy(await policies.get_policy_row(session, policy_id))


@router.put("/policies/{policy_id}", responses=ERRORS, openapi_extra=body(schemas.PolicyCreate))
async def replace_policy(
    policy_id: Id,
    _: Writer,
    data: Annotated[schemas.PolicyCreate, Depends(json_body(schemas.PolicyCreate))],
    session: SessionDep,
) -> schemas.PolicyRead:
    """Replace a policy (open pages keep the copy they took)."""
    row = await policies.replace_policy(session, policy_id, data)
    await commit(session)
    return policies.read_policy(row)


@router.delete("/policies/{policy_id}", status_code=204, responses=ERRORS)
async def delete_policy(policy_id: Id, _: Writer, session: SessionDep) -> Response:
    """Remove a policy."""
    await policies.delete_policy(session, policy_id)
    await commit(session)
    return Response(status_code=204)

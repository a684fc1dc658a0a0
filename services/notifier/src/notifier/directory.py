"""People, schedules and overrides: the use cases of their CRUD API (policies: `policies`).
Each runs in the route's transaction and never commits."""

import secrets
import uuid
from typing import Any

from sqlalchemy import Row, any_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import schemas
from notifier.models import (
    escalation_policy,
    notification_rule,
    person,
    schedule,
    schedule_layer,
    schedule_override,
)
from notifier.oncall import SENDABLE_CHANNELS
from notifier.settings import Settings
from servicekit.problems import Conflict, NotFound, Unprocessable


def _token() -> str:
    return secrets.token_urlsafe(32)


def ical_url(settings: Settings, kind: str, token: str) -> str:
    """The public iCal feed of a schedule or person."""
    return f"{settings.public_base_url.rstrip('/')}/v1/ical/{kind}/{token}.ics"


# --- people -------------------------------------------------------------------------


def person_warnings(row: Row[Any], rules: list[schemas.RuleIn]) -> list[str]:
    """What keeps a person from being reached."""
    usable = [
        r for r in rules or [schemas.RuleIn(channel="email")] if r.channel in SENDABLE_CHANNELS
    ]
    if not row.email or not usable:
        return [f"{row.name} has no usable contact method (an email address with an email rule)"]
    return []


async def _rules(session: AsyncSession, person_id: uuid.UUID) -> list[schemas.RuleIn]:
    rows = await session.execute(
        select(notification_rule.c.channel, notification_rule.c.delay_s)
        .where(notification_rule.c.person_id == person_id)
        .order_by(notification_rule.c.delay_s, notification_rule.c.id)
    )
    return [schemas.RuleIn(channel=r.channel, delay_s=r.delay_s) for r in rows]


async def read_person(
    session: AsyncSession, settings: Settings, row: Row[Any]
) -> schemas.PersonRead:
    """A person row as the API shows it."""
    rules = await _rules(session, row.id)
    return schemas.PersonRead(
        id=row.id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        slack=row.slack,
        time_zone=row.time_zone,
        rules=rules,
        ical_url=ical_url(settings, "people", row.ical_token),
        warnings=person_warnings(row, rules),
    )


async def list_person_rows(session: AsyncSession) -> list[Row[Any]]:
    """Every person's row, by name."""
    return list((await session.execute(select(person).order_by(person.c.name))).all())


async def get_person_row(session: AsyncSession, person_id: uuid.UUID) -> Row[Any]:
    """A person's row; 404 if unknown."""
    row = (await session.execute(select(person).where(person.c.id == person_id))).first()
    if row is None:
        raise NotFound(f"no person {person_id}")
    return row


async def _write_rules(
    session: AsyncSession, person_id: uuid.UUID, rules: list[schemas.RuleIn]
) -> None:
    await session.execute(
        delete(notification_rule).where(notification_rule.c.person_id == person_id)
    )
    if rules:
        await session.execute(
            insert(notification_rule),
            [
                {"person_id": person_id, "channel": r.channel.value, "delay_s": r.delay_s}
                for r in rules
            ],
        )


def _person_values(data: schemas.PersonCreate) -> dict[str, Any]:
    return {
        "name": data.name,
        "email": str(data.email) if data.email else None,
        "phone": data.phone,
        "slack": data.slack,
        "time_zone": data.time_zone,
    }


async def create_person(session: AsyncSession, data: schemas.PersonCreate) -> Row[Any]:
    """Add a person with their rules."""
    person_id = uuid.uuid4()
    await session.execute(
        insert(person).values(id=person_id, ical_token=_token(), **_person_values(data))
    )
    await _write_rules(session, person_id, data.rules)
    return await get_person_row(session, person_id)


async def replace_person(
    session: AsyncSession, person_id: uuid.UUID, data: schemas.PersonCreate
) -> Row[Any]:
    """Replace a person's details and rules."""
    await get_person_row(session, person_id)
    await session.execute(
        update(person).where(person.c.id == person_id).values(**_person_values(data))
    )
    await _write_rules(session, person_id, data.rules)
    return await get_person_row(session, person_id)


async def delete_person(session: AsyncSession, person_id: uuid.UUID) -> None:
    """Remove a person; refused (409) while a schedule or policy names them."""
    await get_person_row(session, person_id)
    in_layer = await session.scalar(
        select(schedule_layer.c.schedule_id)
        .where(any_(schedule_layer.c.members) == person_id)
        .limit(1)
    )
    in_policy = await session.scalar(
        select(escalation_policy.c.id)
        .where(escalation_policy.c.levels.contains([{"target_id": str(person_id)}]))
        .limit(1)
    )
    if in_layer or in_policy:
        raise Conflict(
            "the person is in a schedule or an escalation policy; remove them there first"
        )
    await session.execute(delete(person).where(person.c.id == person_id))


async def _require_people(session: AsyncSession, ids: set[uuid.UUID], field: str) -> None:
    found = set(await session.scalars(select(person.c.id).where(person.c.id.in_(ids))))
    missing = ids - found
    if missing:
        raise Unprocessable(field, f"unknown person {sorted(missing)[0]}")


# --- schedules ----------------------------------------------------------------------


async def list_schedule_rows(session: AsyncSession) -> list[Row[Any]]:
    """Every schedule's row, by name."""
    return list((await session.execute(select(schedule).order_by(schedule.c.name))).all())


async def list_override_rows(session: AsyncSession, schedule_id: uuid.UUID) -> list[Row[Any]]:
    """A schedule's overrides, by start; 404 if there is no such schedule."""
    await get_schedule_row(session, schedule_id)
    query = (
        select(schedule_override)
        .where(schedule_override.c.schedule_id == schedule_id)
        .order_by(schedule_override.c.starts_at)
    )
    return list((await session.execute(query)).all())


async def get_schedule_row(session: AsyncSession, schedule_id: uuid.UUID) -> Row[Any]:
    """A schedule's row; 404 if unknown."""
    row = (await session.execute(select(schedule).where(schedule.c.id == schedule_id))).first()
    if row is None:
        raise NotFound(f"no schedule {schedule_id}")
    return row


async def read_schedule(
    session: AsyncSession, settings: Settings, row: Row[Any]
) -> schemas.ScheduleRead:
    """A schedule row with its layers, as the API shows it."""
    layers = (
        await session.execute(
            select(schedule_layer)
            .where(schedule_layer.c.schedule_id == row.id)
            .order_by(schedule_layer.c.position)
        )
    ).all()
    return schemas.ScheduleRead(
        id=row.id,
        name=row.name,
        time_zone=row.time_zone,
        layers=[
            schemas.LayerIn(
                name=layer.name,
                rotation_start=layer.rotation_start,
                shift_unit=layer.shift_unit,
                shift_count=layer.shift_count,
                members=list(layer.members),
                restrictions=[schemas.RestrictionIn.model_validate(r) for r in layer.restrictions],
            )
            for layer in layers
        ],
        ical_url=ical_url(settings, "schedules", row.ical_token),
    )


async def _write_layers(
    session: AsyncSession, schedule_id: uuid.UUID, data: schemas.ScheduleCreate
) -> None:
    for index, layer in enumerate(data.layers):
        await _require_people(session, set(layer.members), f"layers.{index}.members")
    await session.execute(delete(schedule_layer).where(schedule_layer.c.schedule_id == schedule_id))
    await session.execute(
        insert(schedule_layer),
        [
            {
                "schedule_id": schedule_id,
                "position": index,
                "name": layer.name,
                "rotation_start": layer.rotation_start,
                "shift_unit": layer.shift_unit,
                "shift_count": layer.shift_count,
                "members": layer.members,
                "restrictions": [r.model_dump(mode="json") for r in layer.restrictions],
            }
            for index, layer in enumerate(data.layers)
        ],
    )


async def create_schedule(session: AsyncSession, data: schemas.ScheduleCreate) -> Row[Any]:
    """Add a schedule with its layers."""
    schedule_id = uuid.uuid4()
    await session.execute(
        insert(schedule).values(
            id=schedule_id, name=data.name, time_zone=data.time_zone, ical_token=_token()
        )
    )
    await _write_layers(session, schedule_id, data)
    return await get_schedule_row(session, schedule_id)


async def replace_schedule(
    session: AsyncSession, schedule_id: uuid.UUID, data: schemas.ScheduleCreate
) -> Row[Any]:
    """Replace a schedule's name, zone and layers."""
    await get_schedule_row(session, schedule_id)
    await session.execute(
        update(schedule)
        .where(schedule.c.id == schedule_id)
        .values(name=data.name, time_zone=data.time_zone)
    )
    await _write_layers(session, schedule_id, data)
    return await get_schedule_row(session, schedule_id)


async def delete_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> None:
    """Remove a schedule; refused (409) while a policy targets it."""
    await get_schedule_row(session, schedule_id)
    in_policy = await session.scalar(
        select(escalation_policy.c.id)
        .where(escalation_policy.c.levels.contains([{"target_id": str(schedule_id)}]))
        .limit(1)
    )
    if in_policy:
        raise Conflict("an escalation policy targets this schedule; change it first")
    await session.execute(delete(schedule).where(schedule.c.id == schedule_id))


async def create_override(
    session: AsyncSession, schedule_id: uuid.UUID, data: schemas.OverrideCreate
) -> Row[Any]:
    """Add an override; one overlapping another of the schedule is refused (422).

    The schedule row is locked first, so two overlapping overrides added at once
    cannot both pass the check.
    """
    await session.execute(
        select(schedule.c.id).where(schedule.c.id == schedule_id).with_for_update()
    )
    await get_schedule_row(session, schedule_id)
    await _require_people(session, {data.person_id}, "person_id")
    overlap = await session.scalar(
        select(schedule_override.c.id).where(
            schedule_override.c.schedule_id == schedule_id,
            schedule_override.c.starts_at < data.ends_at,
            schedule_override.c.ends_at > data.starts_at,
        )
    )
    if overlap is not None:
        raise Unprocessable("starts_at", f"overlaps override {overlap}")
    override_id = uuid.uuid4()
    await session.execute(
        insert(schedule_override).values(
            id=override_id,
            schedule_id=schedule_id,
            person_id=data.person_id,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
        )
    )
    return (
        await session.execute(
            select(schedule_override).where(schedule_override.c.id == override_id)
        )
    ).one()


async def delete_override(
    session: AsyncSession, schedule_id: uuid.UUID, override_id: uuid.UUID
) -> None:
    """Remove an override."""
    result = await session.execute(
        delete(schedule_override)
        .where(
            schedule_override.c.id == override_id, schedule_override.c.schedule_id == schedule_id
        )
        .returning(schedule_override.c.id)
    )
    if result.first() is None:
        raise NotFound(f"no override {override_id} on schedule {schedule_id}")

"""Schedules and people as stored: load a schedule for `notifier.rotation`, and answer who
a policy level reaches now."""

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.models import notification_rule, person, schedule, schedule_layer, schedule_override
from notifier.rotation import Layer, Override, Restriction, Schedule

SENDABLE_CHANNELS = frozenset({"email"})
"""Channels with a sender today; rules for other channels are kept and reported as not
sent until their sender exists."""


@dataclass(frozen=True)
class Contact:
    """A person as a notification needs them."""

    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    slack: str | None
    rules: tuple[tuple[str, int], ...]
    """(channel, delay_s), in order; an email at once if they set none."""

    def address(self, channel: str) -> str | None:
        """Their address on `channel`, if they have one."""
        return {
            "email": self.email,
            "sms": self.phone,
            "voice": self.phone,
            "slack": self.slack,
        }.get(channel)


def parse_restrictions(raw: list[dict[str, Any]]) -> tuple[Restriction, ...]:
    """Restrictions as stored (``{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}``)."""
    return tuple(
        Restriction(
            frozenset(r["days"]), time.fromisoformat(r["start"]), time.fromisoformat(r["end"])
        )
        for r in raw
    )


async def load_schedule(
    session: AsyncSession,
    schedule_id: uuid.UUID,
    *,
    overrides_from: datetime | None = None,
    overrides_until: datetime | None = None,
) -> Schedule | None:
    """The schedule with its layers and the overrides touching the given window (all if
    none is given), or None if there is no such schedule."""
    zone_name = await session.scalar(
        select(schedule.c.time_zone).where(schedule.c.id == schedule_id)
    )
    if zone_name is None:
        return None
    layers = (
        await session.execute(
            select(schedule_layer)
            .where(schedule_layer.c.schedule_id == schedule_id)
            .order_by(schedule_layer.c.position)
        )
    ).all()
    query = select(schedule_override).where(schedule_override.c.schedule_id == schedule_id)
    if overrides_until is not None:
        query = query.where(schedule_override.c.starts_at <= overrides_until)
    if overrides_from is not None:
        query = query.where(schedule_override.c.ends_at > overrides_from)
    overrides = (await session.execute(query.order_by(schedule_override.c.starts_at))).all()
    return Schedule(
        zone=ZoneInfo(zone_name),
        layers=tuple(
            Layer(
                rotation_start=row.rotation_start,
                shift_unit=row.shift_unit,
                shift_count=row.shift_count,
                members=tuple(row.members),
                restrictions=parse_restrictions(row.restrictions),
            )
            for row in layers
        ),
        overrides=tuple(Override(row.person_id, row.starts_at, row.ends_at) for row in overrides),
    )


_CONTACT = (
    select(person, notification_rule.c.channel, notification_rule.c.delay_s)
    .outerjoin(notification_rule, notification_rule.c.person_id == person.c.id)
    .where(person.c.id == bindparam("person_id"))
    .order_by(notification_rule.c.delay_s, notification_rule.c.id)
)
"""Built once, with a bound parameter (cheaper than building it per call)."""


async def contact(session: AsyncSession, person_id: uuid.UUID) -> Contact | None:
    """A person with their notification rules, or None."""
    rows = (await session.execute(_CONTACT, {"person_id": person_id})).all()
    if not rows:
        return None
    row = rows[0]
    rules = tuple((r.channel, r.delay_s) for r in rows if r.channel is not None)
    return Contact(row.id, row.name, row.email, row.phone, row.slack, rules or (("email", 0),))


async def target_person(
    session: AsyncSession, level: dict[str, Any], at: datetime
) -> Contact | None:
    """Whom a policy level reaches at `at`: its person, or its schedule's on-call."""
    target = uuid.UUID(level["target_id"])
    if level["target_type"] == "person":
        return await contact(session, target)
    loaded = await load_schedule(session, target, overrides_from=at, overrides_until=at)
    if loaded is None:
        return None
    who = loaded.oncall_at(at)
    return await contact(session, who) if who else None

"""Who is on call, over time: answers for ``/v1/oncall``, the iCal feeds and the warnings
(a schedule with a gap in the coming days, a person nobody can reach, products whose
outages would page nobody)."""

import uuid
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import directory, schemas, timeline
from notifier.models import escalation_policy, person, schedule, schedule_layer
from notifier.oncall import load_schedule
from notifier.rotation import Shift
from notifier.settings import Settings
from servicekit.catalogue import list_products
from servicekit.problems import NotFound

FEED_PAST = timedelta(days=7)
FEED_AHEAD = timedelta(days=60)


async def oncall(
    session: AsyncSession, settings: Settings, schedule_id: uuid.UUID, at: datetime
) -> schemas.OncallRead:
    """Who is on call on a schedule at `at`."""
    loaded = await load_schedule(session, schedule_id, overrides_from=at, overrides_until=at)
    if loaded is None:
        raise NotFound(f"no schedule {schedule_id}")
    who = loaded.oncall_at(at)
    read = None
    if who is not None:
        read = await directory.read_person(
            session, settings, await directory.get_person_row(session, who)
        )
    return schemas.OncallRead(schedule_id=schedule_id, at=at, person=read)


async def shifts(
    session: AsyncSession, schedule_id: uuid.UUID, start: datetime, end: datetime
) -> list[Shift]:
    """The schedule's shifts over [start, end)."""
    loaded = await load_schedule(session, schedule_id, overrides_from=start, overrides_until=end)
    if loaded is None:
        raise NotFound(f"no schedule {schedule_id}")
    return loaded.shifts(start, end)


async def names(session: AsyncSession) -> dict[uuid.UUID, str]:
    return {row.id: row.name for row in await session.execute(select(person.c.id, person.c.name))}


def _calendar(name: str, entries: list[tuple[str, Shift, str]]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Klaxon//on-call//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    for summary, shift, uid in entries:
        event = Event()
        event.add("uid", uid)
        event.add("summary", summary)
        event.add("dtstart", shift.starts_at)
        event.add("dtend", shift.ends_at)
        event.add("dtstamp", timeline.now())
        cal.add_component(event)
    feed: bytes = cal.to_ical()
    return feed


async def schedule_feed(session: AsyncSession, token: str) -> bytes:
    """The iCal feed of the schedule with this token: who is on call, shift by shift."""
    row = (await session.execute(select(schedule).where(schedule.c.ical_token == token))).first()
    if row is None:
        raise NotFound("no such feed")
    now = timeline.now()
    people = await names(session)
    entries = []
    for shift in await shifts(session, row.id, now - FEED_PAST, now + FEED_AHEAD):
        who = people.get(shift.person_id, "?") if shift.person_id else "Nobody on call"
        entries.append(
            (f"{row.name}: {who}", shift, f"{row.id}-{shift.starts_at.timestamp():.0f}@klaxon")
        )
    return _calendar(row.name, entries)


async def person_feed(session: AsyncSession, token: str) -> bytes:
    """The iCal feed of the person with this token: their shifts on every schedule."""
    row = (await session.execute(select(person).where(person.c.ical_token == token))).first()
    if row is None:
        raise NotFound("no such feed")
    now = timeline.now()
    entries = []
    for sched in await session.execute(select(schedule.c.id, schedule.c.name)):
        for shift in await shifts(session, sched.id, now - FEED_PAST, now + FEED_AHEAD):
            if shift.person_id == row.id:
                uid = f"{sched.id}-{row.id}-{shift.starts_at.timestamp():.0f}@klaxon"
                entries.append((f"On call: {sched.name}", shift, uid))
    return _calendar(f"{row.name}: on call", entries)


async def warnings(session: AsyncSession, settings: Settings) -> list[str]:
    """Gaps in every schedule over the next ``gap_warning_days``, and people in a schedule
    whom no notification can reach."""
    now = timeline.now()
    end = now + timedelta(days=settings.gap_warning_days)
    found: list[str] = []
    for sched in await session.execute(select(schedule.c.id, schedule.c.name)):
        for gap in [s for s in await shifts(session, sched.id, now, end) if s.person_id is None]:
            found.append(
                f"schedule {sched.name} has nobody on call from {gap.starts_at.isoformat()}"
                f" to {gap.ends_at.isoformat()}"
            )
    members = set()
    for row in await session.execute(select(schedule_layer.c.members)):
        members.update(row.members)
    for row in await session.execute(select(person).where(person.c.id.in_(members))):
        found.extend((await directory.read_person(session, settings, row)).warnings)
    found.extend(await _unpaged_products(session))
    return found


async def _unpaged_products(session: AsyncSession) -> list[str]:
    """Without a default escalation policy, an outage of a product with no policy of its
    own opens a page that notifies nobody."""
    policies = (await session.execute(select(escalation_policy.c.product_slug))).all()
    if not policies:
        return ["there is no escalation policy: an outage pages nobody"]
    if await session.scalar(select(escalation_policy.c.id).where(escalation_policy.c.is_default)):
        return []
    covered = {row.product_slug for row in policies}
    bare = [p.slug for p in await list_products(session) if p.slug not in covered]
    return [
        f"there is no default escalation policy: an outage of {slug} pages nobody" for slug in bare
    ]

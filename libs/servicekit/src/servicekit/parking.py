"""Parked outbox events and timers: counted, listed, and sent back to work.

An outbox event the broker refused ``relay_max_attempts`` times (`servicekit.outbox`)
and a timer whose handler failed ``timer_max_attempts`` times (`servicekit.timers`) are
parked: kept in their table with their attempts and last error, skipped by the relays
and timer workers, so they hold back nothing else. ``/health`` (figure ``parked``)
and ``klaxon_figure{figure="parked"}`` show how many there are, and
``klaxon_parkings_total`` counts each parking; ``python -m <service> parked list``
shows them and ``parked retry`` puts them back to work with a fresh count of
attempts, once what made them fail is fixed.
"""

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import create_engine, session_factory
from servicekit.outbox import notify_channel
from servicekit.settings import ServiceSettings
from servicekit.tables import outbox_event, timer


@dataclass(frozen=True)
class Parked:
    """One parked outbox event or timer."""

    what: str
    """``outbox`` or ``timer``."""
    id: uuid.UUID
    """The outbox row's event id, or the timer's id."""
    name: str
    """The event's routing key, or the timer's ``kind/key``."""
    attempts: int
    last_error: str | None
    parked_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The row as a JSON-ready mapping."""
        return {
            "what": self.what,
            "id": str(self.id),
            "name": self.name,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "parked_at": self.parked_at.isoformat(),
        }


async def parked_counts(session: AsyncSession) -> dict[str, int]:
    """How many outbox events and timers are parked: ``{"outbox": n, "timer": m}``.

    The ``parked`` figure of ``/health`` (`servicekit.sampler`), exported as
    ``klaxon_figure{figure="parked", field="outbox"|"timer"}``.
    """
    events, timers = (
        await session.execute(
            select(
                select(func.count())
                .select_from(outbox_event)
                .where(outbox_event.c.parked_at.is_not(None))
                .scalar_subquery(),
                select(func.count())
                .select_from(timer)
                .where(timer.c.parked_at.is_not(None))
                .scalar_subquery(),
            )
        )
    ).one()
    return {"outbox": int(events), "timer": int(timers)}


async def list_parked(session: AsyncSession) -> list[Parked]:
    """Every parked outbox event and timer, oldest parked first."""
    events = await session.execute(
        select(outbox_event).where(outbox_event.c.parked_at.is_not(None))
    )
    timers = await session.execute(select(timer).where(timer.c.parked_at.is_not(None)))
    parked = [
        Parked("outbox", row.event_id, row.routing_key, row.attempts, row.last_error, row.parked_at)
        for row in events
    ] + [
        Parked(
            "timer", row.id, f"{row.kind}/{row.key}", row.attempts, row.last_error, row.parked_at
        )
        for row in timers
    ]
    return sorted(parked, key=lambda p: (p.parked_at, p.what, str(p.id)))


async def retry_parked(
    session: AsyncSession, ids: Collection[uuid.UUID] | None = None
) -> list[Parked]:
    """Put parked rows back to work now, with no attempts counted; `ids` None means all.

    An outbox event goes back to the relay (woken at commit), a timer is due at once.
    `ids` are outbox event ids or timer ids; returns what was put back. Runs in the
    caller's transaction.
    """
    old_events = select(
        outbox_event.c.seq, outbox_event.c.attempts, outbox_event.c.parked_at
    ).where(outbox_event.c.parked_at.is_not(None))
    old_timers = select(timer.c.id, timer.c.attempts, timer.c.parked_at).where(
        timer.c.parked_at.is_not(None)
    )
    if ids is not None:
        old_events = old_events.where(outbox_event.c.event_id.in_(list(ids)))
        old_timers = old_timers.where(timer.c.id.in_(list(ids)))
    was_event = old_events.with_for_update().cte("was_event")
    was_timer = old_timers.with_for_update().cte("was_timer")
    events = (
        update(outbox_event)
        .where(outbox_event.c.seq == was_event.c.seq)
        .values(parked_at=None, retry_at=None, attempts=0)
        .returning(
            outbox_event.c.event_id,
            outbox_event.c.routing_key,
            was_event.c.attempts,
            outbox_event.c.last_error,
            was_event.c.parked_at,
        )
    )
    timers = (
        update(timer)
        .where(timer.c.id == was_timer.c.id)
        .values(parked_at=None, attempts=0, due_at=func.now())
        .returning(
            timer.c.id,
            timer.c.kind,
            timer.c.key,
            was_timer.c.attempts,
            timer.c.last_error,
            was_timer.c.parked_at,
        )
    )
    retried = [
        Parked("outbox", row.event_id, row.routing_key, row.attempts, row.last_error, row.parked_at)
        for row in await session.execute(events)
    ]
    if retried:
        schema = await session.scalar(text("SELECT current_schema()"))
        await session.execute(
            text("SELECT pg_notify(:channel, '')"), {"channel": notify_channel(str(schema))}
        )
    retried += [
        Parked(
            "timer", row.id, f"{row.kind}/{row.key}", row.attempts, row.last_error, row.parked_at
        )
        for row in await session.execute(timers)
    ]
    return retried


async def parked_command(
    settings: ServiceSettings, *, retry: bool, ids: Collection[uuid.UUID] | None
) -> list[Parked]:
    """What ``parked list`` (`retry` False) and ``parked retry`` do: list the parked rows,
    or put back those with `ids` (None: all) and commit; returns the rows concerned."""
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            if retry:
                return await retry_parked(session, ids)
            return await list_parked(session)
    finally:
        await engine.dispose()

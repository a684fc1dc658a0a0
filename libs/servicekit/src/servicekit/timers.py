"""Durable timers: rows with a ``due_at``, fired by any replica exactly when due.

Guarantee: a timer scheduled in a committed transaction fires at least once,
at or after its ``due_at``, even across restarts; a firing whose handler
commits deletes the timer in the same transaction, so it does not fire again.
A handler that raises is rolled back to a savepoint and the timer is retried
with exponential backoff. Replicas share due timers with ``SKIP LOCKED``.
Scheduling the same ``(kind, key)`` again moves the one timer; a handler may
reschedule its own timer (e.g. a repeating escalation) and it is kept.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit import metrics
from servicekit.reconnect import run_forever
from servicekit.settings import ServiceSettings
from servicekit.tables import timer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTimer:
    """A timer being fired."""

    id: uuid.UUID
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int


TimerHandler = Callable[[AsyncSession, DueTimer], Awaitable[None]]
"""``async def fire(session, timer)``: do the work, never commit."""


async def schedule(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Create the ``(kind, key)`` timer, or move it to `due_at` with `payload`."""
    values = {"kind": kind, "key": key, "due_at": due_at, "payload": dict(payload or {})}
    stmt = insert(timer).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[timer.c.kind, timer.c.key],
            set_={
                "due_at": due_at,
                "payload": stmt.excluded.payload,
                "attempts": 0,
                "last_error": None,
            },
        )
    )


async def cancel(session: AsyncSession, *, kind: str, key: str) -> bool:
    """Remove the ``(kind, key)`` timer; True if there was one."""
    result = await session.execute(
        delete(timer).where(timer.c.kind == kind, timer.c.key == key).returning(timer.c.id)
    )
    return result.first() is not None


class TimerWorker:
    """Fires due timers of the kinds it has handlers for."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, TimerHandler],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.handlers = dict(handlers)

    async def run(self) -> None:
        """Fire timers until cancelled; survive database outages."""
        await run_forever(self._poll, "timer worker", self.settings)

    async def _poll(self) -> None:
        while True:
            fired = await self.fire_due()
            if fired < self.settings.timer_batch_size:
                await asyncio.sleep(self.settings.timer_poll_interval_s)

    async def fire_due(self) -> int:
        """Fire up to one batch of due timers, each in its own transaction."""
        fired = 0
        while fired < self.settings.timer_batch_size and await self._fire_one():
            fired += 1
        return fired

    async def _fire_one(self) -> bool:
        async with self.sessions() as session, session.begin():
            row = (
                await session.execute(
                    select(timer)
                    .where(timer.c.due_at <= func.now(), timer.c.kind.in_(list(self.handlers)))
                    .order_by(timer.c.due_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return False
            due = DueTimer(row.id, row.kind, row.key, row.due_at, row.payload, row.attempts)
            try:
                async with session.begin_nested():
                    await self.handlers[due.kind](session, due)
            except Exception as exc:
                backoff_s = min(
                    self.settings.timer_retry_base_s * 2**due.attempts,
                    self.settings.timer_retry_max_s,
                )
                log.exception(
                    "timer %s/%s failed (attempt %d)", due.kind, due.key, due.attempts + 1
                )
                await session.execute(
                    update(timer)
                    .where(timer.c.id == due.id)
                    .values(
                        attempts=timer.c.attempts + 1,
                        due_at=func.now() + timedelta(seconds=backoff_s),
                        last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    )
                )
                metrics.TIMERS_FIRED.labels(self.settings.service_name, due.kind, "failed").inc()
                return True
            await session.execute(
                delete(timer).where(and_(timer.c.id == due.id, timer.c.due_at == due.due_at))
            )
        metrics.TIMERS_FIRED.labels(self.settings.service_name, due.kind, "done").inc()
        return True

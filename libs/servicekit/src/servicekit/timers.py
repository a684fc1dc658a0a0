"""Durable timers: rows with a ``due_at``, fired by any replica exactly when due.

Guarantee: a timer scheduled in a committed transaction fires at least once,
at or after its ``due_at``, even across restarts; a firing whose handler
commits deletes the timer in the same transaction, so it does not fire again.
A handler that raises is rolled back to a savepoint and the timer is retried
with exponential backoff capped at ``timer_retry_max_s``, its attempts and last
error recorded. If that record cannot be written, the timer is still pushed back
in a fresh transaction (where another replica may fire it once more first), so a
timer that keeps failing never holds back the timers due after it.
Replicas share due timers with ``SKIP LOCKED``.
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

_MAX_BACKOFF_EXPONENT = 64
"""Doubling further changes no delay under any sane cap, and ``2**1024`` overflows a float."""

_MAX_ERROR_CHARS = 2000
"""Enough to diagnose a failure without letting one huge message bloat the timer row."""


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


def _retry_delay(settings: ServiceSettings, attempts: int) -> timedelta:
    """``min(base * 2**attempts, max)``, finite however many attempts have failed."""
    exponent = min(max(attempts, 0), _MAX_BACKOFF_EXPONENT)
    return timedelta(
        seconds=min(settings.timer_retry_base_s * 2**exponent, settings.timer_retry_max_s)
    )


def _error_text(exc: BaseException) -> str:
    """`exc` as text Postgres can store: no NUL, valid UTF-8, bounded length.

    Handler errors often quote what a provider sent back, which may hold anything.
    """
    try:
        message = f"{type(exc).__name__}: {exc}"
    except Exception:
        message = type(exc).__name__
    message = message.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return message[:_MAX_ERROR_CHARS]


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
        failed: DueTimer | None = None
        try:
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
                    failed = due
                    await self._record_failure(session, due, exc)
                else:
                    await session.execute(
                        delete(timer).where(
                            and_(timer.c.id == due.id, timer.c.due_at == due.due_at)
                        )
                    )
        except Exception:
            if failed is None:
                raise
            log.exception(
                "could not record the failure of timer %s/%s; pushing it back without it",
                failed.kind,
                failed.key,
            )
            await self._push_back(failed)
        outcome = "done" if failed is None else "failed"
        metrics.TIMERS_FIRED.labels(self.settings.service_name, due.kind, outcome).inc()
        return True

    async def _record_failure(self, session: AsyncSession, due: DueTimer, exc: Exception) -> None:
        """Log the failure and schedule the retry, keeping the error for diagnosis."""
        log.exception("timer %s/%s failed (attempt %d)", due.kind, due.key, due.attempts + 1)
        await session.execute(
            update(timer)
            .where(timer.c.id == due.id)
            .values(
                attempts=timer.c.attempts + 1,
                due_at=func.now() + _retry_delay(self.settings, due.attempts),
                last_error=_error_text(exc),
            )
        )

    async def _push_back(self, due: DueTimer) -> None:
        """Retry `due` later, recording only what cannot fail on a handler's error.

        Runs in a fresh transaction because the one that fired `due` is lost.
        Without it the timer would stay the oldest due one and be fired again on
        every poll, ahead of everything due after it. It leaves the timer alone if
        it has since been moved or fired.
        """
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(timer)
                .where(timer.c.id == due.id, timer.c.due_at == due.due_at)
                .values(
                    attempts=timer.c.attempts + 1,
                    due_at=func.now() + _retry_delay(self.settings, due.attempts),
                )
            )

"""bench/pipeline.py's timer figures: timers due at once fired by one `TimerWorker`, and
as many bare transactions beside them.

Both run on the bench schema's ``timer`` and ``timer_effect`` tables.
"""

import asyncio
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import create_engine, session_factory
from servicekit.settings import ServiceSettings
from servicekit.timers import DueTimer, TimerWorker

TIMERS = 10_000


async def _timer_effect(session: AsyncSession, due: DueTimer) -> None:
    """The benchmark's timer handler: one row written in the firing's transaction."""
    await session.execute(text("INSERT INTO timer_effect (timer_id) VALUES (:id)"), {"id": due.id})


async def fire_timers(settings: ServiceSettings, n: int = TIMERS) -> float:
    """Seconds one timer worker takes to fire `n` timers that are all due at once."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO timer (kind, key, due_at)"
                    " SELECT 'bench', g::text, now() FROM generate_series(1, :n) AS g"
                ),
                {"n": n},
            )
        worker = TimerWorker(settings, session_factory(engine), {"bench": _timer_effect})
        started = time.monotonic()
        firing = asyncio.create_task(worker.run())
        try:
            while True:
                async with engine.connect() as conn:
                    if not await conn.scalar(text("SELECT count(*) FROM timer")):
                        break
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
        finally:
            firing.cancel()
            await asyncio.gather(firing, return_exceptions=True)
        async with engine.connect() as conn:
            fired = await conn.scalar(text("SELECT count(*) FROM timer_effect"))
        assert fired == n, f"{fired} of {n} timers left their row"
        return elapsed
    finally:
        await engine.dispose()


async def bare_transactions(settings: ServiceSettings, n: int = TIMERS) -> float:
    """Seconds `n` transactions take that each write a row and delete it, committed on
    ``timer_concurrency`` connections at once: the timer figure's baseline."""
    engine = create_engine(settings)
    sessions = session_factory(engine)
    pending = iter(range(n))

    async def worker() -> None:
        for _ in pending:
            row = {"id": uuid.uuid4()}
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO timer_effect (timer_id) VALUES (:id)"), row)
                await session.execute(text("DELETE FROM timer_effect WHERE timer_id = :id"), row)

    try:
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(settings.timer_concurrency)))
        return time.monotonic() - started
    finally:
        await engine.dispose()

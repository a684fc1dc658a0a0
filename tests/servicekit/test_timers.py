"""Timers fire once when due, survive restarts, retry with backoff, and share work."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.runtime import Runtime
from servicekit.tables import timer
from servicekit.timers import DueTimer, TimerWorker, cancel, schedule
from tests.harness import Throwaway, eventually
from tests.servicekit.helpers import prepared, running


async def _note(session: AsyncSession, due: DueTimer) -> None:
    await session.execute(
        text("INSERT INTO effect (event_id, note) VALUES (gen_random_uuid(), :note)"),
        {"note": f"{due.kind}:{due.key}"},
    )


async def _notes(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.scalars(text("SELECT note FROM effect ORDER BY id"))).all())


async def test_timer_fires_once_when_due_and_not_before(env: Throwaway) -> None:
    settings = await prepared(env)
    async with running(settings, timer_handlers={"deadline": _note}) as runtime:
        now = datetime.now(UTC)
        async with runtime.sessions() as session, session.begin():
            await schedule(
                session, kind="deadline", key="soon", due_at=now + timedelta(seconds=1.5)
            )
            await schedule(session, kind="deadline", key="later", due_at=now + timedelta(hours=1))
            await schedule(session, kind="deadline", key="cancelled", due_at=now)
            assert await cancel(session, kind="deadline", key="cancelled")
        assert await _notes(runtime) == []
        await eventually(lambda: _has(runtime, "deadline:soon"))
        await asyncio.sleep(0.3)
        assert await _notes(runtime) == ["deadline:soon"]
        async with runtime.sessions() as session:
            keys = (await session.scalars(select(timer.c.key))).all()
        assert keys == ["later"]


async def test_timer_scheduled_before_a_restart_fires_after_it(env: Throwaway) -> None:
    settings = await prepared(env)
    async with running(settings) as runtime, runtime.sessions() as session, session.begin():
        await schedule(session, kind="deadline", key="k", due_at=datetime.now(UTC))
    async with running(settings, timer_handlers={"deadline": _note}) as restarted:
        await eventually(lambda: _has(restarted, "deadline:k"))


async def test_failing_timer_is_retried_with_backoff_and_rolled_back(env: Throwaway) -> None:
    settings = await prepared(env, timer_retry_base_s=0.2)
    calls: list[int] = []

    async def flaky(session: AsyncSession, due: DueTimer) -> None:
        calls.append(due.attempts)
        await _note(session, due)
        if len(calls) < 3:
            raise RuntimeError("provider down")

    async with running(settings, timer_handlers={"retry": flaky}) as runtime:
        async with runtime.sessions() as session, session.begin():
            await schedule(session, kind="retry", key="k", due_at=datetime.now(UTC))
        await eventually(lambda: len(calls) >= 3)
        await eventually(lambda: _has(runtime, "retry:k"))
        assert calls == [0, 1, 2]
        assert await _notes(runtime) == ["retry:k"]  # failed attempts left nothing behind


async def test_handler_may_reschedule_its_own_timer(env: Throwaway) -> None:
    settings = await prepared(env)
    fired: list[str] = []

    async def repeat(session: AsyncSession, due: DueTimer) -> None:
        fired.append(due.key)
        if len(fired) < 3:
            await schedule(session, kind="repeat", key=due.key, due_at=datetime.now(UTC))

    async with running(settings, timer_handlers={"repeat": repeat}) as runtime:
        async with runtime.sessions() as session, session.begin():
            await schedule(session, kind="repeat", key="page-1", due_at=datetime.now(UTC))
        await eventually(lambda: len(fired) >= 3)
        await asyncio.sleep(0.2)
        assert fired == ["page-1"] * 3


async def test_two_workers_fire_each_timer_once(env: Throwaway) -> None:
    settings = await prepared(env, timers_enabled=False)
    async with running(settings) as runtime:
        async with runtime.sessions() as session, session.begin():
            for i in range(200):
                await schedule(session, kind="deadline", key=str(i), due_at=datetime.now(UTC))
        workers = [TimerWorker(settings, runtime.sessions, {"deadline": _note}) for _ in range(2)]
        await asyncio.gather(*(_drain(worker) for worker in workers))
        notes = await _notes(runtime)
        assert sorted(notes) == sorted(f"deadline:{i}" for i in range(200))


async def _drain(worker: TimerWorker) -> None:
    while await worker.fire_due():
        pass


async def _has(runtime: Runtime, note: str) -> bool:
    return note in await _notes(runtime)

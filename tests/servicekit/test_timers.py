"""Timers fire once when due, survive restarts, retry with backoff, and share work."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.runtime import Runtime
from servicekit.tables import timer
from servicekit.timers import DueTimer, TimerHandler, TimerWorker, cancel, schedule
from tests.harness import Throwaway, eventually
from tests.servicekit.helpers import prepared, running


async def _note(session: AsyncSession, due: DueTimer) -> None:
    await session.execute(
        text("INSERT INTO effect (event_id, note) VALUES (gen_random_uuid(), :note)"),
        {"note": f"{due.kind}:{due.key}"},
    )


def _failing(calls: list[int], message: str) -> TimerHandler:
    """A handler that records each attempt it is given and always raises `message`."""

    async def handler(session: AsyncSession, due: DueTimer) -> None:
        calls.append(due.attempts)
        raise RuntimeError(message)

    return handler


async def _notes(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.scalars(text("SELECT note FROM effect ORDER BY id"))).all())


async def test_timer_fires_once_when_due_and_not_before(env: Throwaway) -> None:
    settings = await prepared(env)
    fired_at: list[datetime] = []

    async def deadline(session: AsyncSession, due: DueTimer) -> None:
        fired_at.append((await session.execute(select(func.now()))).scalar_one())
        await _note(session, due)

    async with running(settings, timer_handlers={"deadline": deadline}) as runtime:
        due_at = datetime.now(UTC) + timedelta(seconds=1)
        async with runtime.sessions() as session, session.begin():
            await schedule(session, kind="deadline", key="soon", due_at=due_at)
            await schedule(
                session, kind="deadline", key="later", due_at=due_at + timedelta(hours=1)
            )
            await schedule(session, kind="deadline", key="cancelled", due_at=due_at)
            assert await cancel(session, kind="deadline", key="cancelled")
        await asyncio.sleep((due_at - timedelta(seconds=0.3) - datetime.now(UTC)).total_seconds())
        assert await _notes(runtime) == []  # many polls in, shortly before it is due
        await eventually(lambda: _has(runtime, "deadline:soon"))
        assert fired_at[0] >= due_at  # by the database's clock, which decides
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


async def test_failure_with_a_nul_in_its_message_is_recorded_and_blocks_nothing(
    env: Throwaway,
) -> None:
    settings = await prepared(env, timer_retry_base_s=60.0)
    calls: list[int] = []
    garbled = _failing(calls, "provider said: \x00\x01 garbage")

    async with running(settings, timer_handlers={"retry": garbled, "deadline": _note}) as runtime:
        started = await _failing_timer_then_deadline(runtime)
        await eventually(lambda: _has(runtime, "deadline:30-min"))
        failed = await _pushed_back(runtime, "webhook-1")
    assert calls == [0]
    assert failed.attempts == 1
    assert failed.due_at > started + timedelta(seconds=59)
    assert failed.last_error == "RuntimeError: provider said: \x01 garbage"


async def test_timer_failing_for_thousands_of_attempts_waits_the_max_backoff(
    env: Throwaway,
) -> None:
    settings = await prepared(
        env, timer_retry_base_s=5.0, timer_retry_max_s=120.0, timer_max_attempts=10_000
    )
    calls: list[int] = []
    down = _failing(calls, "subscriber webhook still down")

    async with running(settings, timer_handlers={"retry": down, "deadline": _note}) as runtime:
        started = await _failing_timer_then_deadline(runtime, attempts=5000)
        await eventually(lambda: _has(runtime, "deadline:30-min"))
        failed = await _pushed_back(runtime, "webhook-1", attempts_before=5000)
        finished = datetime.now(UTC)
    assert calls == [5000]
    assert failed.attempts == 5001
    assert failed.parked_at is None
    assert started + timedelta(seconds=119) < failed.due_at < finished + timedelta(seconds=121)


async def test_timer_whose_failure_cannot_be_recorded_is_still_pushed_back(
    env: Throwaway,
) -> None:
    settings = await prepared(env, timer_retry_base_s=60.0)
    calls: list[int] = []
    down = _failing(calls, "provider down")

    async with running(settings, timer_handlers={"retry": down, "deadline": _note}) as runtime:
        async with runtime.sessions() as session, session.begin():
            await session.execute(text(_REJECT_LAST_ERROR))
            await session.execute(
                text(
                    "CREATE TRIGGER reject_last_error BEFORE UPDATE ON timer"
                    " FOR EACH ROW EXECUTE FUNCTION reject_last_error()"
                )
            )
        started = await _failing_timer_then_deadline(runtime)
        await eventually(lambda: _has(runtime, "deadline:30-min"))
        failed = await _pushed_back(runtime, "webhook-1")
    assert calls == [0]
    assert failed.attempts == 1
    assert failed.due_at > started + timedelta(seconds=59)
    assert failed.last_error is None


_REJECT_LAST_ERROR = """
CREATE FUNCTION reject_last_error() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_error IS NOT NULL THEN
        RAISE EXCEPTION 'last_error cannot be stored';
    END IF;
    RETURN NEW;
END $$
"""
"""Makes recording any timer failure fail, whatever the error says."""


async def _failing_timer_then_deadline(runtime: Runtime, *, attempts: int = 0) -> datetime:
    """Schedule a retry timer due just before a deadline timer, so it is claimed first."""
    started = datetime.now(UTC)
    async with runtime.sessions() as session, session.begin():
        await schedule(
            session, kind="retry", key="webhook-1", due_at=started - timedelta(seconds=1)
        )
        await session.execute(
            update(timer).where(timer.c.key == "webhook-1").values(attempts=attempts)
        )
        await schedule(session, kind="deadline", key="30-min", due_at=started)
    return started


async def _timer_row(runtime: Runtime, key: str) -> Row[Any]:
    async with runtime.sessions() as session:
        return (await session.execute(select(timer).where(timer.c.key == key))).one()


async def _pushed_back(runtime: Runtime, key: str, *, attempts_before: int = 0) -> Row[Any]:
    """The timer's row once its failed attempt has been counted (the worker fires the
    deadline beside it, so that may finish first)."""
    rows: list[Row[Any]] = []

    async def counted() -> bool:
        rows.append(await _timer_row(runtime, key))
        return bool(rows[-1].attempts > attempts_before)

    await eventually(counted)
    return rows[-1]


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


async def test_two_workers_share_the_timers_and_fire_each_once(env: Throwaway) -> None:
    settings = await prepared(env, timers_enabled=False, timer_concurrency=4)
    fired_by: list[list[str]] = [[], []]

    def recording(worker: int) -> TimerHandler:
        async def handler(session: AsyncSession, due: DueTimer) -> None:
            fired_by[worker].append(due.key)
            await asyncio.sleep(0.005)  # a handler takes a moment: the other worker claims too
            await _note(session, due)

        return handler

    async with running(settings) as runtime:
        async with runtime.sessions() as session, session.begin():
            for i in range(200):
                await schedule(session, kind="deadline", key=str(i), due_at=datetime.now(UTC))
        workers = [
            TimerWorker(settings, runtime.sessions, {"deadline": recording(i)}) for i in range(2)
        ]
        await asyncio.gather(*(_drain(worker) for worker in workers))
        notes = await _notes(runtime)
        assert sorted(notes) == sorted(f"deadline:{i}" for i in range(200))
    assert fired_by[0]
    assert fired_by[1]
    assert sorted(fired_by[0] + fired_by[1]) == sorted(str(i) for i in range(200))


async def _drain(worker: TimerWorker) -> None:
    while await worker.fire_due():
        pass


async def _has(runtime: Runtime, note: str) -> bool:
    return note in await _notes(runtime)

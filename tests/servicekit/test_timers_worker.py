"""The timer worker fires many timers at once; a hung, slow or failing handler holds back
no other timer, and a worker that dies leaves its timers to others once its lease ends."""

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.db import asyncpg_dsn
from servicekit.parking import parked_counts, retry_parked
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from servicekit.tables import timer
from servicekit.timers import DueTimer, TimerWorker, schedule
from tests.harness import ADMIN_URL, Throwaway, eventually
from tests.servicekit.helpers import prepared, running

ROOT = Path(__file__).resolve().parents[2]


async def _note(session: AsyncSession, due: DueTimer) -> None:
    await session.execute(
        text("INSERT INTO effect (event_id, note) VALUES (gen_random_uuid(), :note)"),
        {"note": f"{due.kind}:{due.key}"},
    )


async def _notes(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.scalars(text("SELECT note FROM effect ORDER BY id"))).all())


async def _schedule_now(runtime: Runtime, kind: str, keys: list[str], *, ago_s: float = 0) -> None:
    due_at = datetime.now(UTC) - timedelta(seconds=ago_s)
    async with runtime.sessions() as session, session.begin():
        for key in keys:
            await schedule(session, kind=kind, key=key, due_at=due_at)


async def _idle_in_transaction(database_url: str) -> list[str]:
    """Application names of this database's connections idle inside a transaction for over
    a second (a moment between two statements of a transaction is not what is looked for)."""
    admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        database = database_url.rsplit("/", 1)[1]
        rows = await admin.fetch(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = $1 AND state LIKE 'idle in transaction%'"
            " AND state_change < now() - interval '1 second'",
            database,
        )
    finally:
        await admin.close()
    return [row["application_name"] for row in rows]


async def test_a_hung_handler_neither_stops_other_timers_nor_pins_a_connection(
    env: Throwaway,
) -> None:
    settings = await prepared(env, timer_handler_timeout_s=20.0, timer_lease_s=30.0)
    hung = asyncio.Event()
    release = asyncio.Event()

    async def hang(session: AsyncSession, due: DueTimer) -> None:
        hung.set()
        await release.wait()  # e.g. a provider that never answers

    handlers = {"hang": hang, "deadline": _note}
    async with running(settings, timer_handlers=handlers) as runtime:
        try:
            await _schedule_now(runtime, "hang", ["webhook"], ago_s=1)  # claimed first
            await hung.wait()
            await _schedule_now(runtime, "deadline", [f"page-{i}" for i in range(5)])
            await eventually(lambda: _count(runtime, 5))
            await asyncio.sleep(1.5)  # the handler has hung for well over a second
            # The hung handler's timer is leased (committed), not locked by an open transaction.
            assert await _idle_in_transaction(settings.database_url) == []
        finally:
            release.set()


async def _count(runtime: Runtime, n: int) -> bool:
    return len(await _notes(runtime)) >= n


async def test_many_timers_fire_concurrently(env: Throwaway) -> None:
    settings = await prepared(env, timer_concurrency=5)
    running_now = 0
    most = 0

    async def slow(session: AsyncSession, due: DueTimer) -> None:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        try:
            await asyncio.sleep(0.2)
            await _note(session, due)
        finally:
            running_now -= 1

    async with running(settings, timer_handlers={"slow": slow}) as runtime:
        await _schedule_now(runtime, "slow", [str(i) for i in range(20)])
        await eventually(lambda: _count(runtime, 20))
        await asyncio.sleep(0.3)
        assert sorted(await _notes(runtime)) == sorted(f"slow:{i}" for i in range(20))
    assert most == 5


async def test_a_handler_past_its_timeout_is_cancelled_and_retried(env: Throwaway) -> None:
    settings = await prepared(
        env, timer_handler_timeout_s=0.3, timer_lease_s=1.0, timer_retry_base_s=0.1
    )
    calls: list[int] = []
    cancelled: list[int] = []

    async def stuck_once(session: AsyncSession, due: DueTimer) -> None:
        calls.append(due.attempts)
        await _note(session, due)
        if len(calls) == 1:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(due.attempts)
                raise

    async with running(settings, timer_handlers={"stuck": stuck_once}) as runtime:
        await _schedule_now(runtime, "stuck", ["k"])
        await eventually(lambda: len(calls) >= 2)
        await eventually(lambda: _timer_gone(runtime, "k"))
        assert calls == [0, 1]  # the timed-out attempt was counted
        assert cancelled == [0]
        assert await _notes(runtime) == ["stuck:k"]  # the cut-off attempt was rolled back


async def test_a_handlers_own_timeout_error_is_recorded_as_its_error(env: Throwaway) -> None:
    """A TimeoutError the handler raises itself (a provider that timed out) is not the
    worker's deadline: the timer keeps the handler's own error for diagnosis."""
    settings = await prepared(env, timer_handler_timeout_s=5.0, timer_retry_base_s=30.0)

    async def provider_timed_out(session: AsyncSession, due: DueTimer) -> None:
        raise TimeoutError("the SMS provider did not answer within 10 s")

    async with running(settings, timer_handlers={"sms": provider_timed_out}) as runtime:
        await _schedule_now(runtime, "sms", ["k"])

        async def recorded() -> str | None:
            async with runtime.sessions() as session:
                return await session.scalar(select(timer.c.last_error))

        await eventually(recorded)
        assert await recorded() == "TimeoutError: the SMS provider did not answer within 10 s"


async def _timer_gone(runtime: Runtime, key: str) -> bool:
    async with runtime.sessions() as session:
        return not (await session.scalars(select(timer.c.id).where(timer.c.key == key))).all()


async def test_a_timer_failing_max_attempts_times_is_parked_until_retried(
    env: Throwaway,
) -> None:
    settings = await prepared(env, timer_max_attempts=3, timer_retry_base_s=0.05)
    calls: list[int] = []

    async def broken(session: AsyncSession, due: DueTimer) -> None:
        calls.append(due.attempts)
        if len(calls) <= 3:
            raise RuntimeError("escalation policy missing")
        await _note(session, due)

    handlers = {"broken": broken, "deadline": _note}
    async with running(settings, timer_handlers=handlers) as runtime:
        await _schedule_now(runtime, "broken", ["policy-1"])
        await eventually(lambda: len(calls) >= 3)
        await asyncio.sleep(0.5)  # well past the next backoff: a parked timer is not claimed
        assert calls == [0, 1, 2]
        async with runtime.sessions() as session:
            row = (await session.execute(select(timer))).one()
            assert await parked_counts(session) == {"outbox": 0, "timer": 1}
        assert row.parked_at is not None
        assert row.attempts == 3
        assert row.last_error == "RuntimeError: escalation policy missing"

        await _schedule_now(runtime, "deadline", ["after"])  # nothing else is held back
        await eventually(lambda: _count(runtime, 1))

        async with runtime.sessions() as session, session.begin():
            retried = await retry_parked(session, [row.id])
        assert [(p.what, p.name, p.attempts) for p in retried] == [("timer", "broken/policy-1", 3)]
        await eventually(lambda: _timer_gone(runtime, "policy-1"))
        assert calls == [0, 1, 2, 0]
        assert sorted(await _notes(runtime)) == ["broken:policy-1", "deadline:after"]


async def test_a_killed_workers_timers_fire_once_its_lease_ends(env: Throwaway) -> None:
    settings = await prepared(
        env, timer_lease_s=3.0, timer_handler_timeout_s=2.5, timer_concurrency=4
    )
    keys = [f"escalate-{i}" for i in range(4)]
    async with running(settings) as runtime:
        await _schedule_now(runtime, "deadline", keys)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.servicekit.timer_worker",
        settings.model_dump_json(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        for _ in keys:  # each handler says when it started, then hangs
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=30)
            assert line.startswith(b"firing ")
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    fired_at: list[datetime] = []

    async def deadline(session: AsyncSession, due: DueTimer) -> None:
        fired_at.append((await session.execute(select(func.now()))).scalar_one())
        await _note(session, due)

    async with running(settings, timer_handlers={"deadline": deadline}) as restarted:
        async with restarted.sessions() as session:
            leases = (await session.scalars(select(timer.c.due_at))).all()
        assert len(leases) == len(keys)
        await eventually(lambda: _count(restarted, len(keys)), timeout_s=15)
        await asyncio.sleep(0.3)
        assert sorted(await _notes(restarted)) == sorted(f"deadline:{k}" for k in keys)
    assert min(fired_at) >= max(leases)  # not before the dead worker's lease ran out


def test_a_lease_no_longer_than_the_handler_timeout_is_refused() -> None:
    settings = ServiceSettings(timer_lease_s=10.0, timer_handler_timeout_s=10.0)
    with pytest.raises(ValueError, match="timer_lease_s"):
        TimerWorker(settings, async_sessionmaker(), {"deadline": _note})


async def test_a_handler_is_given_its_timers_payload_and_due_time(env: Throwaway) -> None:
    settings = await prepared(env)
    given: list[DueTimer] = []

    async def remember(session: AsyncSession, due: DueTimer) -> None:
        given.append(due)

    due_at = datetime.now(UTC) - timedelta(seconds=1)
    async with running(settings, timer_handlers={"escalate": remember}) as runtime:
        async with runtime.sessions() as session, session.begin():
            await schedule(
                session, kind="escalate", key="page-7", due_at=due_at, payload={"level": 2}
            )
        await eventually(lambda: _timer_gone(runtime, "page-7"))
    assert [(d.kind, d.key, d.payload, d.due_at, d.attempts) for d in given] == [
        ("escalate", "page-7", {"level": 2}, due_at, 0)
    ]


async def test_a_stopping_worker_hands_back_the_timers_it_had_not_started(
    env: Throwaway,
) -> None:
    settings = await prepared(env, timer_concurrency=1)
    hung = asyncio.Event()

    async def hang(session: AsyncSession, due: DueTimer) -> None:
        hung.set()
        await asyncio.Event().wait()

    async with running(settings, timer_handlers={"hang": hang}) as runtime:
        await _schedule_now(runtime, "hang", ["a", "b", "c"], ago_s=1)
        await hung.wait()
        await asyncio.sleep(0.2)  # the other two are claimed, waiting for the one slot
        async with runtime.sessions() as session:
            leased = await session.scalar(
                select(func.count()).select_from(timer).where(timer.c.due_at > func.now())
            )
        assert leased == 3
    async with running(settings) as stopped, stopped.sessions() as session:
        due_now = await session.scalar(
            select(func.count()).select_from(timer).where(timer.c.due_at <= func.now())
        )
    assert due_now == 2  # due again at once; the one cut off mid-handler waits out its lease

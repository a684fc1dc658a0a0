"""The maintenance loop: every prune runs each round, in batches; one failing holds up no
other. The inbox forgets ids past their retention. A loop that will not stop does not hold
up shutdown."""

import asyncio
import contextlib
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.inbox import prune_inbox
from servicekit.runtime import PRUNE_BATCH, STOP_TIMEOUT_S, Prune, Runtime
from tests.harness import Throwaway, eventually
from tests.servicekit.helpers import prepared


async def test_a_failing_prune_holds_up_no_other(env: Throwaway) -> None:
    settings = await prepared(env, maintenance_interval_s=0.1, relay_enabled=False)
    calls: list[str] = []

    async def broken(session: AsyncSession, limit: int) -> int:
        calls.append("broken")
        raise RuntimeError("this prune always fails")

    async def kept(session: AsyncSession, limit: int) -> int:
        calls.append("kept")
        return 0

    runtime = Runtime(settings, prunes={"broken things": broken, "kept things": kept})
    await runtime.start()
    try:
        await eventually(lambda: calls.count("kept") >= 3)
        # Each round tries both, in order: the failure is left for the next round.
        assert calls[:4] == ["broken", "kept", "broken", "kept"]
    finally:
        await runtime.stop()


async def _received(runtime: Runtime, rows: int, age: str) -> None:
    """Add `rows` handled event ids to the inbox, received `age` ago."""
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO inbox_event (event_id, event_type, received_at)"
                " SELECT gen_random_uuid(), CAST(:age AS text), now() - CAST(:age AS text)::interval"
                " FROM generate_series(1, :n)"
            ),
            {"n": rows, "age": age},
        )


async def _left(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.scalars(text("SELECT event_type FROM inbox_event"))).all())


async def test_inbox_forgets_only_ids_older_than_the_retention(env: Throwaway) -> None:
    settings = await prepared(env)
    runtime = Runtime(settings)  # not started: its own maintenance loop would prune first
    try:
        await _received(runtime, 1, "8 days")
        await _received(runtime, 1, "1 day")
        async with runtime.sessions() as session, session.begin():
            assert await prune_inbox(session, 10, older_than_s=7 * 24 * 3600) == 1
        assert await _left(runtime) == ["1 day"]
    finally:
        await runtime.stop()


async def test_a_prune_runs_in_batches_until_one_comes_back_short(env: Throwaway) -> None:
    settings = await prepared(env, relay_enabled=False)
    runtime = Runtime(settings)
    old = 2 * PRUNE_BATCH + 7
    try:
        await _received(runtime, old, "30 days")
        await _received(runtime, 1, "1 second")
        batches: list[int] = []
        inbox = runtime.prunes["inbox rows"]

        async def counted(session: AsyncSession, limit: int) -> int:
            batches.append(await inbox(session, limit))
            return batches[-1]

        prune: Prune = counted
        assert await runtime.prune("inbox rows", prune) == old
        assert batches == [PRUNE_BATCH, PRUNE_BATCH, 7]
        assert await _left(runtime) == ["1 second"]
    finally:
        await runtime.stop()


async def test_stop_leaves_a_loop_that_will_not_stop_behind_and_says_where(
    env: Throwaway, caplog: pytest.LogCaptureFixture
) -> None:
    """A prune that ignores cancellation holds up shutdown only `STOP_TIMEOUT_S`."""
    settings = await prepared(env)
    started, release = asyncio.Event(), asyncio.Event()

    async def stubborn(session: AsyncSession, limit: int) -> int:
        started.set()
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return 0

    runtime = Runtime(settings, prunes={"stubborn things": stubborn})
    await runtime.start()
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
        began = time.monotonic()
        await asyncio.wait_for(runtime.stop(), timeout=STOP_TIMEOUT_S + 5)
        took = time.monotonic() - began
        assert STOP_TIMEOUT_S <= took < STOP_TIMEOUT_S + 2
        [record] = [r for r in caplog.records if "did not stop" in r.getMessage()]
        assert "maintenance" in record.getMessage()
        assert "in stubborn" in record.getMessage()
    finally:
        release.set()

"""The maintenance loop: every prune runs each round, in batches; one failing holds up no
other."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.runtime import PRUNE_BATCH, Prune, Runtime
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


async def test_a_prune_runs_in_batches_until_one_comes_back_short(env: Throwaway) -> None:
    settings = await prepared(env, relay_enabled=False)
    runtime = Runtime(settings)  # not started: its own maintenance loop would prune first
    old = 2 * PRUNE_BATCH + 7
    try:
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO inbox_event (event_id, event_type, received_at)"
                    " SELECT gen_random_uuid(), 'old', now() - interval '30 days'"
                    " FROM generate_series(1, :n)"
                ),
                {"n": old},
            )
            await session.execute(
                text("INSERT INTO inbox_event VALUES (gen_random_uuid(), 'new', now())")
            )
        batches: list[int] = []
        inbox = runtime.prunes["inbox rows"]

        async def counted(session: AsyncSession, limit: int) -> int:
            batches.append(await inbox(session, limit))
            return batches[-1]

        prune: Prune = counted
        assert await runtime.prune("inbox rows", prune) == old
        assert batches == [PRUNE_BATCH, PRUNE_BATCH, 7]
        async with runtime.sessions() as session:
            left = (await session.scalars(text("SELECT event_type FROM inbox_event"))).all()
        assert left == ["new"]
    finally:
        await runtime.stop()

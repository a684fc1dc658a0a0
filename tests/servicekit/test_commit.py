"""A route's commit (`servicekit.deps.commit`) against the real Postgres: a connection lost
before COMMIT is an outage (nothing saved), never an uncertain save."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.db import asyncpg_dsn, create_engine, is_transient, session_factory
from servicekit.deps import commit
from servicekit.tables import api_key
from tests.harness import Throwaway
from tests.servicekit.helpers import prepared


@pytest.fixture
async def engine(env: Throwaway) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await prepared(env, db_pool_size=1, db_max_overflow=0))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT name FROM api_key ORDER BY name"))).all())


async def _terminate_and_wait(engine: AsyncEngine, conn: asyncpg.Connection) -> None:
    """End `conn`'s backend from another session, as an admin or a restart would, and wait
    until the driver has seen its connection close."""
    other = await asyncpg.connect(asyncpg_dsn(engine.url.render_as_string(hide_password=False)))
    try:
        await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    finally:
        await other.close()
    for _ in range(100):
        if conn.is_closed():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the driver never saw its connection close")


async def test_a_session_lost_before_commit_is_not_an_uncertain_save(engine: AsyncEngine) -> None:
    async def add_then_lose_the_connection() -> None:
        async with session_factory(engine)() as session:
            await session.execute(
                insert(api_key).values(
                    id=uuid.uuid4(),
                    name="lost",
                    prefix="klx_test",
                    key_hash=uuid.uuid4().hex,
                    scopes=["a"],
                )
            )
            raw = await (await session.connection()).get_raw_connection()
            await _terminate_and_wait(engine, raw.driver_connection)
            await commit(session)

    with pytest.raises(DBAPIError) as raised:  # not SaveUncertain
        await add_then_lose_the_connection()
    assert is_transient(raised.value)
    assert await _names(engine) == []


async def test_a_committed_session_is_saved(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        await session.execute(
            insert(api_key).values(
                id=uuid.uuid4(), name="kept", prefix="klx_test", key_hash="h", scopes=["a"]
            )
        )
        await commit(session)
    assert await _names(engine) == ["kept"]

"""`servicekit.driver` against the real Postgres: statements compiled once, connections
from the engine's pool, and what becomes of a connection that broke."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Integer, bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit import driver
from servicekit.db import create_engine
from tests.harness import Throwaway
from tests.servicekit.helpers import prepared


@pytest.fixture
async def engine(env: Throwaway) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await prepared(env, db_pool_size=2, db_max_overflow=0))
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_statement_fills_its_literals_and_refuses_a_missing_value(
    engine: AsyncEngine,
) -> None:
    statement = driver.Statement(
        select(bindparam("n", type_=Integer).label("n"), literal("fixed").label("word"))
    )
    async with driver.connection(engine) as conn:
        row = await conn.fetchrow(statement.sql, *statement.args({"n": 7}))
    assert row is not None
    assert (row["n"], row["word"]) == (7, "fixed")
    with pytest.raises(KeyError, match="'n'"):
        statement.args({})  # never sent as NULL


async def test_a_broken_connection_is_dropped_alone(engine: AsyncEngine) -> None:
    """The connection a restart broke is discarded; the others stay in the same pool (none is
    stranded outside it)."""
    pool = engine.pool

    async def use_until_broken(kept: asyncpg.Connection) -> asyncpg.Connection:
        async with driver.connection(engine) as doomed:
            await kept.execute("SELECT pg_terminate_backend($1)", doomed.get_server_pid())
            for _ in range(50):
                await asyncio.sleep(0.05)
                await doomed.fetchval("SELECT 1")
        return doomed

    async with driver.connection(engine) as kept:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await use_until_broken(kept)
    assert engine.pool is pool  # the same pool: nothing checked out was stranded
    assert not kept.is_closed()
    async with driver.connection(engine) as again:
        assert await again.fetchval("SELECT 1") == 1


async def test_a_connection_left_in_a_transaction_is_not_reused(engine: AsyncEngine) -> None:
    async with driver.connection(engine) as conn:
        await conn.execute("BEGIN")
    assert conn.is_closed()

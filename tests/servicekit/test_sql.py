"""Statements compiled once and run on the driver, against the real Postgres."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.db import asyncpg_dsn, create_engine, is_transient, session_factory
from servicekit.deps import commit
from servicekit.sql import Query, connection, transaction
from servicekit.tables import api_key
from tests.harness import Throwaway
from tests.servicekit.helpers import prepared

_ADD_KEY = Query.of(
    insert(api_key).values(
        id=bindparam("id"),
        name=bindparam("name"),
        prefix="klx_test",
        key_hash=bindparam("key_hash"),
        scopes=bindparam("scopes"),
    )
)
_KEY = Query.of(
    select(api_key.c.name, api_key.c.prefix, api_key.c.scopes).where(
        api_key.c.id == bindparam("id")
    )
)


@pytest.fixture
async def engine(env: Throwaway) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await prepared(env, db_pool_size=1, db_max_overflow=0))
    try:
        yield engine
    finally:
        await engine.dispose()


def _key(name: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "name": name, "key_hash": uuid.uuid4().hex, "scopes": ["a", "b"]}


async def _names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT name FROM api_key ORDER BY name"))).all())


async def test_query_orders_parameters_and_keeps_fixed_values(engine: AsyncEngine) -> None:
    key = _key("ops")
    async with connection(engine) as conn, conn.transaction():
        await conn.execute(_ADD_KEY.sql, *_ADD_KEY.args(key))
        row = await conn.fetchrow(_KEY.sql, *_KEY.args({"id": key["id"]}))
    assert row is not None
    assert (row["name"], row["prefix"], row["scopes"]) == ("ops", "klx_test", ["a", "b"])
    assert await _names(engine) == ["ops"]  # committed, in the service's own schema


async def _add_then_fail(engine: AsyncEngine) -> None:
    async with connection(engine) as conn, conn.transaction():
        await conn.execute(_ADD_KEY.sql, *_ADD_KEY.args(_key("half")))
        raise RuntimeError("refused")


async def test_a_failed_transaction_writes_nothing(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        await _add_then_fail(engine)
    assert await _names(engine) == []


async def test_a_connection_left_in_a_transaction_is_discarded(engine: AsyncEngine) -> None:
    async with connection(engine) as conn:
        left = conn
        await conn.transaction().start()
        await conn.execute(_ADD_KEY.sql, *_ADD_KEY.args(_key("dangling")))
    assert left.is_closed()
    # The pool (of one) hands out a fresh connection, and the open work was never committed.
    async with connection(engine) as conn:
        assert conn is not left
        assert not conn.is_in_transaction()
    assert await _names(engine) == []


async def test_a_broken_connection_is_replaced(engine: AsyncEngine) -> None:
    broken: list[asyncpg.Connection] = []

    async def kill_own_backend() -> None:
        async with connection(engine) as conn:
            broken.append(conn)
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(asyncpg.PostgresError):
        await kill_own_backend()
    async with connection(engine) as conn, conn.transaction():
        assert conn is not broken[0]
        await conn.execute(_ADD_KEY.sql, *_ADD_KEY.args(_key("after")))
    assert await _names(engine) == ["after"]


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


async def test_a_connection_lost_before_commit_is_not_an_uncertain_save(
    engine: AsyncEngine,
) -> None:
    """No COMMIT goes out on a closed connection: the server rolled back, and the error is
    the outage it is (503, nothing saved), not `SaveUncertain`."""

    async def add_then_lose_the_connection() -> None:
        async with connection(engine) as conn, transaction(conn):
            await conn.execute(_ADD_KEY.sql, *_ADD_KEY.args(_key("lost")))
            await _terminate_and_wait(engine, conn)

    with pytest.raises(asyncpg.InterfaceError) as raised:  # not SaveUncertain
        await add_then_lose_the_connection()
    assert is_transient(raised.value)
    assert await _names(engine) == []


async def test_a_session_lost_before_commit_is_not_an_uncertain_save(engine: AsyncEngine) -> None:
    """The same for a route's session, committed with `servicekit.deps.commit`."""

    async def add_then_lose_the_connection() -> None:
        async with session_factory(engine)() as session:
            await session.execute(insert(api_key).values(**_key("lost"), prefix="klx_test"))
            raw = await (await session.connection()).get_raw_connection()
            await _terminate_and_wait(engine, raw.driver_connection)
            await commit(session)

    with pytest.raises(DBAPIError) as raised:  # not SaveUncertain
        await add_then_lose_the_connection()
    assert is_transient(raised.value)
    assert await _names(engine) == []

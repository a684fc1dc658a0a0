"""Hot paths on the driver: SQLAlchemy Core statements compiled once, run on asyncpg.

An ``AsyncSession`` costs about half a millisecond of CPU per transaction and
a tenth or two per statement on top of asyncpg's own work (pool checkout,
greenlet hops, result wrapping). Most paths do not notice; a path that runs for
every request under load (filing a ticket, authenticating it) does. Such a path
builds its statements with SQLAlchemy Core as usual, compiles each once with
`Query.of`, and runs it on an asyncpg connection taken from the same engine's
pool with `connection`:

    _CLAIM = Query.of(insert(idempotency_key).values(...).returning(...))

    async with connection(runtime.engine) as conn, transaction(conn):
        row = await conn.fetchrow(_CLAIM.sql, *_CLAIM.args({"p_key": key, ...}))

Values go to asyncpg as they are: the engine's connections take JSON and
JSONB as a ``str`` (``json.dumps`` it) and give them back decoded.
"""

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from servicekit.db import is_transient
from servicekit.problems import SaveUncertain

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Query:
    """A statement compiled for asyncpg: its SQL and how to order its parameters."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> "Query":
        """Compile `statement` (with bind parameters, not literals) once."""
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `params`; values fixed in the statement fill the rest."""
        return [params[name] if name in params else self.defaults[name] for name in self.names]


@contextlib.asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection from `engine`'s pool, returned to it afterwards.

    It is in autocommit mode: wrap work in ``conn.transaction()``. A connection
    left inside a transaction is discarded rather than reused. One that broke
    (the database restarted or went away) is discarded with the whole pool (its
    idle connections closed), as SQLAlchemy does on a disconnect: the others are
    as stale, and the next request should not find out one connection at a time.
    """
    pooled = await engine.raw_connection()
    conn: asyncpg.Connection = pooled.driver_connection
    try:
        yield conn
    finally:
        if conn.is_closed():
            await greenlet_spawn(pooled.invalidate)
            await engine.dispose()
        elif conn.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """``conn.transaction()``, for a request: a COMMIT cut off raises `SaveUncertain`.

    A connection lost before COMMIT leaves nothing written (the server rolls back),
    and the API's 503 says so. One lost during COMMIT leaves the outcome unknown: the
    server may have committed and failed only to answer, as it does when the commit
    waited (on a lock, a deferred constraint, a synchronous standby) while the
    connection went. The 503 then says the work may have been saved.
    """
    committing = False
    try:
        async with conn.transaction():
            yield
            # A connection already closed sends no COMMIT: the server rolled back.
            committing = not conn.is_closed()
    except Exception as exc:
        if committing and is_transient(exc):
            raise SaveUncertain() from exc
        raise

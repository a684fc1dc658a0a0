"""Two hot paths on the driver: SQLAlchemy Core statements compiled once, run on asyncpg.

Every other path runs through a route's or consumer's `AsyncSession`. Two paths that run
for every request under load do not: looking up the API key of each request
(`servicekit.auth`) and filing a ticket (intake). SQLAlchemy's execution path (session,
pool checkout, greenlet hops, parameter and result processing) costs a few tenths of a
millisecond of CPU per statement beyond asyncpg's own work, and on these paths that is
what the intake benchmark measures. On a 2-core machine (2026-11-30, alternating quick
runs of ``bench/intake.py``), filing kept 0.20-0.26 of the floor with both paths on
SQLAlchemy (2.8-3.5 ms of CPU per ticket in the intake process) and 0.36-0.44 with both
on the driver (1.5-1.6 ms); two full five-round runs on the driver kept 0.30 (on the
machine slowed by then) and 0.34. The target is 0.3 (docs/benchmarks.md). The Idempotency-Key claim runs
here too, also when the attachments route makes it inside its session (`of_session`).

Such a path builds its statements with SQLAlchemy Core as usual, compiles each once with
`Statement`, and runs it on an asyncpg connection from the same engine's pool::

    _CLAIM = Statement(insert(idempotency_key).values(...).returning(...))

    async with connection(runtime.engine) as conn, transaction(conn):
        row = await conn.fetchrow(_CLAIM.sql, *_CLAIM.args({"p_key": key, ...}))

Values go to asyncpg as they are: the engine's connections take JSON and JSONB as a
``str`` and give them back decoded. `of_session` runs such a statement inside a session's
transaction instead.
"""

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from servicekit.db import is_transient
from servicekit.problems import SaveUncertain

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


class Statement:
    """A Core statement compiled once for asyncpg: `sql`, and `args` in its order."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        # Values the statement fixes itself (literals); a bind parameter without one must be
        # given to `args`: a missing one is an error, never a NULL.
        self._fixed = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `params`; values fixed in the statement fill the rest.
        Values go to asyncpg as they are (SQLAlchemy's bind processing is skipped)."""
        try:
            return [params[name] if name in params else self._fixed[name] for name in self._names]
        except KeyError as exc:
            raise KeyError(f"no value for bind parameter {exc.args[0]!r}") from None


@contextlib.asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection from `engine`'s pool, returned to it afterwards.

    It is in autocommit mode: wrap work in `transaction`. A connection left inside a
    transaction is discarded rather than reused. One that broke (the database restarted or
    went away) is discarded, and so is every connection the pool made before it, each at
    its next checkout, as SQLAlchemy does on a disconnect (`Pool._invalidate`, the one
    private call here): they are as stale, and the next requests should not find out one
    at a time. Connections other requests hold stay theirs until they return them.

    A failed checkout raises what asyncpg raised (the pool raises its dialect's own error
    class around it, which the outage checks of `servicekit.db` do not know).
    """
    try:
        pooled = await engine.raw_connection()
    except Exception as exc:
        if isinstance(exc.__cause__, Exception) and not isinstance(exc, DBAPIError):
            raise exc.__cause__ from exc
        raise
    conn: asyncpg.Connection = pooled.driver_connection
    try:
        yield conn
    finally:
        if conn.is_closed():
            await greenlet_spawn(engine.sync_engine.pool._invalidate, pooled)
        elif conn.is_in_transaction():
            await greenlet_spawn(pooled.invalidate)
        await greenlet_spawn(pooled.close)


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A request's transaction on `conn`: a COMMIT cut off raises `SaveUncertain`, by the
    same rule as `servicekit.deps.commit` for a session (see there why)."""
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


async def of_session(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection beneath `session`, inside the session's transaction (a
    statement must have run on the session first: that is when it begins)."""
    raw = await (await session.connection()).get_raw_connection()
    conn: asyncpg.Connection = raw.driver_connection
    if not conn.is_in_transaction():
        raise RuntimeError("run a statement on the session first: its transaction begins then")
    return conn

"""Database access bound to one service's schema, and the role that owns it."""

import asyncio
import re

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from servicekit.settings import ServiceSettings

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def server_settings(settings: ServiceSettings, *, role: str = "") -> dict[str, str]:
    """Postgres session settings of a service connection.

    Its schema first; a name to spot it in ``pg_stat_activity``; and no JIT.
    Klaxon's statements are short OLTP work that JIT compilation never speeds
    up, and the query it is known to pick is asyncpg's own type introspection,
    which every new connection runs the first time it meets a non-builtin type
    (about 16 ms here even without JIT; compiled, reported at hundreds of ms).
    """
    name = f"{settings.service_name}-{role}" if role else settings.service_name
    return {"search_path": settings.db_schema, "application_name": name, "jit": "off"}


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    """An asyncpg engine whose connections see only the service's schema by default."""
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args={"server_settings": server_settings(settings)},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that never commit on their own; the caller owns the transaction."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg wants, from a SQLAlchemy URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f'"{name}"'


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    """Create or update a login role; roles are server-wide, so concurrent runs are retried."""
    quoted_pw = await conn.fetchval("SELECT quote_literal($1)", password)
    for attempt in range(20):
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        try:
            await conn.execute(f"{verb} ROLE {_ident(role)} LOGIN PASSWORD {quoted_pw}")
            return
        except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            pass  # created by a concurrent run: alter it instead
        except asyncpg.InternalServerError as exc:
            if "concurrently" not in str(exc):
                raise
        await asyncio.sleep(0.05 * (attempt + 1))
    raise RuntimeError(f"could not create or update role {role!r}")


async def provision_schema(admin_url: str, *, schema: str, role: str, password: str) -> None:
    """Create (idempotently) a login role and a schema it owns; it gets nothing else.

    Run once per service with a superuser URL. The role can create and use
    objects in its own schema only: other services' schemas are owned by other
    roles and grant it no USAGE.
    """
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await _ensure_role(conn, role, password)
        await conn.execute(
            f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)} AUTHORIZATION {_ident(role)}"
        )
        await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {_ident(role)}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {_ident(schema)} FROM PUBLIC")
        await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {_ident(role)}")
        await conn.execute(f"ALTER ROLE {_ident(role)} SET search_path = {_ident(schema)}")
    finally:
        await conn.close()


_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
)
"""Driver-level failures seen when the database could not be reached (or would take no
more connections)."""

_AMBIGUOUS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
"""Raised by an unreachable database, and as readily by anything else a handler or route
calls (an SMTP server, an HTTP API, a timeout), or, for asyncpg's `InterfaceError`, by a
query the driver refuses (a wrong argument count, a value it cannot encode, an operation
on a busy connection), or, for its `InternalClientError` ("cannot switch to state ...;
another operation is in progress", seen on connections a restart broke mid-statement),
by a bug: `is_database_outage` asks the database before it believes one of these."""

RESTART_GRACE_S = 30.0
"""An ambiguous failure within this long of the database's (re)start counts as an outage:
the database answers again by the time it is asked, but the failure was the restart's."""

TRANSIENT_CANDIDATES: tuple[type[Exception], ...] = (*_UNREACHABLE, DBAPIError)
"""The exception types `is_transient` may say yes to."""

PROBE_TIMEOUT_S = 2.0


def is_transient(exc: BaseException) -> bool:
    """True if `exc` may mean the database could not be reached (see `is_database_outage`)."""
    if isinstance(exc, _UNREACHABLE):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return isinstance(exc, InterfaceError | OperationalError) or (
            cause is not None and cause is not exc and is_transient(cause)
        )
    return False


async def database_answers(
    sessions: async_sessionmaker[AsyncSession], timeout_s: float = PROBE_TIMEOUT_S
) -> bool:
    """True if the database answers ``SELECT 1`` within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def is_database_outage(
    exc: BaseException, sessions: async_sessionmaker[AsyncSession]
) -> bool:
    """True if `exc` means the database could not be reached, not that the work is wrong.

    Such failures are retried without counting against a message's delivery
    limit, and the HTTP API answers them with 503 instead of 500. A bare
    `OSError` or `TimeoutError` counts only if the database does not answer now:
    otherwise a handler whose mail server refused a message, or whose HTTP call
    timed out, would be retried forever without ever being dead-lettered.
    """
    if not is_transient(exc):
        return False
    if _ambiguous(exc):
        return not await database_steady(sessions)
    return True


async def database_steady(
    sessions: async_sessionmaker[AsyncSession], timeout_s: float = PROBE_TIMEOUT_S
) -> bool:
    """True if the database answers within `timeout_s` and has been up `RESTART_GRACE_S`."""
    try:
        async with asyncio.timeout(timeout_s), sessions() as session:
            up_s = await session.scalar(
                text("SELECT extract(epoch FROM now() - pg_postmaster_start_time())")
            )
    except Exception:
        return False
    return up_s is not None and float(up_s) >= RESTART_GRACE_S


def _ambiguous(exc: BaseException) -> bool:
    """True if `exc` may as well be a bug or another server's failure as a database outage.

    SQLAlchemy wraps asyncpg's `InterfaceError` in its own `InterfaceError`. Only one
    raised on a connection that is now closed (SQLAlchemy's ``connection_invalidated``,
    asyncpg's "connection is closed") surely means the connection was lost.
    """
    if isinstance(exc, DBAPIError):
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return (
            not exc.connection_invalidated
            and isinstance(cause, asyncpg.InterfaceError | asyncpg.InternalClientError)
            and _ambiguous(cause)
        )
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" not in str(exc)
    return isinstance(exc, _AMBIGUOUS)

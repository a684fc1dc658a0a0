"""FastAPI dependencies shared by every service's routes."""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.db import is_transient
from servicekit.problems import SaveUncertain

if TYPE_CHECKING:
    from servicekit.runtime import Runtime


async def get_runtime(request: Request) -> "Runtime":
    """The runtime of the app serving `request` (async: no threadpool hop)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the route commits, anything else rolls back."""
    async with request.app.state.runtime.sessions() as session:
        yield session


async def commit(session: AsyncSession) -> None:
    """Commit a route's session; a COMMIT cut off raises `SaveUncertain`.

    Pending ORM changes are flushed first, so a connection lost before COMMIT is
    answered as usual (503, nothing saved); one lost during COMMIT leaves the outcome
    unknown, and the 503 says the change may have been saved: the server may have
    committed and failed only to answer (the commit waited on a lock, a deferred
    constraint or a synchronous standby while the connection went). `servicekit.driver`'s
    `transaction` applies the same rule to filing, the one path that commits on the driver.
    """
    await session.flush()
    raw = await (await session.connection()).get_raw_connection()
    # A connection already closed sends no COMMIT: the server rolled back.
    driver = raw.driver_connection
    sent = driver is not None and not driver.is_closed()
    try:
        await session.commit()
    except Exception as exc:
        if sent and is_transient(exc):
            raise SaveUncertain() from exc
        raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]
RuntimeDep = Annotated["Runtime", Depends(get_runtime)]

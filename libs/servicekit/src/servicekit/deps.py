"""FastAPI dependencies shared by every service's routes."""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

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


SessionDep = Annotated[AsyncSession, Depends(get_session)]
RuntimeDep = Annotated["Runtime", Depends(get_runtime)]

"""A service's own loops and clients live in the runtime: resources open before the loops
start and close after they stop; loops that fail are rerun; routes, handlers and timers
reach them."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.intake import TicketFiled
from servicekit.deps import RuntimeDep
from servicekit.outbox import publish
from servicekit.runtime import Runtime, create_service_app, current_runtime
from servicekit.settings import ServiceSettings
from servicekit.timers import DueTimer, schedule
from tests.harness import Throwaway, eventually, wait_connected
from tests.servicekit.helpers import PRODUCER, prepared, ticket_filed


class Client:
    """Stands for a service's client (an SMTP pool, an HTTP client)."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.open = True


def client_resource(journal: list[str]) -> Any:
    """A resource factory whose client records when it opens and closes."""

    @contextlib.asynccontextmanager
    async def factory(settings: ServiceSettings) -> AsyncIterator[Client]:
        client = Client(journal)
        journal.append("opened")
        try:
            yield client
        finally:
            client.open = False
            journal.append("closed")

    return factory


async def test_resources_open_before_loops_and_close_after_they_stop(env: Throwaway) -> None:
    journal: list[str] = []

    async def loop(runtime: Runtime) -> None:
        client: Client = runtime.resources["client"]
        journal.append(f"loop started, client open: {client.open}")
        try:
            await asyncio.Event().wait()
        finally:
            journal.append(f"loop stopped, client open: {client.open}")

    settings = await prepared(env)
    runtime = Runtime(
        settings, loops={"scheduler": loop}, resources={"client": client_resource(journal)}
    )
    await runtime.start()
    await eventually(lambda: len(journal) == 2)
    await runtime.stop()
    assert journal == [
        "opened",
        "loop started, client open: True",
        "loop stopped, client open: True",
        "closed",
    ]
    assert runtime.resources == {}


async def test_a_loop_that_fails_or_returns_is_run_again(env: Throwaway) -> None:
    runs: list[int] = []

    async def flaky(runtime: Runtime) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("the scheduler's upstream went away")
        if len(runs) == 2:
            return
        await asyncio.Event().wait()

    settings = await prepared(env, reconnect_min_s=0.05)
    runtime = Runtime(settings, loops={"flaky": flaky})
    await runtime.start()
    try:
        await eventually(lambda: len(runs) == 3, timeout_s=5)
    finally:
        await runtime.stop()


async def test_a_resource_that_fails_to_open_closes_the_others_and_fails_the_start(
    env: Throwaway,
) -> None:
    journal: list[str] = []

    @contextlib.asynccontextmanager
    async def broken(settings: ServiceSettings) -> AsyncIterator[None]:
        raise OSError("no SMTP server")
        yield

    settings = await prepared(env)
    runtime = Runtime(settings, resources={"client": client_resource(journal), "smtp": broken})
    with pytest.raises(OSError, match="no SMTP server"):
        await runtime.start()
    assert journal == ["opened", "closed"]
    await runtime.stop()


router = APIRouter()


@router.get("/v1/client")
async def client_state(runtime: RuntimeDep) -> dict[str, bool]:
    """A route reaching a resource through the runtime."""
    client: Client = runtime.resources["client"]
    return {"open": client.open}


async def test_routes_handlers_and_timers_reach_the_runtime(env: Throwaway) -> None:
    journal: list[str] = []
    reached: dict[str, Client] = {}

    async def on_ticket(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        reached["handler"] = current_runtime().resources["client"]

    async def on_timer(session: AsyncSession, timer: DueTimer) -> None:
        reached["timer"] = current_runtime().resources["client"]

    async def loop(runtime: Runtime) -> None:
        reached["loop"] = current_runtime().resources["client"]
        await asyncio.Event().wait()

    settings = await prepared(env)
    app = create_service_app(
        settings,
        title="test",
        routers=[router],
        handlers={TicketFiled.event_type: on_ticket},
        timer_handlers={"reminder": on_timer},
        loops={"scheduler": loop},
        resources={"client": client_resource(journal)},
    )
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http,
    ):
        runtime: Runtime = app.state.runtime
        await wait_connected(runtime)
        assert (await http.get("/v1/client")).json() == {"open": True}
        async with runtime.sessions() as session, session.begin():
            await publish(session, ticket_filed(), producer=PRODUCER)
            await schedule(session, kind="reminder", key="k", due_at=datetime.now(UTC))
        await eventually(lambda: set(reached) == {"handler", "timer", "loop"})
        client = runtime.resources["client"]
        assert all(value is client for value in reached.values())
    with pytest.raises(LookupError):
        current_runtime()

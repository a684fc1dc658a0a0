"""/health and /metrics answer promptly, with unknown figures, whatever a dependency does."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url

from servicekit.db import asyncpg_dsn
from servicekit.health import CHECK_TIMEOUT_S
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, wait_connected
from tests.servicekit.helpers import HANDLERS, prepared

PROMPT_S = CHECK_TIMEOUT_S + 2
"""How long an endpoint may take when a dependency is stuck: one check budget and slack."""

BACKLOG_SAMPLE = 'klaxon_outbox_backlog{service="test"}'


def closed_port() -> int:
    """A local port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET `path`, failing the test if it takes longer than `PROMPT_S`."""
    async with asyncio.timeout(PROMPT_S):
        return await client.get(path)


@contextlib.asynccontextmanager
async def serving(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the test service's app, its lifespan running."""
    app = create_service_app(settings, title="test", handlers=HANDLERS)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


@pytest.fixture
async def client(env: Throwaway) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(await prepared(env)) as http:
        yield http


async def test_health_and_metrics_answer_while_the_outbox_is_locked(
    env: Throwaway, client: httpx.AsyncClient
) -> None:
    await wait_connected(client.app.state.runtime)  # type: ignore[attr-defined]
    locker = await asyncpg.connect(asyncpg_dsn(env.database_url))
    try:
        async with locker.transaction():
            # What a migration altering the outbox holds until it commits.
            await locker.execute("LOCK TABLE svc.outbox_event IN ACCESS EXCLUSIVE MODE")
            assert (await get(client, "/readyz")).status_code == 200

            response = await get(client, "/health")
            assert response.status_code == 200
            health: dict[str, Any] = response.json()
            assert health["status"] == "degraded"
            assert health["dependencies"]["database"]["ok"] is True
            assert health["outbox"]["backlog"] is None
            assert health["outbox"]["oldest_unsent_age_s"] is None
            assert health["outbox"]["error"]
            assert health["timers"] == {"due": 0}
            assert health["queue"]["depth"] == 0

            response = await get(client, "/metrics")
            assert response.status_code == 200
            assert BACKLOG_SAMPLE not in response.text
            assert 'klaxon_queue_depth{service="test"}' in response.text
    finally:
        await locker.close()

    health = (await get(client, "/health")).json()
    assert health["status"] == "ok"
    assert health["outbox"] == {"backlog": 0, "oldest_unsent_age_s": None}
    assert BACKLOG_SAMPLE in (await get(client, "/metrics")).text


@pytest.mark.parametrize("down", ["database", "broker"])
async def test_readyz_says_503_while_a_dependency_is_unreachable(env: Throwaway, down: str) -> None:
    if down == "database":
        settings = env.settings(ServiceSettings, schema="svc", service_name="test")
        url = make_url(settings.database_url).set(port=closed_port())
        settings = settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
    else:
        settings = await prepared(env, amqp_url=f"amqp://guest:guest@127.0.0.1:{closed_port()}/")
    async with serving(settings) as client:
        response = await get(client, "/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not ready"
        assert response.json()[down]["ok"] is False

        response = await get(client, "/health")
        assert response.status_code == 200
        health = response.json()
        assert health["status"] == "degraded"
        assert health["dependencies"][down]["ok"] is False
        assert health["queue"]["depth"] is None
        if down == "database":
            assert health["outbox"]["backlog"] is None
            assert health["timers"]["due"] is None
        else:
            assert health["dependencies"]["database"]["ok"] is True
            assert health["outbox"]["backlog"] == 0
        assert (await get(client, "/metrics")).status_code == 200

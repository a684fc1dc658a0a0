"""/health and /metrics answer promptly, with unknown figures, whatever a dependency does;
/readyz follows the database alone."""

import asyncio
import contextlib
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
from tests.harness import Throwaway, eventually, free_port, wait_connected
from tests.servicekit.helpers import HANDLERS, prepared

PROMPT_S = CHECK_TIMEOUT_S + 2
"""How long an endpoint may take when a dependency is stuck: one check budget and slack."""

BACKLOG_SAMPLE = 'klaxon_outbox_backlog{service="test"}'


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

            async def outbox_unknown() -> bool:
                health = (await get(client, "/health")).json()
                return bool(health["outbox"].get("error"))

            await eventually(outbox_unknown, timeout_s=PROMPT_S * 2)
            assert (await get(client, "/readyz")).status_code == 200

            response = await get(client, "/health")
            assert response.status_code == 200
            health: dict[str, Any] = response.json()
            assert health["status"] == "degraded"
            assert health["dependencies"]["database"]["ok"] is True
            assert health["outbox"] == {"error": "timeout"}
            assert health["timers"] == {"due": 0}
            assert health["queue"]["depth"] == 0

            response = await get(client, "/metrics")
            assert response.status_code == 200
            assert BACKLOG_SAMPLE not in response.text
            assert 'klaxon_queue_depth{service="test"}' in response.text
    finally:
        await locker.close()

    async def outbox_known() -> bool:
        outbox = (await get(client, "/health")).json()["outbox"]
        return bool(outbox == {"backlog": 0, "oldest_unsent_age_s": None})

    await eventually(outbox_known, timeout_s=PROMPT_S * 2)
    assert (await get(client, "/health")).json()["status"] == "ok"
    assert BACKLOG_SAMPLE in (await get(client, "/metrics")).text


async def test_readyz_says_503_while_the_database_is_unreachable(env: Throwaway) -> None:
    settings = env.settings(ServiceSettings, schema="svc", service_name="test")
    url = make_url(settings.database_url).set(port=free_port())
    settings = settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    async with serving(settings) as client:
        response = await get(client, "/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "not ready",
            "database": {"ok": False, "error": "unreachable"},
        }

        response = await get(client, "/health")
        assert response.status_code == 200
        health = response.json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["database"] == {"ok": False, "error": "unreachable"}
        assert health["outbox"] == {"error": "unreachable"}
        assert health["timers"] == {"error": "unreachable"}
        metrics = (await get(client, "/metrics")).text
        assert 'klaxon_dependency_up{dependency="database",service="test"} 0.0' in metrics


async def test_a_broker_outage_leaves_the_service_ready_and_is_reported(env: Throwaway) -> None:
    settings = await prepared(env, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    async with serving(settings) as client:
        response = await get(client, "/readyz")
        assert response.status_code == 200
        assert response.json()["status"] == "ready"

        response = await get(client, "/health")
        assert response.status_code == 200
        health = response.json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["database"]["ok"] is True
        assert health["dependencies"]["broker"] == {
            "ok": False,
            "loops": {"relay": False, "consumer": False},
            "error": "not connected",
        }
        assert health["queue"]["depth"] is None
        assert health["outbox"]["backlog"] == 0

        metrics = (await get(client, "/metrics")).text
        assert 'klaxon_dependency_up{dependency="broker",service="test"} 0.0' in metrics
        assert 'klaxon_broker_connected{loop="relay",service="test"} 0.0' in metrics
        assert 'klaxon_broker_connected{loop="consumer",service="test"} 0.0' in metrics
        assert 'klaxon_dependency_up{dependency="database",service="test"} 1.0' in metrics

"""/health, /readyz and /metrics answer from a background sample: asking them costs the
database nothing, and no failure's text (which may hold a secret) ever reaches a response."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.outbox import publish
from servicekit.runtime import Runtime, create_service_app
from servicekit.sampler import Figure
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually, wait_connected
from tests.proxy import TcpProxy
from tests.servicekit.helpers import HANDLERS, PRODUCER, prepared, ticket_filed

SECRET = "pw=hunter2-0123456789"


@contextlib.asynccontextmanager
async def serving(
    settings: ServiceSettings, figures: Mapping[str, Figure] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """A client of the test service's app, its lifespan running, and its runtime."""
    app = create_service_app(settings, title="test", handlers=HANDLERS, figures=figures)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http,
    ):
        yield http, app.state.runtime


class StatementCounter:
    """Counts the statements an engine sends to the database."""

    def __init__(self, runtime: Runtime) -> None:
        self.count = 0
        self.engine = runtime.engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    async def settled(self, quiet_s: float = 0.5) -> None:
        """Wait until no statement has been sent for `quiet_s` (start-up work is over)."""
        while True:
            before = self.count
            await asyncio.sleep(quiet_s)
            if self.count == before:
                return


async def test_health_requests_cost_the_database_nothing_between_samples(
    env: Throwaway,
) -> None:
    settings = await prepared(env, health_sample_interval_s=3600, timers_enabled=False)
    async with serving(settings) as (client, runtime):
        await wait_connected(runtime)
        assert (await client.get("/readyz")).status_code == 200  # the first sample is in
        counter = StatementCounter(runtime)
        try:
            await counter.settled()
            before = counter.count
            for _ in range(50):
                for path in ("/health", "/metrics", "/readyz"):
                    assert (await client.get(path)).status_code == 200
            assert counter.count == before

            await runtime.sampler.refresh()
            one_sample = counter.count - before
            assert one_sample > 0  # the counter does see the sampler's queries
        finally:
            counter.close()


async def test_figures_are_resampled_every_interval(env: Throwaway) -> None:
    settings = await prepared(env, health_sample_interval_s=0.3, relay_enabled=False)
    async with serving(settings) as (client, runtime):
        counter = StatementCounter(runtime)
        try:
            async with runtime.sessions() as session, session.begin():
                await publish(session, ticket_filed(), producer=PRODUCER)

            async def backlog_seen() -> bool:
                return bool((await client.get("/health")).json()["outbox"]["backlog"] == 1)

            await eventually(backlog_seen, timeout_s=5)
            before = counter.count
            await runtime.sampler.refresh()
            per_round = counter.count - before  # SELECT 1; a time limit and a query per figure
            before, started = counter.count, asyncio.get_running_loop().time()
            requests = 0
            while asyncio.get_running_loop().time() - started < 1.5:
                assert (await client.get("/health")).status_code == 200
                requests += 1
                await asyncio.sleep(0.005)
            rounds = 1.5 / 0.3
            assert requests > 3 * (rounds + 2)
            assert counter.count - before <= (rounds + 2) * per_round
        finally:
            counter.close()
        health = (await client.get("/health")).json()
        assert health["sample_age_s"] < 1.0
        metrics = (await client.get("/metrics")).text
        assert 'klaxon_outbox_backlog{service="test"} 1.0' in metrics
        assert 'klaxon_figure{field="backlog",figure="outbox",service="test"} 1.0' in metrics


async def leaky_figure(session: AsyncSession) -> Mapping[str, Any]:
    """A figure whose failure quotes a secret, as a driver quoting its URL would."""
    raise RuntimeError(f"could not log in to postgresql://klaxon:{SECRET}@db/klaxon")


async def test_a_failure_is_classified_and_its_text_goes_to_the_log_only(
    env: Throwaway, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await prepared(env)
    caplog.set_level(logging.WARNING, logger="servicekit.sampler")
    async with serving(settings, figures={"leaky": leaky_figure}) as (client, runtime):
        await wait_connected(runtime)
        responses = [await client.get(path) for path in ("/health", "/metrics", "/readyz")]
        health = responses[0].json()
        assert health["leaky"] == {"error": "error"}
        assert health["status"] == "degraded"
        for response in responses:
            assert SECRET not in response.text
        assert responses[2].status_code == 200
    assert any(SECRET in (record.exc_text or "") for record in caplog.records)


async def test_broker_loss_is_reported_while_the_service_stays_ready(env: Throwaway) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        settings = await prepared(env, amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        async with serving(settings) as (client, runtime):
            await wait_connected(runtime)

            async def broker_ok(expected: bool) -> bool:
                health = (await client.get("/health")).json()
                return bool(health["dependencies"]["broker"]["ok"] is expected)

            await eventually(lambda: broker_ok(True))
            await proxy.cut()
            await eventually(lambda: broker_ok(False))
            assert (await client.get("/readyz")).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'klaxon_dependency_up{dependency="broker",service="test"} 0.0' in metrics

            await proxy.start()
            await eventually(lambda: broker_ok(True), timeout_s=15)
            metrics = (await client.get("/metrics")).text
            assert 'klaxon_dependency_up{dependency="broker",service="test"} 1.0' in metrics
            assert 'klaxon_broker_connected{loop="consumer",service="test"} 1.0' in metrics
    finally:
        await proxy.close()


async def test_a_figure_may_not_take_the_name_of_a_health_field(env: Throwaway) -> None:
    settings = env.settings(ServiceSettings, schema="svc", service_name="test")
    with pytest.raises(ValueError, match="status"):
        Runtime(settings, figures={"status": leaky_figure})

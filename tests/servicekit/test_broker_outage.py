"""Events survive the broker going away: nothing committed is lost."""

import asyncio
import uuid

import pytest

from servicekit.outbox import publish
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.proxy import TcpProxy
from tests.servicekit.helpers import (
    HANDLERS,
    PRODUCER,
    effects,
    handled_ids,
    prepared,
    running,
    ticket_filed,
)


async def test_events_added_while_broker_unreachable_are_published_after_it_returns(
    env: Throwaway,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        # The service reaches the broker only through the proxy; the checking
        # consumer below connects directly, so it sees what really arrived.
        relay_settings = await prepared(env, amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        consumer_settings = relay_settings.model_copy(
            update={"amqp_url": AMQP_URL, "relay_enabled": False}
        )
        async with (
            running(consumer_settings, handlers=HANDLERS) as consumer,
            running(relay_settings) as relay,
        ):
            await wait_connected(consumer)
            await wait_connected(relay)
            await proxy.cut()
            await eventually(lambda: relay.relay is not None and not relay.relay.connected)

            ids: list[uuid.UUID] = []
            for i in range(25):
                async with relay.sessions() as session, session.begin():
                    envelope = await publish(
                        session, ticket_filed(f"outage-{i}"), producer=PRODUCER
                    )
                    ids.append(envelope.id)
            assert await effects(consumer) == []

            await proxy.start()
            await eventually(lambda: handled_ids(consumer, set(ids)), timeout_s=20)
            assert sorted(e for e, _ in await effects(consumer)) == sorted(ids)
    finally:
        await proxy.close()


@pytest.mark.slow
async def test_relay_and_consumer_survive_a_real_rabbitmq_restart(env: Throwaway) -> None:
    settings = await prepared(env, reconnect_max_s=2.0)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        async with runtime.sessions() as session, session.begin():
            before = await publish(session, ticket_filed("before restart"), producer=PRODUCER)
        await eventually(lambda: handled_ids(runtime, {before.id}))

        await _rabbitmqctl("stop_app")
        try:
            async with runtime.sessions() as session, session.begin():
                during = await publish(session, ticket_filed("during restart"), producer=PRODUCER)
        finally:
            await _rabbitmqctl("start_app")
        await eventually(lambda: handled_ids(runtime, {before.id, during.id}), timeout_s=60)
        assert len(await effects(runtime)) == 2


async def _rabbitmqctl(command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()

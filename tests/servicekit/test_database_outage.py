"""A database outage delays events; it never loses or dead-letters them."""

import asyncio

import aio_pika
from sqlalchemy.engine import make_url

from contracts import Envelope, topology
from servicekit.outbox import publish
from servicekit.runtime import Runtime
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.proxy import TcpProxy
from tests.servicekit.helpers import (
    HANDLERS,
    PRODUCER,
    effects,
    handled_count,
    handled_notes,
    prepared,
    running,
    ticket_filed,
)


async def test_consumer_waits_out_a_database_outage_without_dead_lettering(
    env: Throwaway,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        direct = await prepared(env, consumer_delivery_limit=2, reconnect_max_s=0.5)
        url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
        settings = direct.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
        async with running(settings, handlers=HANDLERS) as runtime:
            await wait_connected(runtime)
            await proxy.cut()

            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange(settings.exchange)
                sent = [
                    Envelope.wrap(ticket_filed(f"during-{i}"), producer=PRODUCER) for i in range(5)
                ]
                for envelope in sent:
                    await exchange.publish(
                        aio_pika.Message(envelope.to_json(), message_id=str(envelope.id)),
                        routing_key=envelope.type,
                    )
                # Longer than delivery_limit * retry delay: a naive consumer would dead-letter.
                async with running(direct) as observer:
                    for _ in range(30):
                        assert await effects(observer) == []
                        await asyncio.sleep(0.1)
                await proxy.start()
                await eventually(lambda: handled_count(runtime, len(sent)), timeout_s=30)

                dead = await channel.declare_queue(
                    topology.dead_letter_name("test", prefix=settings.queue_prefix), passive=True
                )
                assert dead.declaration_result.message_count == 0

            async with runtime.sessions() as session, session.begin():
                after = await publish(session, ticket_filed("after"), producer=PRODUCER)
            await eventually(lambda: handled_count(runtime, len(sent) + 1))
            assert after.id in {e for e, _ in await effects(runtime)}
    finally:
        await proxy.close()


async def test_relay_replaces_a_database_connection_that_went_silent(env: Throwaway) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        direct = await prepared(env, reconnect_max_s=0.5)
        url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
        relaying = direct.model_copy(
            update={
                "database_url": url.render_as_string(hide_password=False),
                "relay_io_timeout_s": 1.0,
                "consumer_enabled": False,
                "timers_enabled": False,
            }
        )
        consuming = direct.model_copy(update={"relay_enabled": False})
        async with running(consuming, handlers=HANDLERS) as runtime, running(relaying) as relay:
            await wait_connected(runtime)
            await eventually(lambda: _relay_connected(relay))
            proxy.silent = True  # no reset, no FIN: every byte just vanishes
            async with runtime.sessions() as session, session.begin():
                await publish(session, ticket_filed("during the partition"), producer=PRODUCER)
            await asyncio.sleep(2.5)
            proxy.silent = False  # new connections work again; the old one is still mute
            await eventually(lambda: handled_notes(runtime, {"during the partition"}))
    finally:
        await proxy.close()


async def _relay_connected(runtime: Runtime) -> bool:
    return runtime.relay is not None and runtime.relay.connected

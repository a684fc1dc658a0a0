"""A consumer hands its handler the current version of a payload, whatever version is on
the bus; a version it does not know is dead-lettered."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, EventPayload, topology
from contracts.registry import Registry
from servicekit.consumer import Consumer
from servicekit.db import create_engine, session_factory
from servicekit.settings import ServiceSettings
from tests.contracts.test_versions import Noted, NotedV1, NotedV3, noted_registry
from tests.harness import AMQP_URL, Throwaway, eventually
from tests.servicekit.helpers import prepared


@contextlib.asynccontextmanager
async def _consuming(
    settings: ServiceSettings, seen: list[object], registry: Registry | None = None
) -> AsyncIterator[Consumer]:
    async def record(session: AsyncSession, payload: Noted, envelope: Envelope) -> None:
        seen.append(payload)
        await session.execute(
            text("INSERT INTO effect (event_id, note) VALUES (:id, :note)"),
            {"id": envelope.id, "note": f"{payload.title}/{payload.priority}"},
        )

    engine = create_engine(settings)
    consumer = Consumer(
        settings,
        session_factory(engine),
        {Noted.event_type: record},
        registry=registry or noted_registry(),
    )
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.connected)
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()


async def _publish(
    channel: AbstractChannel, settings: ServiceSettings, payload: EventPayload
) -> Envelope:
    envelope = Envelope.wrap(payload, producer="test")
    exchange = await channel.get_exchange(settings.exchange)
    await exchange.publish(aio_pika.Message(envelope.to_json()), routing_key=envelope.type)
    return envelope


async def test_a_v1_event_on_the_bus_is_handled_as_v2_and_an_unknown_version_is_dead_lettered(
    env: Throwaway,
) -> None:
    settings = await prepared(env)
    seen: list[object] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, _consuming(settings, seen):
        channel = await connection.channel()
        future = await _publish(channel, settings, NotedV3(title="from the future"))
        await _publish(channel, settings, NotedV1(subject="disk full"))
        await _publish(channel, settings, Noted(title="cpu hot", priority=1))

        await eventually(lambda: len(seen) == 2)
        assert seen == [Noted(title="disk full", priority=3), Noted(title="cpu hot", priority=1)]

        dead = await channel.declare_queue(
            topology.dead_letter_name("test", prefix=env.prefix), passive=True
        )
        message = None

        async def dead_lettered() -> bool:
            nonlocal message
            message = await dead.get(fail=False, no_ack=True)
            return message is not None

        await eventually(dead_lettered)
        assert message is not None
        assert Envelope.from_json(message.body).id == future.id


async def test_an_event_its_upcaster_fails_on_is_dead_lettered_and_the_rest_flow(
    env: Throwaway,
) -> None:
    """An upcaster that raises (or returns the wrong version, `Registry.upcast`'s TypeError)
    fails on that message alone: it is dead-lettered, not left unacknowledged."""
    registry = Registry()
    registry.register(NotedV1, Noted)

    @registry.upcaster("test.noted", 1)
    def v1_to_v2(old: NotedV1) -> Noted:
        if old.subject == "wrong version":
            return old  # type: ignore[return-value]
        raise KeyError(old.subject)

    settings = await prepared(env, consumer_batch_size=1)
    seen: list[object] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, _consuming(settings, seen, registry):
        channel = await connection.channel()
        broken = [
            await _publish(channel, settings, NotedV1(subject=subject))
            for subject in ("no such key", "wrong version")
        ]
        await _publish(channel, settings, Noted(title="cpu hot", priority=1))

        await eventually(lambda: len(seen) == 1)
        assert seen == [Noted(title="cpu hot", priority=1)]
        dead = await channel.declare_queue(
            topology.dead_letter_name("test", prefix=env.prefix), passive=True
        )
        found: list[Envelope] = []

        async def both_dead_lettered() -> bool:
            message = await dead.get(fail=False, no_ack=True)
            if message is not None:
                found.append(Envelope.from_json(message.body))
            return len(found) == len(broken)

        await eventually(both_dead_lettered)
        assert {envelope.id for envelope in found} == {envelope.id for envelope in broken}

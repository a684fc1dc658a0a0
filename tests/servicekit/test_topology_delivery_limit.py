"""A changed delivery limit never stops a consumer: the limit is the consumer's, not an
immutable queue argument, and a queue declared with the old argument is used as it is."""

import aio_pika
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, topology
from contracts.intake import TicketFiled
from servicekit.cli import migrate
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually, wait_connected
from tests.servicekit.helpers import (
    HANDLERS,
    MIGRATIONS,
    PRODUCER,
    handled_notes,
    prepared,
    running,
    ticket_filed,
)


async def _send(channel: AbstractChannel, settings: ServiceSettings, subject: str) -> Envelope:
    envelope = Envelope.wrap(ticket_filed(subject), producer=PRODUCER)
    exchange = await channel.get_exchange(settings.exchange)
    await exchange.publish(
        aio_pika.Message(envelope.to_json(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=envelope.type,
    )
    return envelope


async def _dead_letters(channel: AbstractChannel, settings: ServiceSettings) -> list[Envelope]:
    name = topology.dead_letter_name("test", prefix=settings.queue_prefix)
    queue = await channel.declare_queue(name, passive=True)
    found = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        found.append(Envelope.from_json(message.body))
    return found


async def test_a_consumer_started_with_limit_5_then_7_consumes(
    env: Throwaway, channel: AbstractChannel
) -> None:
    first = await prepared(env, consumer_delivery_limit=5)
    async with running(first, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        await _send(channel, first, "with 5")
        await eventually(lambda: handled_notes(runtime, {"with 5"}))

    second = first.model_copy(update={"consumer_delivery_limit": 7})
    async with running(second, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        await _send(channel, second, "with 7")
        await eventually(lambda: handled_notes(runtime, {"with 7"}))


async def test_a_queue_declared_with_the_old_delivery_limit_argument_keeps_working(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env, consumer_delivery_limit=7)
    dead = topology.dead_letter_name("test", prefix=env.prefix)
    # Exactly as Klaxon declared its queues before the limit left the queue's arguments.
    await channel.declare_queue(
        topology.service_queue("test", prefix=env.prefix),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": 5,
        },
    )
    await migrate(settings, MIGRATIONS)

    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        await _send(channel, settings, "old queue")
        await eventually(lambda: handled_notes(runtime, {"old queue"}))


async def test_a_lowered_limit_dead_letters_an_event_already_past_it(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env, consumer_delivery_limit=5, consumer_batch_size=1)
    attempts: list[str] = []

    async def failing(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        attempts.append(payload.subject)
        raise RuntimeError("handler failed")

    async with running(settings, handlers={TicketFiled.event_type: failing}) as runtime:
        await wait_connected(runtime)
        poison = await _send(channel, settings, "poison")
        await eventually(lambda: len(attempts) >= 3)
    assert await _dead_letters(channel, settings) == []
    tried = len(attempts)

    lowered = settings.model_copy(update={"consumer_delivery_limit": 1})
    async with running(lowered, handlers={TicketFiled.event_type: failing}) as runtime:
        found: list[Envelope] = []

        async def dead_lettered() -> bool:
            found.extend(await _dead_letters(channel, settings))
            return bool(found)

        await eventually(dead_lettered)
    assert [envelope.id for envelope in found] == [poison.id]
    assert len(attempts) == tried  # not handled again: dead-lettered on arrival

"""RabbitMQ topology: the events exchange, its alternate exchange, service queues."""

import asyncio

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from contracts import topology

OUTGOING_FRAMES = 1024
"""How many publishes a connection queues for its writer before a publisher waits.

aiormq's default (`FRAME_BUFFER_SIZE`, 10) is small, and a publish that finds the queue
full waits there holding its channel's lock, so every publish behind it takes an
event-loop turn of its own. The relay hands a whole batch (`relay_batch_size`, 200) to
the channel at once: in a busy process (intake under load, the pipeline benchmark's
producer) such a batch took up to a second to go out, and the relay fell behind its
writers. aiormq reads the class attribute when a connection opens.
"""
aiormq.Connection.FRAME_BUFFER_SIZE = OUTGOING_FRAMES


async def declare_events_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    """Declare the durable topic exchange; unroutable events are kept, not dropped."""
    unrouted = await channel.declare_exchange(
        topology.unrouted_name(name), aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(
        topology.unrouted_name(name),
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": 100_000},
    )
    await queue.bind(unrouted)
    return await channel.declare_exchange(
        name,
        aio_pika.ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": topology.unrouted_name(name)},
    )


async def declare_service_queue(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    *,
    service: str,
    prefix: str,
    routing_keys: list[str],
    delivery_limit: int,
) -> AbstractQueue:
    """Declare ``<prefix>.<service>`` (quorum, dead-lettered, delivery-limited) and bind it."""
    dead = topology.dead_letter_name(service, prefix=prefix)
    dead_exchange = await channel.declare_exchange(dead, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(
        dead, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_queue.bind(dead_exchange)
    queue = await channel.declare_queue(
        topology.service_queue(service, prefix=prefix),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": delivery_limit,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


async def connect(url: str) -> tuple[AbstractConnection, asyncio.Future[BaseException | None]]:
    """Open a (non-robust) connection and a future that resolves when it is lost.

    Klaxon's loops reconnect themselves (see `servicekit.reconnect`), so they
    can redeclare their topology and report their state truthfully.
    """
    connection = await aio_pika.connect(url, timeout=10)
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def on_close(_: object, exc: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(exc)

    connection.close_callbacks.add(on_close)
    return connection, lost


async def watch_channel(
    channel: AbstractChannel, lost: asyncio.Future[BaseException | None]
) -> None:
    """Resolve `lost` when the broker closes `channel` or cancels a consumer on it.

    Either leaves the connection open, so `connect`'s future alone never says so: a
    channel closed for a protocol error (or an unacked delivery held past the
    broker's ``consumer_timeout``), or a consumer cancelled because its queue was
    deleted, would leave a loop connected and receiving nothing, for good.
    """

    def on_close(_: object, exc: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(exc or ConnectionError("the broker closed the channel"))

    def on_cancel(frame: object) -> None:
        if not lost.done():
            lost.set_result(ConnectionError(f"the broker cancelled the consumer ({frame})"))

    channel.close_callbacks.add(on_close)
    underlay = await channel.get_underlay_channel()
    underlay.on_consumer_cancel_callbacks.add(on_cancel)


class ReplayStopped(Exception):
    """`replay_dead_letters` stopped early; `moved` events had gone back by then."""

    def __init__(self, moved: int, reason: str) -> None:
        super().__init__(reason)
        self.moved = moved


REPLAY_CONFIRM_TIMEOUT_S = 30.0


async def replay_dead_letters(url: str, *, service: str, prefix: str) -> int:
    """Move the messages in the service's dead-letter queue back to its queue; returns how many.

    Run it once what made them fail is fixed. It moves as many as the queue held when it
    started, so an event that fails again is not replayed in a loop. Each goes to the
    service's own queue through the default exchange (other services handled it already),
    persistent, with a fresh delivery count, and leaves the dead-letter queue only once
    the broker confirmed the copy: a crash in between leaves it in both, and the service's
    inbox makes the second delivery harmless. If the broker refuses a copy (the queue is
    full) or does not confirm it in time, the event is returned to the dead-letter queue
    with basic.nack, which RabbitMQ 4.3 does not count as a failed delivery, and
    `ReplayStopped` says how many went back before.
    """
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.declare_queue(
            topology.dead_letter_name(service, prefix=prefix), passive=True
        )
        target = topology.service_queue(service, prefix=prefix)
        await channel.declare_queue(target, passive=True)
        held = dead.declaration_result.message_count or 0
        moved = 0
        while moved < held:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            try:
                async with asyncio.timeout(REPLAY_CONFIRM_TIMEOUT_S):
                    await channel.default_exchange.publish(
                        aio_pika.Message(
                            message.body,
                            message_id=message.message_id,
                            correlation_id=message.correlation_id,
                            type=message.type,
                            content_type=message.content_type,
                            app_id=message.app_id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=target,
                        mandatory=True,
                    )
            except (
                aio_pika.exceptions.DeliveryError,
                aio_pika.exceptions.PublishError,
                TimeoutError,
            ) as exc:
                await message.nack(requeue=True)
                raise ReplayStopped(
                    moved, f"the broker did not take an event into {target} ({exc!r})"
                ) from exc
            await message.ack()
            moved += 1
        return moved

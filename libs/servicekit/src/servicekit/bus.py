"""RabbitMQ topology: the events exchange, its alternate exchange, service queues.

Who declares what: `migrate` declares the events exchange and every service's queue,
dead-letter exchange and queue and bindings from `contracts.topology.CONSUMES`
(`declare_topology`), so an event published before its consumer first ran waits in the
consumer's queue. Each consumer declares its own again when it starts, the relay the
exchange. Declaring is idempotent and only adds bindings.

The delivery limit is not a queue argument. ``x-delivery-limit`` is immutable: redeclaring
a queue with another value (or without it) is refused with PRECONDITION_FAILED, which
closes the channel, so a changed setting would stop the consumer for good. Measured on
RabbitMQ 3.10.8 (this project's broker): ``received '7' but current is '5'`` and
``received none but current is the value '5'``. A policy (``delivery-limit``) could change
it on a live queue, but needs the management HTTP API (the plugin is not enabled on that
broker, and an application would need policymaker credentials) or ``rabbitmqctl`` on the
broker's host, and a queue gets only one policy (the highest priority): ours would
silently displace an operator's own (length limits, leader placement). So:

* queues are declared with arguments that never depend on a setting
  (`service_queue_arguments`: quorum, dead-letter exchange, at-least-once dead-lettering,
  reject-publish);
* the consumer enforces ``consumer_delivery_limit`` itself from the quorum queue's
  ``x-delivery-count`` header, with RabbitMQ's meaning (limit 5: up to 6 deliveries,
  then dead-lettered), so a changed limit takes effect at the next start;
* a queue that already exists with other arguments (declared by an older Klaxon with
  ``x-delivery-limit``) is used as it is (`declare_queue_as_it_is`: the refused declare
  is followed by a passive one, on channels of their own), and a warning says so; its
  old broker-side limit keeps applying too, so the lower of the two wins.

On RabbitMQ 3.10 a delivery returned because the consumer's channel closed (a crashed
process) counts in ``x-delivery-count`` as well (measured), so an event that kills its
consumer is dead-lettered on arrival once past the limit. RabbitMQ 4 counts fewer kinds of
return there (see `servicekit.consumer`), and gives quorum queues a default limit of
its own (20, from 4.0).
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from contracts import topology

log = logging.getLogger(__name__)

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


def service_queue_arguments(service: str, *, prefix: str) -> dict[str, Any]:
    """The arguments a service's queue is declared with: fixed for good, whatever the settings.

    No ``x-delivery-limit``: see the module docstring.
    """
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": topology.dead_letter_name(service, prefix=prefix),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_queue_as_it_is(
    connection: AbstractConnection, name: str, arguments: dict[str, Any]
) -> bool:
    """Declare the durable queue `name`; if it exists with other arguments, keep it as it is.

    Returns False when the broker refused the arguments (PRECONDITION_FAILED, e.g. a queue
    declared with an older ``x-delivery-limit``): the queue is then checked with a passive
    declare and used as it stands. Each declare gets a channel of its own, since a refusal
    closes its channel.
    """
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=arguments)
        return True
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        log.warning(
            "queue %s exists with other arguments than %s; using it as it is (%s)",
            name,
            arguments,
            exc,
        )
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    async with await connection.channel() as channel:
        await channel.declare_queue(name, passive=True)
    return False


async def declare_service_queue(
    connection: AbstractConnection,
    *,
    exchange: str,
    service: str,
    prefix: str,
    routing_keys: Iterable[str],
) -> str:
    """Declare ``<prefix>.<service>`` (quorum, dead-lettered) and its dead-letter exchange and
    queue, and bind it to `routing_keys` on `exchange`; returns the queue's name.

    Bindings are only ever added: a key another version of the routing table still lists
    stays bound (see `declare_topology`).
    """
    dead = topology.dead_letter_name(service, prefix=prefix)
    name = topology.service_queue(service, prefix=prefix)
    # Where it dead-letters to first, so nothing is dead-lettered into nothing.
    await declare_queue_as_it_is(connection, dead, {"x-queue-type": "quorum"})
    async with await connection.channel() as channel:
        dead_exchange = await channel.declare_exchange(
            dead, aio_pika.ExchangeType.FANOUT, durable=True
        )
        await (await channel.get_queue(dead, ensure=False)).bind(dead_exchange)
    await declare_queue_as_it_is(connection, name, service_queue_arguments(service, prefix=prefix))
    async with await connection.channel() as channel:
        queue = await channel.get_queue(name, ensure=False)
        for key in sorted(set(routing_keys)):
            await queue.bind(exchange, routing_key=key)
    return name


async def declare_topology(
    connection: AbstractConnection,
    *,
    exchange: str,
    prefix: str,
    consumes: Mapping[str, Iterable[str]] = topology.CONSUMES,
) -> None:
    """Declare the events exchange and every service's queues and bindings from `consumes`.

    `migrate` runs this, so an event published before its consumer first started waits in
    that consumer's queue instead of going to the unrouted queue. It only adds: a binding
    the table no longer lists is left in place, because a service migrating with an older
    copy of the contracts must not unbind what a newer service needs.
    """
    async with await connection.channel() as channel:
        await declare_events_exchange(channel, exchange)
    for service, keys in sorted(consumes.items()):
        await declare_service_queue(
            connection, exchange=exchange, service=service, prefix=prefix, routing_keys=keys
        )


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

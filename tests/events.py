"""Events on a test's exchange (`tests.harness.Throwaway`), over the real RabbitMQ:

- `publish(env, payload)`: an event, as another service's relay would send it;
- `tap(env, *routing_keys)`: every event published with those keys, to
  `EventTap.wait_for` and `EventTap.collected`.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from contracts import Envelope, EventPayload
from servicekit import bus
from tests.harness import AMQP_URL, Throwaway


async def publish(
    env: Throwaway,
    payload: EventPayload,
    *,
    producer: str = "test",
    causation: Envelope | None = None,
    correlation_id: uuid.UUID | None = None,
    routing_key: str | None = None,
) -> Envelope:
    """Publish `payload` on the test's exchange as another service's relay would
    (persistent, confirmed, message_id = event id); returns its envelope."""
    envelope = Envelope.wrap(
        payload, producer=producer, causation=causation, correlation_id=correlation_id
    )
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await bus.declare_events_exchange(channel, env.exchange)
        await exchange.publish(
            aio_pika.Message(
                envelope.to_json(),
                message_id=str(envelope.id),
                correlation_id=str(envelope.correlation_id),
                type=envelope.type,
                app_id=producer,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key or envelope.type,
        )
    return envelope


class EventTap:
    """The events published on a test's exchange with the tapped routing keys."""

    def __init__(self) -> None:
        self._events: list[Envelope] = []
        self._arrived = asyncio.Event()

    def collected(self) -> list[Envelope]:
        """Every event tapped so far, in arrival order."""
        return list(self._events)

    def of_type(self, event_type: str) -> list[Envelope]:
        """The tapped events of `event_type`."""
        return [envelope for envelope in self._events if envelope.type == event_type]

    async def wait_for(
        self,
        event_type: str,
        predicate: Callable[[Envelope], bool] | None = None,
        timeout_s: float = 10,
    ) -> Envelope:
        """The first tapped event (already tapped or still to come) of `event_type` for
        which `predicate` holds; fails after `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for envelope in self._events:
                        if envelope.type == event_type and (
                            predicate is None or predicate(envelope)
                        ):
                            return envelope
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            seen = sorted({envelope.type for envelope in self._events})
            raise AssertionError(
                f"no matching {event_type} within {timeout_s}s (tapped: {seen})"
            ) from None

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        self._events.append(Envelope.from_json(message.body))
        self._arrived.set()


@contextlib.asynccontextmanager
async def tap(env: Throwaway, *routing_keys: str) -> AsyncIterator[EventTap]:
    """Tap the test's exchange for `routing_keys` (topic patterns, e.g. ``ticket.*``) with
    a queue of its own, gone when the tap closes."""
    events = EventTap()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await bus.declare_events_exchange(channel, env.exchange)
        queue = await channel.declare_queue(
            f"{env.prefix}.tap.{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True
        )
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(events._receive, no_ack=True)
        yield events

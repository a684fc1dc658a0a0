"""Idempotent consumer: each event's effects are committed once.

Guarantee: the handler's writes and the event id (in the schema's
``inbox_event``) are committed in one transaction, and the message is acked
only after that commit. A redelivered event finds its id in the inbox and is
acked without running the handler again. A handler that raises rolls back and
the message is returned to the queue; after ``consumer_delivery_limit``
deliveries the broker dead-letters it. A message that is not a valid envelope,
has an unknown type or a payload that does not parse goes straight to the
dead-letter queue. Nothing a message contains can stop the consumer.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, UnknownEventType, parse_payload
from servicekit import bus, metrics
from servicekit.logging import correlation_id
from servicekit.reconnect import run_forever
from servicekit.settings import ServiceSettings
from servicekit.tables import inbox_event

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
"""``async def handle(session, payload, envelope)``: do the work, never commit."""


class Consumer:
    """Consumes the service's quorum queue and dispatches events by type."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        *,
        service: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.service = service or settings.service_name
        self.queue: AbstractQueue | None = None
        self.connected = False

    async def run(self) -> None:
        """Consume until cancelled, reconnecting to the broker with backoff."""
        await run_forever(self._consume_until_lost, f"{self.service} consumer", self.settings)

    async def _consume_until_lost(self) -> None:
        connection, lost = await bus.connect(self.settings.amqp_url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
            exchange = await bus.declare_events_exchange(channel, self.settings.exchange)
            self.queue = await bus.declare_service_queue(
                channel,
                exchange,
                service=self.service,
                prefix=self.settings.queue_prefix,
                routing_keys=sorted(self.handlers),
                delivery_limit=self.settings.consumer_delivery_limit,
            )
            await self.queue.consume(self.handle_message)
            self.connected = True
            log.info("consuming %s", self.queue.name)
            exc = await lost
            raise ConnectionError(f"broker connection lost: {exc}")
        finally:
            self.connected = False
            self.queue = None
            with contextlib.suppress(Exception):
                await connection.close()

    async def queue_depth(self) -> int | None:
        """Messages ready in the service's queue, or None while disconnected."""
        queue = self.queue
        if queue is None:
            return None
        declared = await queue.channel.declare_queue(queue.name, passive=True)
        return declared.declaration_result.message_count

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        """Handle one delivery: dead-letter garbage, skip duplicates, ack after commit."""
        try:
            envelope = Envelope.from_json(message.body)
            handler = self.handlers.get(envelope.type)
            if handler is None:
                raise UnknownEventType(f"{self.service} has no handler for {envelope.type!r}")
            payload = parse_payload(envelope)
        except (ValidationError, UnknownEventType, ValueError) as exc:
            log.error(
                "dead-lettering unparseable message %s: %s",
                message.message_id,
                str(exc).splitlines()[0],
                extra={"routing_key": message.routing_key},
            )
            metrics.EVENTS_CONSUMED.labels(
                self.service, message.routing_key or "", "dead_lettered"
            ).inc()
            await message.reject(requeue=False)
            return

        token = correlation_id.set(str(envelope.correlation_id))
        started = time.perf_counter()
        try:
            async with self.sessions() as session, session.begin():
                first_time = (
                    await session.execute(
                        insert(inbox_event)
                        .values(event_id=envelope.id, event_type=envelope.type)
                        .on_conflict_do_nothing()
                        .returning(inbox_event.c.event_id)
                    )
                ).first()
                if first_time is not None:
                    await handler(session, payload, envelope)
        except Exception:
            log.exception(
                "handler for %s failed on event %s (delivery %s); returning it to the queue",
                envelope.type,
                envelope.id,
                message.headers.get("x-delivery-count", 0),
            )
            metrics.EVENTS_CONSUMED.labels(self.service, envelope.type, "failed").inc()
            await asyncio.sleep(self.settings.consumer_retry_delay_s)
            await message.nack(requeue=True)
            return
        finally:
            correlation_id.reset(token)
        await message.ack()
        outcome = "handled" if first_time is not None else "duplicate"
        metrics.EVENTS_CONSUMED.labels(self.service, envelope.type, outcome).inc()
        metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(
            time.perf_counter() - started
        )

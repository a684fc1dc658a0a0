"""Idempotent consumer: each event's effects are committed once.

Guarantee: the handler's writes and the event id (in the schema's
``inbox_event``) are committed in one transaction, and the message is acked
only after that commit. A redelivered event finds its id in the inbox and is
acked without running the handler again. A handler that raises rolls back and
the message is returned to the queue; once it has failed
``consumer_delivery_limit`` + 1 deliveries (RabbitMQ's ``x-delivery-limit`` meaning, counted
from the quorum queue's ``x-delivery-count`` header) the consumer dead-letters it. The limit
is enforced here, not as a queue argument, so changing it never stops a consumer (see
`servicekit.bus`). A database outage is not the message's fault: the consumer holds
the message (unacked) and retries with backoff until the database answers, without
spending its deliveries. A message that is not a valid envelope, has an unknown type or
version, or a payload that does not parse or that its upcaster fails on, goes straight to
the dead-letter queue. Nothing a message contains can stop the consumer. A payload of an
older version is upcast (`contracts.registry.Registry`): a handler always gets the
current version; the envelope it gets is the one received.

Under load, messages that are already waiting are handled together in one
transaction (up to ``consumer_batch_size``), so one commit (one fsync) serves
many events; if any handler in a batch fails, the batch is rolled back and its
messages are handled one by one, so only the failing one is returned. A batch
is acked with one frame when no earlier delivery is still being handled (see
`Unsettled`).

Order: none. Events reach a handler in no promised order, even two of one
producer's transaction (see `servicekit.outbox`), and a returned or redelivered
event comes back behind later ones. A handler accepts an event late, early and
twice: its state moves only forward and "already done" is success. While it runs,
`servicekit.logging.correlation_id` holds the event's correlation id, so the events
it publishes (`servicekit.outbox.publish`) carry it.
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Envelope, UnknownEventType, parse_payload, topology
from contracts.registry import REGISTRY, Registry
from servicekit import bus, inbox, metrics
from servicekit.db import is_database_outage
from servicekit.logging import correlation_id
from servicekit.reconnect import run_forever
from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
"""``async def handle(session, payload, envelope)``: do the work, never commit."""


class Unsettled:
    """Delivery tags of one channel that are neither acked nor returned yet.

    A batch is acked with one ``multiple`` frame (which acks every outstanding
    tag up to the given one) when no other delivery of the channel up to the
    batch's last tag is unsettled; otherwise each message is acked on its own.
    A tag leaves this set only after its frame was handed to the channel, so a
    ``multiple`` ack never covers a delivery that is still being handled, is
    waiting to be returned, or is about to be acked by another worker. One
    frame per batch instead of one per message saves the consumer and the
    broker a write and a settle per event.
    """

    def __init__(self) -> None:
        self._tags: set[int] = set()

    def add(self, tag: int) -> None:
        """A delivery arrived."""
        self._tags.add(tag)

    def discard(self, tag: int) -> None:
        """This delivery's ack or rejection has been sent."""
        self._tags.discard(tag)

    def only_these_up_to(self, tags: Collection[int], last: int) -> bool:
        """True if no tag up to `last` is unsettled besides `tags`."""
        return all(tag > last or tag in tags for tag in self._tags)


@dataclass(frozen=True)
class Delivery:
    """A parsed message waiting to be handled."""

    message: AbstractIncomingMessage
    envelope: Envelope
    payload: Any
    handler: Handler
    unsettled: Unsettled
    """The unsettled deliveries of the channel it came on."""

    @property
    def tag(self) -> int:
        """Its delivery tag on that channel."""
        return _tag(self.message)


def _tag(message: AbstractIncomingMessage) -> int:
    return message.delivery_tag or 0  # None only for messages fetched with no_ack


class Consumer:
    """Consumes the service's quorum queue and dispatches events by type."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        *,
        service: str | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or REGISTRY
        """Payload models by version: a handler gets the current version of its payload."""
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.service = service or settings.service_name
        self.routing_keys = routing_keys(self.service, self.handlers)
        self.queue: AbstractQueue | None = None
        self._connection: AbstractConnection | None = None
        self.connected = False
        self._waiting: asyncio.Queue[Delivery] = asyncio.Queue()
        self._returning: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Consume until cancelled, reconnecting to the broker with backoff."""
        workers = [
            asyncio.create_task(self._work(), name=f"{self.service}-consumer-worker")
            for _ in range(max(1, self.settings.consumer_workers))
        ]
        try:
            await run_forever(self._consume_until_lost, f"{self.service} consumer", self.settings)
        finally:
            for task in [*workers, *self._returning]:
                task.cancel()
            for task in [*workers, *self._returning]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _consume_until_lost(self) -> None:
        connection, lost = await bus.connect(self.settings.amqp_url)
        try:
            async with await connection.channel() as declaring:
                await bus.declare_events_exchange(declaring, self.settings.exchange)
            name = await bus.declare_service_queue(
                connection,
                exchange=self.settings.exchange,
                service=self.service,
                prefix=self.settings.queue_prefix,
                routing_keys=self.routing_keys,
            )
            channel = await connection.channel()
            await bus.watch_channel(channel, lost)
            await channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
            self.queue = await channel.declare_queue(name, passive=True)
            await self.queue.consume(functools.partial(self.receive, unsettled=Unsettled()))
            self._connection = connection
            self.connected = True
            log.info("consuming %s", self.queue.name)
            exc = await lost
            raise ConnectionError(f"broker connection lost: {exc}")
        finally:
            self.connected = False
            self.queue = None
            self._connection = None
            # Deliveries of the lost channel can no longer be acked; the broker redelivers them.
            while not self._waiting.empty():
                self._waiting.get_nowait()
            with contextlib.suppress(Exception):
                await connection.close()

    async def queue_depth(self) -> int | None:
        """Messages ready in the service's queue, or None while disconnected.

        Asked on a channel of its own: a passive declare that fails closes its
        channel, and the consumer's must stay open.
        """
        queue, connection = self.queue, self._connection
        if queue is None or connection is None:
            return None
        async with connection.channel() as channel:
            declared = await channel.declare_queue(queue.name, passive=True)
            return declared.declaration_result.message_count

    async def receive(self, message: AbstractIncomingMessage, *, unsettled: Unsettled) -> None:
        """Parse one delivery and queue it for a worker; dead-letter what does not parse."""
        tag = _tag(message)
        unsettled.add(tag)  # first, while deliveries are still taken in order
        if _failed_deliveries(message) > self.settings.consumer_delivery_limit:
            # Past the limit already: the limit was lowered, or handling it killed the process.
            await self._dead_letter(message, "it is past the delivery limit")
            unsettled.discard(tag)
            return
        try:
            envelope = Envelope.from_json(message.body)
            handler = self.handlers.get(envelope.type)
            if handler is None:
                raise UnknownEventType(f"{self.service} has no handler for {envelope.type!r}")
            payload = parse_payload(envelope, self.registry)
        except Exception as exc:  # parsing is pure: whatever it raises is this message's fault
            # (ValidationError, UnknownEventType, ValueError, or an upcaster that fails on it)
            log.error(
                "dead-lettering unparseable message %s: %s: %s",
                message.message_id,
                type(exc).__name__,
                next(iter(str(exc).splitlines()), ""),
                extra={"routing_key": message.routing_key},
            )
            metrics.EVENTS_CONSUMED.labels(
                self.service, message.routing_key or "", "dead_lettered"
            ).inc()
            with contextlib.suppress(Exception):  # a lost channel: the broker redelivers it
                await message.reject(requeue=False)
            unsettled.discard(tag)
            return
        self._waiting.put_nowait(Delivery(message, envelope, payload, handler, unsettled))

    async def _work(self) -> None:
        """Take what is waiting (at least one) and handle it as one batch."""
        while True:
            batch = [await self._waiting.get()]
            while len(batch) < self.settings.consumer_batch_size and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            try:
                await self.handle_batch(batch)
            except Exception:
                log.exception("consumer worker failed on a batch of %d", len(batch))

    async def handle_batch(self, batch: Sequence[Delivery]) -> None:
        """Handle `batch` in one transaction; on failure, each delivery on its own."""
        if len(batch) > 1:
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:
                log.warning(
                    "batch of %d failed (%s); handling one by one", len(batch), type(exc).__name__
                )
            else:
                await self.settle(batch, outcomes)
                return
        for delivery in batch:
            await self.settle(
                [delivery], {delivery.envelope.id: await self._handle_alone(delivery)}
            )

    async def _handle_alone(self, delivery: Delivery) -> str:
        """Handle one delivery; wait out database outages without spending its retries."""
        delay = self.settings.reconnect_min_s
        while True:
            try:
                return (await self._commit([delivery]))[delivery.envelope.id]
            except Exception as exc:
                if not await is_database_outage(exc, self.sessions):
                    log.exception(
                        "handler for %s failed on event %s (delivery %s); returning it to the queue",
                        delivery.envelope.type,
                        delivery.envelope.id,
                        delivery.message.headers.get("x-delivery-count", 0),
                    )
                    return "failed"
                log.warning(
                    "database unreachable handling %s (%s); retrying in %.1fs",
                    delivery.envelope.id,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _commit(self, batch: Sequence[Delivery]) -> dict[Any, str]:
        """Record the batch in the inbox and run the handlers of new events; commit."""
        started = time.perf_counter()
        outcomes: dict[Any, str] = {}
        handler_s: dict[Any, float] = {}
        params = {
            "ids": [d.envelope.id for d in batch],
            "types": [d.envelope.type for d in batch],
        }
        async with self.sessions() as session, session.begin():
            new = set((await session.scalars(inbox.RECORD_NEW, params)).all())
            for delivery in batch:
                event_id = delivery.envelope.id
                if event_id in new and event_id not in outcomes:
                    token = correlation_id.set(str(delivery.envelope.correlation_id))
                    began = time.perf_counter()
                    try:
                        await delivery.handler(session, delivery.payload, delivery.envelope)
                    finally:
                        correlation_id.reset(token)
                    handler_s[event_id] = time.perf_counter() - began
                    outcomes[event_id] = "handled"
                else:
                    outcomes.setdefault(event_id, "duplicate")
        # Each event: its own handler's time and an equal share of the inbox write and commit.
        shared_s = (time.perf_counter() - started - sum(handler_s.values())) / len(batch)
        for delivery in batch:
            metrics.HANDLER_SECONDS.labels(self.service, delivery.envelope.type).observe(
                handler_s.get(delivery.envelope.id, 0.0) + shared_s
            )
        return outcomes

    async def settle(self, batch: Sequence[Delivery], outcomes: Mapping[Any, str]) -> None:
        """Ack the handled and duplicate deliveries of `batch`; return failed ones to the queue.

        The acks go out as one frame when `Unsettled` allows it. A failed
        delivery goes back after ``consumer_retry_delay_s``, so a poison message
        spends its deliveries over seconds, not milliseconds, while the worker
        moves on. A lost channel takes no acks: the broker redelivers.
        """
        acked: list[Delivery] = []
        for delivery in batch:
            outcome = outcomes[delivery.envelope.id]
            metrics.EVENTS_CONSUMED.labels(self.service, delivery.envelope.type, outcome).inc()
            if outcome == "failed":
                task = asyncio.create_task(self._return_later(delivery))
                self._returning.add(task)
                task.add_done_callback(self._returning.discard)
            else:
                acked.append(delivery)
        if not acked:
            return
        last = max(acked, key=lambda delivery: delivery.tag)
        with contextlib.suppress(Exception):
            if len(acked) > 1 and last.unsettled.only_these_up_to(
                {delivery.tag for delivery in acked}, last.tag
            ):
                await last.message.ack(multiple=True)
            else:
                for delivery in acked:
                    await delivery.message.ack()
        for delivery in acked:
            delivery.unsettled.discard(delivery.tag)

    async def _dead_letter(self, message: AbstractIncomingMessage, why: str) -> None:
        log.error(
            "dead-lettering event %s after %d failed deliveries: %s",
            message.message_id,
            _failed_deliveries(message) + 1,
            why,
            extra={"routing_key": message.routing_key},
        )
        metrics.EVENTS_CONSUMED.labels(
            self.service, message.routing_key or "", "dead_lettered"
        ).inc()
        with contextlib.suppress(Exception):  # a lost channel: the broker redelivers it
            await message.reject(requeue=False)

    async def _return_later(self, delivery: Delivery) -> None:
        if _failed_deliveries(delivery.message) >= self.settings.consumer_delivery_limit:
            await self._dead_letter(delivery.message, "the handler failed on each")
            delivery.unsettled.discard(delivery.tag)
            return
        await asyncio.sleep(self.settings.consumer_retry_delay_s)
        with contextlib.suppress(Exception):
            # basic.reject, not basic.nack: from RabbitMQ 4.3 only a reject counts as a
            # failed delivery against the queue's x-delivery-limit (before, any return did),
            # so a nacked poison event would be redelivered forever.
            await delivery.message.reject(requeue=True)
        delivery.unsettled.discard(delivery.tag)


def _failed_deliveries(message: AbstractIncomingMessage) -> int:
    """How many earlier deliveries of `message` were returned (the quorum queue's count)."""
    count = message.headers.get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


def routing_keys(service: str, handlers: Mapping[str, Handler]) -> frozenset[str]:
    """The event types `service`'s queue is bound to: its row of `topology.CONSUMES`.

    A handler for a type that row does not list is a start-up error (its events would
    never arrive). A service with no row (a test's own) is bound to its handlers' types.
    """
    listed = topology.CONSUMES.get(service)
    if listed is None:
        return frozenset(handlers)
    unlisted = sorted(set(handlers) - listed)
    if unlisted:
        raise ValueError(
            f"{service} has handlers for {', '.join(unlisted)}, which"
            f" contracts.topology.CONSUMES[{service!r}] does not list: add them there, so"
            " migrate binds its queue to them"
        )
    unhandled = sorted(listed - set(handlers))
    if unhandled:
        log.warning(
            "%s's queue is bound to %s, which it has no handler for: they will be dead-lettered",
            service,
            ", ".join(unhandled),
        )
    return listed

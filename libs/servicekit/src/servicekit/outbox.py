"""Transactional outbox: events are written with the rows that caused them.

Guarantee: an event added in a transaction that commits is published to the
exchange at least once (persistent, publisher-confirmed, mandatory-routed); an
event added in a transaction that rolls back is never published. Rows are
deleted only after the broker confirmed them, so a relay that dies mid-batch
leaves them to be published again (consumers dedupe by event id). Several
relays share the table with ``FOR UPDATE SKIP LOCKED``.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractExchange
from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import BindParameter

from contracts import Envelope, EventPayload
from servicekit import bus, metrics
from servicekit.db import asyncpg_dsn
from servicekit.reconnect import run_forever
from servicekit.settings import ServiceSettings
from servicekit.tables import outbox_event

log = logging.getLogger(__name__)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes the relay of `schema`'s outbox."""
    return f"klaxon_outbox_{schema}"


OUTBOX_VALUES: dict[str, BindParameter[Any]] = {
    "event_id": bindparam("outbox_event_id"),
    "routing_key": bindparam("outbox_routing_key"),
    "body": bindparam("outbox_body"),
    "correlation_id": bindparam("outbox_correlation_id"),
}
"""Bound values of an outbox row, for statements that insert it alongside other rows
(``insert(outbox_event).values(OUTBOX_VALUES)`` as a CTE); fill with `outbox_params`."""

_INSERT = insert(outbox_event).values(OUTBOX_VALUES)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


def outbox_params(envelope: Envelope) -> dict[str, object]:
    """Parameters for `OUTBOX_VALUES` that queue `envelope`."""
    return {
        "outbox_event_id": envelope.id,
        "outbox_routing_key": envelope.type,
        "outbox_body": envelope.to_json(),
        "outbox_correlation_id": envelope.correlation_id,
    }


async def add_event(session: AsyncSession, envelope: Envelope) -> None:
    """Queue `envelope` for publishing in the session's current transaction.

    A trigger on the table notifies the relay when the transaction commits.
    """
    await session.execute(_INSERT, outbox_params(envelope))


async def publish(
    session: AsyncSession,
    payload: EventPayload,
    *,
    producer: str,
    causation: Envelope | None = None,
) -> Envelope:
    """Wrap `payload` in an envelope and add it to the outbox; returns the envelope."""
    envelope = Envelope.wrap(payload, producer=producer, causation=causation)
    await add_event(session, envelope)
    return envelope


async def backlog(session: AsyncSession) -> tuple[int, float | None]:
    """Unsent events and the age in seconds of the oldest one."""
    row = (await session.execute(select(func.count(), func.min(outbox_event.c.created_at)))).one()
    count, oldest = row
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else None
    return int(count), age


class Relay:
    """Publishes outbox rows to RabbitMQ; run one or many per service."""

    def __init__(
        self, settings: ServiceSettings, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self._wakeup = asyncio.Event()
        self.connected = False

    async def run(self) -> None:
        """Publish until cancelled, reconnecting to the broker with backoff."""
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        try:
            await run_forever(self._publish_forever, "outbox relay", self.settings)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _publish_forever(self) -> None:
        connection, lost = await bus.connect(self.settings.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await bus.declare_events_exchange(channel, self.settings.exchange)
            self.connected = True
            while not lost.done():
                # Clear before reading, so a NOTIFY that lands mid-batch is not lost.
                self._wakeup.clear()
                sent = await self.publish_batch(exchange)
                if sent >= self.settings.relay_batch_size:
                    continue
                woken = asyncio.ensure_future(self._wakeup.wait())
                waiters: set[asyncio.Future[Any]] = {woken, lost}
                try:
                    await asyncio.wait(
                        waiters,
                        timeout=self.settings.relay_poll_interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
            raise ConnectionError(f"broker connection lost: {lost.result()}")
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                await connection.close()

    async def publish_batch(self, exchange: AbstractExchange) -> int:
        """Publish up to one batch of unsent rows and delete them once confirmed."""
        async with self.sessions() as session, session.begin():
            # Losing this transaction's DELETE in a database crash only republishes
            # (consumers dedupe), so it need not wait for its WAL flush.
            await session.execute(_ASYNC_COMMIT)
            rows = (
                await session.execute(
                    select(
                        outbox_event.c.seq,
                        outbox_event.c.event_id,
                        outbox_event.c.routing_key,
                        outbox_event.c.body,
                        outbox_event.c.correlation_id,
                    )
                    .order_by(outbox_event.c.seq)
                    .limit(self.settings.relay_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body=row.body,
                            message_id=str(row.event_id),
                            correlation_id=str(row.correlation_id),
                            type=row.routing_key,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            app_id=self.settings.service_name,
                        ),
                        routing_key=row.routing_key,
                        mandatory=True,
                    )
                    for row in rows
                )
            )
            await session.execute(
                delete(outbox_event).where(outbox_event.c.seq.in_([row.seq for row in rows]))
            )
        metrics.EVENTS_PUBLISHED.labels(self.settings.service_name).inc(len(rows))
        return len(rows)

    async def _listen(self) -> None:
        """Wake the relay on NOTIFY; reconnect if the database goes away."""

        def wake(*_: object) -> None:
            self._wakeup.set()

        async def listen_once() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(self.settings.database_url), timeout=10)
            try:
                await conn.add_listener(notify_channel(self.settings.db_schema), wake)
                self._wakeup.set()  # catch up on anything added while not listening
                while not conn.is_closed():
                    await asyncio.sleep(self.settings.relay_poll_interval_s)
                    await conn.execute("SELECT 1")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

        await run_forever(listen_once, "outbox listener", self.settings)

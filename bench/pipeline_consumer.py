"""bench/pipeline.py's consuming side, in a process of its own as a consuming service is.

It runs the real `Consumer` (the pipeline: inbox row and handler in one transaction per
batch), a bare aio-pika consumer (the baseline: ack on arrival) and the floor's consumer
(each message's id committed in its own bare asyncpg transaction, then acked), and notes
when each message was done, in CLOCK_MONOTONIC, which the producing process can compare
with its own clock.
"""

import asyncio
import gc
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncSession

from bench.measure import AMQP_URL
from contracts import Envelope
from contracts.intake import TicketFiled
from servicekit.consumer import Consumer, Delivery
from servicekit.db import asyncpg_dsn, create_engine, session_factory
from servicekit.settings import ServiceSettings

PREFETCH = 64
BASELINE_KEY = "baseline.ticket.filed"
FLOOR_KEY = "floor.ticket.filed"
"""Routing keys of the baseline's and the floor's messages; the pipeline's is the event type."""


class Clock:
    """Receive times (CLOCK_MONOTONIC, comparable across processes) of expected message ids."""

    def __init__(self, expected: int = 0) -> None:
        self.received: dict[str, float] = {}
        self.expected = expected
        self.done = asyncio.Event()

    def receive(self, message_id: str | None) -> None:
        if message_id and message_id not in self.received:
            self.received[message_id] = time.monotonic()
            if len(self.received) >= self.expected:
                self.done.set()


class TimedConsumer(Consumer):
    """The real consumer, noting when each message was committed and acked."""

    clock = Clock()

    async def settle(self, batch: Sequence[Delivery], outcomes: Mapping[Any, str]) -> None:
        await super().settle(batch, outcomes)
        for delivery in batch:
            self.clock.receive(delivery.message.message_id)


async def _noop(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
    """The handler does nothing: what is measured is the plumbing around it."""


async def serve_consumer(settings: ServiceSettings) -> None:
    """The consuming side, in a process of its own (as the consuming service would be).

    Runs the real Consumer (pipeline) and a bare aio-pika consumer (baseline).
    Protocol on stdin/stdout: read N, print ``armed``, then print the JSON map
    of message id -> receive time once N messages have arrived.
    """
    engine = create_engine(settings)
    consumer = TimedConsumer(settings, session_factory(engine), {TicketFiled.event_type: _noop})
    consuming = asyncio.create_task(consumer.run())
    while not consumer.connected:
        await asyncio.sleep(0.01)

    connection = await aio_pika.connect(AMQP_URL)

    async def bare_queue(name: str, routing_key: str) -> AbstractQueue:
        """A quorum queue on a channel of its own, bound to the events exchange."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.declare_queue(
            f"{settings.queue_prefix}.{name}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(settings.exchange, routing_key=routing_key)
        return queue

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()
        TimedConsumer.clock.receive(message.message_id)

    await (await bare_queue("baseline", BASELINE_KEY)).consume(on_message)

    # The floor: each message recorded in its own bare asyncpg transaction, then acked.
    floor_pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=8,
        max_size=8,
        server_settings={"search_path": settings.db_schema},
    )

    async def on_floor_message(message: AbstractIncomingMessage) -> None:
        envelope = Envelope.from_json(message.body)
        async with floor_pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO inbox_event (event_id, event_type) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                envelope.id,
                envelope.type,
            )
        await message.ack()
        TimedConsumer.clock.receive(message.message_id)

    await (await bare_queue("floor", FLOOR_KEY)).consume(on_floor_message)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    gc.collect()
    gc.freeze()  # as servicekit's Runtime does at start-up
    print("ready", flush=True)
    while line := await reader.readline():
        TimedConsumer.clock = clock = Clock(int(line))
        print("armed", flush=True)
        await asyncio.wait_for(clock.done.wait(), timeout=300)
        print(json.dumps(clock.received), flush=True)
    consuming.cancel()
    await connection.close()
    await engine.dispose()

"""Benchmark: outbox -> relay -> RabbitMQ -> consumer -> inbox, against bare aio-pika.

As deployed, the producing side (a service committing events, with its relay)
and the consuming side run in two processes; the baseline uses the same two
processes, the same broker, the same topic exchange into a quorum queue, with
persistent, publisher-confirmed, mandatory messages. The pipeline's producer
commits one event per transaction in a SQLAlchemy session (the one way a
service writes its outbox), so what is measured is the plumbing; a floor is
reported beside it: what it costs just to commit each event in
Postgres on both sides of the broker, written bare (commit a row, then publish;
consume, commit the event id in its own transaction, ack). The floor is not
crash-safe (an event committed but not yet published is lost); it shows how
much of the baseline any design that records every event durably on both
sides can keep on this machine. Reported:

- throughput: N events sent as fast as possible, first send to last consumed;
- ``producer_commits_per_s``: in the same rounds, how fast the producer committed
  them (one SQLAlchemy transaction per event, the relay running beside it): the
  pipeline cannot carry more than its producer commits;
- latency at a fixed offered rate (default 500 events/s): for the pipeline,
  from the producer's COMMIT to the consumer's commit + ack; for the baseline,
  from publish to consume + ack;
- ``timers_10k_s``: 10,000 timers due at once, fired by one `TimerWorker` with
  the default settings (each handler writes one row in its own transaction),
  from the worker's start until the last timer is gone (target: under 10 s);
  beside it ``timers_baseline_10k_s``: as many bare transactions (write a row,
  delete it, commit) on as many connections, the least any design that fires
  each timer in a transaction of its own costs on this machine.

Each figure is the median over several rounds. The last line printed is one
JSON object. Usage: ``uv run python bench/pipeline.py [--quick]``.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import uvloop
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from servicekit.bus import declare_events_exchange
from servicekit.consumer import Consumer, Delivery
from servicekit.db import asyncpg_dsn, create_engine, provision_schema, session_factory
from servicekit.outbox import Relay, add_event
from servicekit.settings import ServiceSettings
from servicekit.tables import NOTIFY_OUTBOX_FUNCTION, plumbing
from servicekit.timers import DueTimer, TimerWorker

ADMIN_URL = os.environ.get(
    "KLAXON_BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KLAXON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PRODUCERS = 16
KINDS = ("baseline", "pipeline", "floor")
PREFETCH = 64


def _payload(i: int) -> TicketFiled:
    return TicketFiled(
        ticket_id=uuid.uuid4(),
        number=f"KLX-{i}",
        organization="Bench Org",
        reporter=Person(name="Bench", email="bench@example.com"),
        product=ProductRef(slug="canvas-hosting", name="Canvas Hosting"),
        severity=Severity.CRITICAL,
        subject="Canvas is down",
        description="Every page answers 502 since 09:12 UTC.",
        urls=("https://canvas.example.com/",),
        monitoring_state=HealthState.DOWN,
        filed_at=datetime.now(UTC),
    )


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


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[ServiceSettings]:
    """A database with a migrated 'bench' schema, dropped afterwards."""
    token = uuid.uuid4().hex[:10]
    name = f"klaxon_bench_{token}"
    admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(ADMIN_URL).set(database=name)
    await provision_schema(
        url.render_as_string(hide_password=False), schema="bench", role="klaxon_bench", password="x"
    )
    settings = ServiceSettings(
        service_name="bench",
        database_url=url.set(username="klaxon_bench", password="x").render_as_string(
            hide_password=False
        ),
        db_schema="bench",
        amqp_url=AMQP_URL,
        exchange=f"b{token}.events",
        queue_prefix=f"b{token}",
        consumer_prefetch=PREFETCH,
        db_pool_size=20,
    )
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.run_sync(plumbing.create_all)
        # The trigger that wakes the relay is made by the plumbing's first revision, not by
        # the table metadata: without it the relay would only poll, as no service does.
        await conn.execute(text(NOTIFY_OUTBOX_FUNCTION))
        await conn.execute(
            text(
                "CREATE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event"
                " REFERENCING NEW TABLE AS inserted"
                " FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()"
            )
        )
        await conn.execute(
            text("CREATE TABLE floor_row (id uuid PRIMARY KEY, body bytea NOT NULL)")
        )
        await conn.execute(text("CREATE TABLE timer_effect (timer_id uuid PRIMARY KEY)"))
    await engine.dispose()
    try:
        yield settings
    finally:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for queue in ("bench", "bench.dead", "baseline", "floor", "events.unrouted"):
                await channel.queue_delete(f"{settings.queue_prefix}.{queue}")
            for exchange in ("events", "events.unrouted", "bench.dead"):
                await channel.exchange_delete(f"{settings.queue_prefix}.{exchange}")
        admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


BASELINE_KEY = "baseline.ticket.filed"
FLOOR_KEY = "floor.ticket.filed"


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


@contextlib.asynccontextmanager
async def _driver(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A bare asyncpg connection from `engine`'s pool, for the floor (no SQLAlchemy)."""
    pooled = await engine.raw_connection()
    try:
        yield pooled.driver_connection
    finally:
        await greenlet_spawn(pooled.close)


class Producer:
    """The producing side: commits events to the outbox (with a relay), or publishes bare."""

    def __init__(self, settings: ServiceSettings, consumer: asyncio.subprocess.Process) -> None:
        self.settings = settings
        self.consumer = consumer
        self.engine = create_engine(settings)
        self.sessions = session_factory(self.engine)

    async def __aenter__(self) -> "Producer":
        self.relay = Relay(self.settings)
        self.relaying = asyncio.create_task(self.relay.run())
        self.connection = await aio_pika.connect(AMQP_URL)
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await declare_events_exchange(channel, self.settings.exchange)
        while not self.relay.connected:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.relaying.cancel()
        await asyncio.gather(self.relaying, return_exceptions=True)
        await self.connection.close()
        await self.engine.dispose()

    async def commit(self, envelope: Envelope, sent: dict[str, float]) -> None:
        """Pipeline: one event per transaction in a SQLAlchemy session (the only outbox path)."""
        async with self.sessions() as session, session.begin():
            await add_event(session, envelope)
        sent[str(envelope.id)] = time.monotonic()

    async def commit_then_publish(self, envelope: Envelope, sent: dict[str, float]) -> None:
        """Floor: commit one row bare, then publish bare (no outbox, no relay; not crash-safe)."""
        async with _driver(self.engine) as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO floor_row (id, body) VALUES ($1, $2)", envelope.id, envelope.to_json()
            )
        sent[str(envelope.id)] = time.monotonic()
        await self._publish(envelope, FLOOR_KEY)

    async def publish(self, envelope: Envelope, sent: dict[str, float]) -> None:
        """Baseline: publish with confirms, persistent and mandatory, straight to the broker."""
        sent[str(envelope.id)] = time.monotonic()
        await self._publish(envelope, BASELINE_KEY)

    async def _publish(self, envelope: Envelope, routing_key: str) -> None:
        await self.exchange.publish(
            aio_pika.Message(
                envelope.to_json(),
                message_id=str(envelope.id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            ),
            routing_key=routing_key,
            mandatory=True,
        )

    async def round(
        self, kind: str, n: int, rate: float | None
    ) -> tuple[float, float, list[float]]:
        """Send `n` events; return (events/s first send to last receive, events/s sent,
        latencies in ms)."""
        assert self.consumer.stdin is not None
        assert self.consumer.stdout is not None
        self.consumer.stdin.write(f"{n}\n".encode())
        await self.consumer.stdin.drain()
        assert (await self.consumer.stdout.readline()).strip() == b"armed"
        envelopes = [Envelope.wrap(_payload(i), producer="bench") for i in range(n)]
        sent: dict[str, float] = {}
        # Keep the round's own scaffolding out of the garbage collector: a full collection
        # of a heap holding thousands of prepared envelopes paused this process (relay
        # included) for 25-56 ms once per latency round, which in rounds of 5000 events
        # at 500/s was enough to set the p99.
        gc.freeze()
        send = {
            "pipeline": self.commit,
            "baseline": self.publish,
            "floor": self.commit_then_publish,
        }[kind]
        started = time.monotonic()
        await _drive(envelopes, lambda envelope: send(envelope, sent), rate)
        sent_s = time.monotonic() - started
        received: dict[str, float] = json.loads(await self.consumer.stdout.readline())
        elapsed = max(received.values()) - started
        if os.environ.get("KLAXON_BENCH_VERBOSE"):
            print(
                f"{kind} n={n}: sent in {sent_s:.2f}s, received in {elapsed:.2f}s", file=sys.stderr
            )
        return n / elapsed, n / sent_s, [(received[k] - t) * 1000 for k, t in sent.items()]


async def _drive(
    envelopes: list[Envelope],
    send: Callable[[Envelope], Coroutine[Any, Any, None]],
    rate: float | None,
) -> None:
    """Send all: as fast as PRODUCERS concurrent senders can, or open-loop at `rate`/s."""
    if rate is None:
        pending = iter(envelopes)

        async def worker() -> None:
            for envelope in pending:
                await send(envelope)

        await asyncio.gather(*(worker() for _ in range(PRODUCERS)))
        return
    start = time.monotonic()
    in_flight: list[asyncio.Task[None]] = []
    for i, envelope in enumerate(envelopes):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        in_flight.append(asyncio.create_task(send(envelope)))
    await asyncio.gather(*in_flight)


TIMERS = 10_000


async def _timer_effect(session: AsyncSession, due: DueTimer) -> None:
    """The benchmark's timer handler: one row written in the firing's transaction."""
    await session.execute(text("INSERT INTO timer_effect (timer_id) VALUES (:id)"), {"id": due.id})


async def fire_timers(settings: ServiceSettings, n: int = TIMERS) -> float:
    """Seconds one timer worker takes to fire `n` timers that are all due at once."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO timer (kind, key, due_at)"
                    " SELECT 'bench', g::text, now() FROM generate_series(1, :n) AS g"
                ),
                {"n": n},
            )
        worker = TimerWorker(settings, session_factory(engine), {"bench": _timer_effect})
        started = time.monotonic()
        firing = asyncio.create_task(worker.run())
        try:
            while True:
                async with engine.connect() as conn:
                    if not await conn.scalar(text("SELECT count(*) FROM timer")):
                        break
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
        finally:
            firing.cancel()
            await asyncio.gather(firing, return_exceptions=True)
        async with engine.connect() as conn:
            fired = await conn.scalar(text("SELECT count(*) FROM timer_effect"))
        assert fired == n, f"{fired} of {n} timers left their row"
        return elapsed
    finally:
        await engine.dispose()


async def bare_transactions(settings: ServiceSettings, n: int = TIMERS) -> float:
    """Seconds `n` transactions take that each write a row and delete it, committed on
    ``timer_concurrency`` connections at once: the timer figure's baseline."""
    engine = create_engine(settings)
    sessions = session_factory(engine)
    pending = iter(range(n))

    async def worker() -> None:
        for _ in pending:
            row = {"id": uuid.uuid4()}
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO timer_effect (timer_id) VALUES (:id)"), row)
                await session.execute(text("DELETE FROM timer_effect WHERE timer_id = :id"), row)

    try:
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(settings.timer_concurrency)))
        return time.monotonic() - started
    finally:
        await engine.dispose()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (< 1 min)")
    parser.add_argument("--rate", type=float, default=500.0, help="offered rate for latency")
    parser.add_argument("--serve-consumer", metavar="SETTINGS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_consumer:
        await serve_consumer(ServiceSettings.model_validate_json(args.serve_consumer))
        return
    rounds, n, latency_s = (3, 1000, 1.5) if args.quick else (5, 10000, 10.0)
    latency_n = int(args.rate * latency_s)

    async with throwaway_database() as settings:
        consumer = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-consumer",
            settings.model_dump_json(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        try:
            assert consumer.stdout is not None
            assert (await consumer.stdout.readline()).strip() == b"ready"
            async with Producer(settings, consumer) as producer:
                gc.collect()
                gc.freeze()  # as servicekit's Runtime does at start-up
                for kind in KINDS:  # warm-up
                    await producer.round(kind, 300, None)
                figures: dict[str, list[float]] = {}
                for _ in range(rounds):
                    for kind in KINDS:
                        per_s, sent_per_s, _ = await producer.round(kind, n, None)
                        figures.setdefault(f"{kind}_per_s", []).append(per_s)
                        figures.setdefault(f"{kind}_sent_per_s", []).append(sent_per_s)
                for _ in range(rounds):
                    for kind in KINDS:
                        _, _, latencies = await producer.round(kind, latency_n, args.rate)
                        figures.setdefault(f"{kind}_p50", []).append(_pct(latencies, 0.5))
                        figures.setdefault(f"{kind}_p99", []).append(_pct(latencies, 0.99))
        finally:
            if consumer.stdin is not None:
                consumer.stdin.close()
            await asyncio.wait_for(consumer.wait(), timeout=30)
        timers_baseline_s = await bare_transactions(settings)
        timers_s = await fire_timers(settings)

    med = {key: statistics.median(values) for key, values in figures.items()}
    result = {
        "events_per_s": round(med["pipeline_per_s"], 1),
        "baseline_events_per_s": round(med["baseline_per_s"], 1),
        "throughput_ratio": round(med["pipeline_per_s"] / med["baseline_per_s"], 3),
        "rate_per_s": args.rate,
        "p50_ms": round(med["pipeline_p50"], 2),
        "p99_ms": round(med["pipeline_p99"], 2),
        "baseline_p50_ms": round(med["baseline_p50"], 2),
        "baseline_p99_ms": round(med["baseline_p99"], 2),
        "producer_commits_per_s": round(med["pipeline_sent_per_s"], 1),
        "producer_commit_ratio": round(med["pipeline_sent_per_s"] / med["baseline_per_s"], 3),
        "floor_events_per_s": round(med["floor_per_s"], 1),
        "floor_ratio": round(med["floor_per_s"] / med["baseline_per_s"], 3),
        "floor_p99_ms": round(med["floor_p99"], 2),
        "rounds": rounds,
        "events_per_round": n,
        "timers_10k_s": round(timers_s, 2),
        "timers_baseline_10k_s": round(timers_baseline_s, 2),
        "timer_concurrency": settings.timer_concurrency,
    }
    result["meets_targets"] = (
        result["throughput_ratio"] >= 0.5 and result["p99_ms"] < 50 and timers_s < 10
    )
    kinds = ("pipeline", "baseline", "floor")
    print(f"{'median of ' + str(rounds) + ' rounds':26}" + "".join(f"{k:>12}" for k in kinds))
    for label, key in (("events/s", "per_s"), ("p50 ms @ rate", "p50"), ("p99 ms @ rate", "p99")):
        row = [round(med[f"{kind}_{key}"], 1) for kind in kinds]
        print(f"{label:26}" + "".join(f"{value:>12}" for value in row))
    print("floor: bare commit, bare publish, bare consume, bare commit; no outbox, no batching")
    print(f"throughput ratio {result['throughput_ratio']} (target >= 0.5), p99 target < 50 ms")
    print(
        f"the producer alone committed {result['producer_commits_per_s']} events/s"
        f" ({result['producer_commit_ratio']} of the baseline): the most the pipeline can carry"
    )
    print(
        f"{TIMERS} timers due at once fired in {timers_s:.2f} s (target < 10 s);"
        f" as many bare transactions took {timers_baseline_s:.2f} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    uvloop.run(main())

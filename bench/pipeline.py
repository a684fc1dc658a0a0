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

The consuming side is in bench/pipeline_consumer.py, the timers in
bench/timer_firing.py. Each figure is the median over several rounds. The last
line printed is one JSON object. Usage: ``uv run python bench/pipeline.py [--quick]``.
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
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import uvloop
from sqlalchemy import text
from sqlalchemy.engine import make_url

# The repository root on the import path, for ``bench``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import (
    AMQP_URL,
    ROLE_PASSWORD,
    broker_prefix,
    percentile,
    throwaway_database,
)
from bench.pipeline_consumer import BASELINE_KEY, FLOOR_KEY, PREFETCH, serve_consumer
from bench.timer_firing import TIMERS, bare_transactions, fire_timers
from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from servicekit import driver
from servicekit.bus import declare_events_exchange
from servicekit.db import create_engine, provision_schema, session_factory
from servicekit.migrations import upgrade
from servicekit.outbox import Relay, add_event
from servicekit.settings import ServiceSettings
from tests.servicekit.helpers import MIGRATIONS as PLUMBING_MIGRATIONS

PRODUCERS = 16
KINDS = ("baseline", "pipeline", "floor")


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


@contextlib.asynccontextmanager
async def bench_schema() -> AsyncIterator[ServiceSettings]:
    """Settings of a 'bench' service on a throwaway database whose schema is migrated as a
    service's is (the plumbing's first revision and branch, outbox trigger included), with
    the floor's and the timers' tables; the database and what was declared on the broker
    are dropped afterwards."""
    async with (
        throwaway_database() as url,
        broker_prefix(services=("bench",), queues=("baseline", "floor")) as prefix,
    ):
        role = "klaxon_bench"
        await provision_schema(url, schema="bench", role=role, password=ROLE_PASSWORD)
        service_url = make_url(url).set(username=role, password=ROLE_PASSWORD)
        settings = ServiceSettings(
            service_name="bench",
            database_url=service_url.render_as_string(hide_password=False),
            db_schema="bench",
            amqp_url=AMQP_URL,
            exchange=f"{prefix}.events",
            queue_prefix=prefix,
            consumer_prefetch=PREFETCH,
            db_pool_size=20,
        )
        await upgrade(settings, PLUMBING_MIGRATIONS)
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE floor_row (id uuid PRIMARY KEY, body bytea NOT NULL)")
            )
            await conn.execute(text("CREATE TABLE timer_effect (timer_id uuid PRIMARY KEY)"))
        await engine.dispose()
        yield settings


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
        async with driver.connection(self.engine) as conn, conn.transaction():
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

    async with bench_schema() as settings:
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
                        figures.setdefault(f"{kind}_p50", []).append(percentile(latencies, 0.5))
                        figures.setdefault(f"{kind}_p99", []).append(percentile(latencies, 0.99))
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

"""Benchmark: deliveries through `servicekit.delivery_worker`, against calling the sender directly.

The effect is a real HTTP POST to a local server that answers at once (the
one the delivery tests use); the sender is the same httpx webhook sender in
both runs. Reported:

- ``throughput_per_s``: N deliveries committed in one transaction, from the
  commit until the server has every one, with one worker at the default
  settings (``delivery_concurrency`` sends at once); ``baseline_per_s``: the
  same sender called N times with the same concurrency, no database;
  ``ratio``: the first over the second;
- ``wake_ms_p50`` / ``wake_ms_p99``: one delivery committed at a time, from
  before its commit to the request reaching the server (the worker is woken by
  NOTIFY; its poll interval is the default ``delivery_poll_interval_s``).

Each throughput figure is the median over several rounds. The last line printed
is one JSON object. Usage: ``uv run python bench/deliveries.py [--quick]``.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from servicekit.deliveries import Delivery, enqueue
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings

# The throwaway database, the HTTP server and the sender are the delivery tests' own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.measure import percentile
from tests.harness import throwaway
from tests.servicekit.deliveries_support import (
    CHANNEL,
    Recorder,
    listening,
    recorder,
    webhook,
    webhook_sender,
)
from tests.servicekit.helpers import prepared


async def _baseline(server: Recorder, client: httpx.AsyncClient, n: int, concurrency: int) -> float:
    """Deliveries per second calling the sender directly, `concurrency` at a time."""
    send = webhook_sender(client, server.url)
    gate = asyncio.Semaphore(concurrency)
    now = datetime.now(UTC)

    async def one(i: int) -> None:
        async with gate:
            await send(Delivery(uuid.uuid4(), f"base-{i}", CHANNEL, {}, 1, None, now))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def _through_worker(runtime: Runtime, server: Recorder, n: int, tag: str) -> float:
    """Deliveries per second from one commit of `n` deliveries to the last one's arrival."""
    before = len(server.requests)
    async with runtime.sessions() as session, session.begin():
        for i in range(n):
            await enqueue(session, channel=CHANNEL, dedupe_key=f"{tag}-{i}", payload={})
        started = time.perf_counter()
    while len(server.requests) < before + n:
        await asyncio.sleep(0.001)
    return n / (time.perf_counter() - started)


async def _wake_ms(runtime: Runtime, server: Recorder, rounds: int) -> list[float]:
    """Milliseconds from before each commit to its request's arrival, one at a time."""
    latencies = []
    for i in range(rounds):
        await asyncio.sleep(0.02)
        before = len(server.requests)
        started = time.monotonic()
        async with runtime.sessions() as session, session.begin():
            await enqueue(session, channel=CHANNEL, dedupe_key=f"wake-{i}", payload={})
        while len(server.requests) <= before:
            await asyncio.sleep(0.0005)
        latencies.append((server.requests[before].received_at - started) * 1000)
    return latencies


async def run(quick: bool) -> dict[str, object]:
    n, rounds, wake_rounds = (300, 3, 30) if quick else (2000, 5, 200)
    async with throwaway() as env:
        settings: ServiceSettings = await prepared(env, relay_enabled=False)
        defaults = ServiceSettings()
        settings = settings.model_copy(
            update={"delivery_poll_interval_s": defaults.delivery_poll_interval_s}
        )
        async with recorder() as server, httpx.AsyncClient() as client:
            runtime = Runtime(settings, senders=webhook(client, server.url))
            await runtime.start()
            try:
                await listening(runtime)
                worker, baseline = [], []
                for r in range(rounds):
                    baseline.append(
                        await _baseline(server, client, n, settings.delivery_concurrency)
                    )
                    worker.append(await _through_worker(runtime, server, n, f"r{r}"))
                wake = await _wake_ms(runtime, server, wake_rounds)
            finally:
                await runtime.stop()
    through, base = statistics.median(worker), statistics.median(baseline)
    return {
        "bench": "deliveries",
        "n": n,
        "throughput_per_s": round(through, 1),
        "baseline_per_s": round(base, 1),
        "ratio": round(through / base, 3),
        "wake_ms_p50": round(statistics.median(wake), 2),
        "wake_ms_p99": round(percentile(wake, 0.99), 2),
        "poll_interval_s": settings.delivery_poll_interval_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer deliveries and rounds")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.quick))))


if __name__ == "__main__":
    main()

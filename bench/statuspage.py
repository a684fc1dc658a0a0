"""Benchmark: the public status page under a herd, while monitors keep changing it.

Runs ``python -m statuspage_sync serve`` as a real process (relay, consumer, timers
and the page-version listener running) on a throwaway database and exchange, with
one page of 8 components, each fed by its own monitor. Then, in the same run:

- ``summary.json`` and the HTML page: requests/s and p99 latency with `--clients`
  (64) concurrent keep-alive connections, while `--churn` (5) ``monitor.down`` /
  ``monitor.up`` events a second are published to RabbitMQ, each changing a
  component's status (so the page is rendered again several times a second);
- baseline: the same bytes (``summary.json`` and the HTML as the service rendered
  them) served from memory by a minimal ASGI app under the same server (uvicorn,
  one process), with the same clients;
- ``visible_after_event_ms``: from publishing ``monitor.down`` to ``summary.json``
  showing the outage (polled every 5 ms), median of several trials.

Targets (issue 16): summary.json >= 0.5 of the baseline's rate with p99 < 50 ms;
HTML >= 0.4 of it; a change visible < 1 s after ``monitor.down`` is published.
The load generator is a minimal HTTP/1.1 client on raw asyncio streams. The last
line printed is one JSON object. Usage: ``uv run --frozen python bench/statuspage.py
[--quick]`` (quick: under a minute).
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

# The repository root on the import path, for ``bench``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_load import Connection, closed_loop
from bench.measure import (
    AMQP_URL,
    broker_prefix,
    percentile,
    server,
    service_environment,
    settings_from,
    throwaway_database,
)
from contracts import Envelope
from contracts.common import ProductRef
from contracts.monitor import MonitorCameUp, MonitorWentDown
from servicekit.db import asyncpg_dsn
from servicekit.migrations import upgrade
from statuspage_sync.__main__ import SERVICE
from statuspage_sync.settings import Settings
from tests.harness import free_port

PRODUCT = ProductRef(slug="canvas-hosting", name="Canvas Hosting")
COMPONENTS = 8

BASELINE = """
import sys, uvicorn
bodies = {"/summary.json": open(sys.argv[2], "rb").read(), "/index.html": open(sys.argv[3], "rb").read()}
types = {"/summary.json": b"application/json", "/index.html": b"text/html; charset=utf-8"}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = bodies.get(scope["path"], b"")
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", types.get(scope["path"], b"text/plain")), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
"""


async def herd(port: int, path: str, clients: int, duration_s: float) -> dict[str, float]:
    """`clients` connections GETting `path` as fast as they can for `duration_s`."""

    async def fetched(connection: Connection) -> bool:
        status, _ = await connection.get(path)
        return status == 200

    loop = await closed_loop(port, clients, duration_s, fetched)
    return {
        "rps": len(loop.latencies_s) / loop.elapsed_s,
        "p50_ms": 1000 * percentile(loop.latencies_s, 0.5),
        "p99_ms": 1000 * percentile(loop.latencies_s, 0.99),
        "failures": loop.failures,
    }


async def publish(exchange: aio_pika.abc.AbstractExchange, payload: Any) -> None:
    """Publish an event as the monitor service would."""
    envelope = Envelope.wrap(payload, producer="monitor")
    message = aio_pika.Message(envelope.to_json(), message_id=str(envelope.id))
    await exchange.publish(message, routing_key=envelope.type)


def down(monitor_id: uuid.UUID) -> MonitorWentDown:
    """A monitor went down now."""
    now = datetime.now(UTC)
    return MonitorWentDown(
        monitor_id=monitor_id,
        monitor_name="bench",
        product=PRODUCT,
        error="HTTP 502",
        down_since=now,
    )


def up(monitor_id: uuid.UUID) -> MonitorCameUp:
    """A monitor came back up now."""
    now = datetime.now(UTC)
    return MonitorCameUp(
        monitor_id=monitor_id, monitor_name="bench", product=PRODUCT, down_since=now, up_at=now
    )


async def churn(
    exchange: aio_pika.abc.AbstractExchange, monitors: list[uuid.UUID], per_s: float
) -> None:
    """Flip the monitors down and up, `per_s` events a second, until cancelled."""
    states = dict.fromkeys(monitors, False)
    i = 0
    while True:
        monitor = monitors[i % len(monitors)]
        states[monitor] = not states[monitor]
        await publish(exchange, down(monitor) if states[monitor] else up(monitor))
        i += 1
        await asyncio.sleep(1 / per_s)


async def visible_after(
    exchange: aio_pika.abc.AbstractExchange, port: int, monitor: uuid.UUID, component: str
) -> float:
    """Milliseconds from publishing monitor.down until summary.json shows the outage."""
    connection = Connection(port)
    await connection.open()
    try:
        started = time.perf_counter()
        await publish(exchange, down(monitor))
        while True:
            _, body = await connection.get("/status/bench/api/v2/summary.json")
            statuses = {c["id"]: c["status"] for c in json.loads(body)["components"]}
            if statuses[component] == "major_outage":
                elapsed = 1000 * (time.perf_counter() - started)
                break
            await asyncio.sleep(0.005)
        await publish(exchange, up(monitor))
        await asyncio.sleep(0.3)
        return elapsed
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def serve_baseline(summary: bytes, html: bytes) -> AsyncIterator[int]:
    """The minimal ASGI app serving `summary` and `html` from memory; yields its port."""
    with tempfile.TemporaryDirectory() as tmp:
        summary_file, html_file = Path(tmp, "summary.json"), Path(tmp, "index.html")
        await asyncio.to_thread(summary_file.write_bytes, summary)
        await asyncio.to_thread(html_file.write_bytes, html)
        port = free_port()
        async with server(["-c", BASELINE, str(port), str(summary_file), str(html_file)], {}, port):
            yield port


async def main(args: argparse.Namespace) -> dict[str, Any]:
    duration = 4.0 if args.quick else 15.0
    rounds = 1 if args.quick else 3
    async with throwaway_database() as url, broker_prefix() as prefix:
        port = free_port()
        env = await service_environment(
            url, schema="statuspage", prefix=prefix, public_base_url=f"http://127.0.0.1:{port}"
        )
        settings = settings_from(env, Settings)
        await upgrade(settings, SERVICE.migrations)
        seeding = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        await seeding.execute(
            "INSERT INTO catalogue_product (slug, name, active, changed_at)"
            " VALUES ($1, $2, true, now())",
            PRODUCT.slug,
            PRODUCT.name,
        )
        await seeding.close()
        creating = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "statuspage_sync", "create-api-key", "--scope", "admin"],
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
        )
        key = json.loads((await creating.communicate())[0])["key"]
        serve = ["-m", "statuspage_sync", "serve", "--port", str(port)]
        connection = await aio_pika.connect(AMQP_URL)
        async with server(serve, env, port), connection:
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            monitors = [uuid.uuid4() for _ in range(COMPONENTS)]
            components = []
            async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                page = {"slug": "bench", "title": "Bench", "products": [PRODUCT.slug]}
                (await client.post("/v1/pages", json=page)).raise_for_status()
                for i, monitor in enumerate(monitors):
                    body = {"name": f"Component {i}", "monitor_ids": [str(monitor)]}
                    created = await client.post("/v1/pages/bench/components", json=body)
                    components.append(created.raise_for_status().json()["id"])
                summary_bytes = (await client.get("/status/bench/api/v2/summary.json")).content
                html_bytes = (await client.get("/status/bench/")).content
            channel = await connection.channel()
            exchange = await channel.get_exchange(settings.exchange)
            visible = [
                await visible_after(exchange, port, monitors[0], components[0])
                for _ in range(3 if args.quick else 10)
            ]
            figures: dict[str, list[dict[str, float]]] = {"summary": [], "html": []}
            baseline: dict[str, list[dict[str, float]]] = {"summary": [], "html": []}
            paths = {
                "summary": ("/status/bench/api/v2/summary.json", "/summary.json"),
                "html": ("/status/bench/", "/index.html"),
            }
            churner = asyncio.create_task(churn(exchange, monitors[1:], args.churn))
            try:
                async with serve_baseline(summary_bytes, html_bytes) as base_port:
                    # Interleaved, with the churn going on throughout: both servers share
                    # the machine with the same background work (the service's event
                    # handling, Postgres, RabbitMQ).
                    for _ in range(rounds):
                        for name, (mine, theirs) in paths.items():
                            figures[name].append(await herd(port, mine, args.clients, duration))
                            baseline[name].append(
                                await herd(base_port, theirs, args.clients, duration)
                            )
            finally:
                churner.cancel()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(row[key] for row in rows), 2)

    result = {
        "summary_rps": median(figures["summary"], "rps"),
        "summary_p99_ms": median(figures["summary"], "p99_ms"),
        "html_rps": median(figures["html"], "rps"),
        "html_p99_ms": median(figures["html"], "p99_ms"),
        "baseline_rps": median(baseline["summary"], "rps"),
        "baseline_p99_ms": median(baseline["summary"], "p99_ms"),
        "baseline_html_rps": median(baseline["html"], "rps"),
        "visible_after_event_ms": round(statistics.median(visible), 1),
        "visible_after_event_max_ms": round(max(visible), 1),
        "failures": sum(row["failures"] for rows in figures.values() for row in rows),
        "clients": args.clients,
        "churn_events_per_s": args.churn,
        "round_s": duration,
        "rounds": rounds,
    }
    result["summary_ratio"] = round(result["summary_rps"] / result["baseline_rps"], 3)
    result["html_ratio"] = round(result["html_rps"] / result["baseline_rps"], 3)
    result["html_ratio_vs_html_baseline"] = round(
        result["html_rps"] / result["baseline_html_rps"], 3
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--churn", type=float, default=5.0, help="status changes per second")
    outcome = asyncio.run(main(parser.parse_args()))
    for name in ("summary", "html"):
        print(f"{name}: {outcome[f'{name}_rps']:.0f} req/s, p99 {outcome[f'{name}_p99_ms']} ms")
    print(
        f"baseline: {outcome['baseline_rps']:.0f} req/s; visible after "
        f"{outcome['visible_after_event_ms']} ms"
    )
    print(json.dumps(outcome))

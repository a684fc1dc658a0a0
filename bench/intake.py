"""Benchmark: POST /v1/tickets on the running intake service, beside a bare FastAPI baseline.

Both servers run under uvicorn in their own subprocess, one process each, on a
throwaway database (created and dropped here) and a unique exchange:

- intake: ``python -m intake serve`` with its relay and consumer running; each
  request is authenticated, validated, carries an Idempotency-Key, and inserts
  the ticket, its timeline entry, the idempotency record and the outbox event
  in one transaction (the relay then publishes to RabbitMQ);
- baseline: a FastAPI endpoint (in bench/intake_baseline.py) that inserts one row with
  asyncpg;
- floor: an endpoint beside it that runs the statements of a filing bare (key
  lookup; product and number lookup; in a transaction, one statement that
  claims the Idempotency-Key and inserts the ticket, its timeline entry and the
  outbox row), to show what the round trips alone cost. The floor is the
  yardstick of intake's target: throughput >= 0.3 of it (``intake_to_floor``).

Reported, each the median over several rounds:

- throughput: closed loop, `--clients` concurrent keep-alive connections
  posting as fast as they can;
- latency: open loop at a fixed offered rate (default 200 tickets/s), measured
  from each request's scheduled send time, so a stall is not hidden;
- CPU per request over the throughput rounds, read from ``/proc``: in the
  server's process, and on the whole machine (Postgres, RabbitMQ, the kernel
  and this client included).

The load generator is a minimal HTTP/1.1 client on raw asyncio streams, so it
takes little of the CPU the servers need. The last line printed is one JSON
object. Usage: ``uv run python bench/intake.py [--quick]``.
"""

import argparse
import asyncio
import gc
import hashlib
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

# This file is named like the service package; keep its folder off the import path so
# ``import intake`` finds the service, and put the repository root on it for ``bench``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import intake_baseline  # noqa: E402
from bench.http_load import Connection, closed_loop, open_connections  # noqa: E402
from bench.measure import (  # noqa: E402
    broker_prefix,
    machine_busy_s,
    percentile,
    process_cpu_s,
    server,
    service_environment,
    settings_from,
    throwaway_database,
)
from servicekit.db import asyncpg_dsn  # noqa: E402
from tests.harness import free_port  # noqa: E402

TICKET = {
    "organization": "Bench Org",
    "reporter": {"name": "Bench Reporter", "email": "bench@example.com"},
    "product": "canvas-hosting",
    "severity": "critical",
    "subject": "Every page returns 502",
    "description": "Since 09:12 UTC the site returns 502 for every page.",
    "urls": ["https://bench.example/"],
    "error_text": "502 Bad Gateway",
}


@dataclass
class Target:
    """A server to load and how to call it."""

    name: str
    port: int
    path: str
    headers: dict[str, str]
    idempotency: bool

    async def post(self, connection: Connection, body: bytes) -> int:
        """POST `body` on `connection` (with a fresh Idempotency-Key where it takes one);
        the response's status."""
        extra = {"Idempotency-Key": uuid.uuid4().hex} if self.idempotency else {}
        status, _ = await connection.post(self.path, body, {**self.headers, **extra})
        return status


@dataclass(frozen=True)
class Throughput:
    """A closed loop's outcome."""

    per_s: float
    errors: int
    done: int


async def throughput(target: Target, clients: int, duration_s: float) -> Throughput:
    """Requests per second with `clients` connections posting back to back, and errors."""
    body = json.dumps(TICKET).encode()

    async def filed(connection: Connection) -> bool:
        return await target.post(connection, body) == 201

    loop = await closed_loop(target.port, clients, duration_s, filed)
    done = len(loop.latencies_s) - loop.failures
    return Throughput(done / loop.elapsed_s, loop.failures, done)


async def open_loop(target: Target, rate: float, duration_s: float) -> tuple[list[float], int]:
    """Latencies (ms, from scheduled send time) at a fixed offered rate; and errors."""
    body = json.dumps(TICKET).encode()
    pool = await open_connections(target.port, 64)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in pool:
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status = await target.post(conn, body)
        finally:
            idle.put_nowait(conn)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if status != 201:
            errors += 1

    tasks = []
    start = time.perf_counter()
    total = int(rate * duration_s)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in pool))
    return latencies, errors


# --- setup ---------------------------------------------------------------------------------


async def prepare_intake(db_url: str, prefix: str) -> tuple[dict[str, str], str]:
    """Provision and migrate intake's schema; returns its environment and an API key."""
    from intake.__main__ import SERVICE
    from intake.settings import Settings
    from servicekit.auth import create_api_key
    from servicekit.db import create_engine, session_factory
    from servicekit.migrations import upgrade

    environment = await service_environment(
        db_url, schema="intake", prefix=prefix, db_pool_size="20"
    )
    settings = settings_from(environment, Settings)
    await upgrade(settings, SERVICE.migrations)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            key = await create_api_key(session, name="bench", scopes=["tickets:write"])
            await session.commit()
    finally:
        await engine.dispose()
    return environment, key.secret


async def outbox_backlog(environment: dict[str, str]) -> int:
    """Events not yet published by intake's relay."""
    conn = await asyncpg.connect(asyncpg_dsn(environment["KLAXON_DATABASE_URL"]))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM intake.outbox_event")
        return count
    finally:
        await conn.close()


async def measure(
    target: Target, *, pid: int, rounds: int, clients: int, duration_s: float, rate: float
) -> dict[str, Any]:
    """Median throughput and latency of `target` over `rounds`; and, from the closed loops,
    the CPU a request costs its server process `pid` and the whole machine."""
    await throughput(target, clients, min(duration_s, 2.0))  # warm up
    # Keep the load generator itself from stalling: a full collection of its heap (it
    # imported the service to set up) paused it for ~190 ms, so the requests due in that
    # time went out as one burst, and the figures measured the client, not the server.
    gc.collect()
    gc.freeze()
    throughputs, p50s, p99s, errors = [], [], [], 0
    server_cpu_s = machine_cpu_s = 0.0
    answered = 0
    for _ in range(rounds):
        server_before, machine_before = process_cpu_s(pid), machine_busy_s()
        closed = await throughput(target, clients, duration_s)
        server_cpu_s += process_cpu_s(pid) - server_before
        machine_cpu_s += machine_busy_s() - machine_before
        answered += closed.done + closed.errors
        throughputs.append(closed.per_s)
        latencies, failed_open = await open_loop(target, rate, duration_s)
        p50s.append(percentile(latencies, 0.50))
        p99s.append(percentile(latencies, 0.99))
        errors += closed.errors + failed_open
    return {
        "per_s": statistics.median(throughputs),
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "errors": errors,
        "rounds": [round(t) for t in throughputs],
        "server_cpu_ms": 1000 * server_cpu_s / max(answered, 1),
        "machine_cpu_ms": 1000 * machine_cpu_s / max(answered, 1),
    }


async def run(args: argparse.Namespace) -> None:
    """Set up, run both servers, measure, report."""
    rounds, duration_s = (1, 4.0) if args.quick else (5, 10.0)
    async with throwaway_database() as db_url, broker_prefix() as prefix:
        environment, key = await prepare_intake(db_url, prefix)
        conn = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            await conn.execute(intake_baseline.TABLES)
            await conn.execute(intake_baseline.ADD_KEY, hashlib.sha256(key.encode()).hexdigest())
        finally:
            await conn.close()
        intake_port, baseline_port = free_port(), free_port()
        intake = Target(
            "intake", intake_port, "/v1/tickets", {"Authorization": f"Bearer {key}"}, True
        )
        baseline = Target("baseline", baseline_port, "/baseline", {}, False)
        floor = Target("floor", baseline_port, "/floor", {"Authorization": f"Bearer {key}"}, True)

        async def measured(target: Target, pid: int) -> dict[str, Any]:
            return await measure(
                target,
                pid=pid,
                rounds=rounds,
                clients=args.clients,
                duration_s=duration_s,
                rate=args.rate,
            )

        async with server(
            ["-m", "intake", "serve", "--port", str(intake_port)], environment, intake_port
        ) as pid:
            intake_result = await measured(intake, pid)
            deadline = time.perf_counter() + 30
            backlog = await outbox_backlog(environment)
            while backlog and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
                backlog = await outbox_backlog(environment)
        async with server(
            [str(Path(__file__)), "--serve-baseline", str(baseline_port), asyncpg_dsn(db_url)],
            {},
            baseline_port,
        ) as pid:
            baseline_result = await measured(baseline, pid)
            floor_result = await measured(floor, pid)

    ratio = intake_result["per_s"] / baseline_result["per_s"]
    print(
        f"POST /v1/tickets vs bare FastAPI+asyncpg insert ({rounds} round(s) of {duration_s:.0f} s)"
    )
    print(
        f"{'':10} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'cpu ms/req':>11} {'machine':>8}  rounds (per s)"
    )
    results = (("intake", intake_result), ("baseline", baseline_result), ("floor", floor_result))
    for name, result in results:
        print(
            f"{name:10} {result['per_s']:8.0f} {result['p50_ms']:8.1f} {result['p99_ms']:8.1f}"
            f" {result['errors']:7d} {result['server_cpu_ms']:11.3f}"
            f" {result['machine_cpu_ms']:8.3f}  {result['rounds']}"
        )
    print(
        f"throughput {args.clients} clients closed loop; latency open loop at {args.rate:.0f}/s."
        f" intake/floor = {intake_result['per_s'] / floor_result['per_s']:.2f} (target >= 0.3);"
        f" intake/baseline = {ratio:.2f}; p99 {intake_result['p99_ms']:.1f} ms"
        f" (target < 50); outbox backlog after run: {backlog}"
    )
    print("floor: the filing's statements bare on asyncpg (no validation, relay or framework)")
    print(
        "cpu ms/req: CPU the server process spent per request in the closed loops;"
        " machine: the same for all cores (servers, Postgres, RabbitMQ, this client)"
    )
    print(
        json.dumps(
            {
                "tickets_per_s": round(intake_result["per_s"], 1),
                "baseline_per_s": round(baseline_result["per_s"], 1),
                "ratio": round(ratio, 3),
                "p50_ms": round(intake_result["p50_ms"], 2),
                "p99_ms": round(intake_result["p99_ms"], 2),
                "baseline_p50_ms": round(baseline_result["p50_ms"], 2),
                "baseline_p99_ms": round(baseline_result["p99_ms"], 2),
                "offered_rate_per_s": args.rate,
                "clients": args.clients,
                "rounds": rounds,
                "floor_per_s": round(floor_result["per_s"], 1),
                "intake_to_floor": round(intake_result["per_s"] / floor_result["per_s"], 3),
                "floor_ratio": round(floor_result["per_s"] / baseline_result["per_s"], 3),
                "floor_p99_ms": round(floor_result["p99_ms"], 2),
                "cpu_ms_per_ticket": round(intake_result["server_cpu_ms"], 3),
                "baseline_cpu_ms": round(baseline_result["server_cpu_ms"], 3),
                "floor_cpu_ms": round(floor_result["server_cpu_ms"], 3),
                "machine_cpu_ms_per_ticket": round(intake_result["machine_cpu_ms"], 3),
                "baseline_machine_cpu_ms": round(baseline_result["machine_cpu_ms"], 3),
                "floor_machine_cpu_ms": round(floor_result["machine_cpu_ms"], 3),
                "errors": sum(result["errors"] for _, result in results),
                "outbox_backlog_after": backlog,
            }
        )
    )


def main() -> None:
    """Parse the command line; run the benchmark (or, internally, the baseline server)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0, help="offered rate, tickets/s")
    parser.add_argument(
        "--serve-baseline", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_baseline:
        intake_baseline.serve(int(args.serve_baseline[0]), args.serve_baseline[1])
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

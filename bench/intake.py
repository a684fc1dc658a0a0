"""Benchmark: POST /v1/tickets on the running intake service, beside a bare FastAPI baseline.

Both servers run under uvicorn in their own subprocess, one process each, on a
throwaway database (created and dropped here) and a unique exchange:

- intake: ``python -m intake serve`` with its relay and consumer running; each
  request is authenticated, validated, carries an Idempotency-Key, and inserts
  the ticket, its timeline entry, the idempotency record and the outbox event
  in one transaction (the relay then publishes to RabbitMQ);
- baseline: a FastAPI endpoint (defined here) that inserts one row with asyncpg;
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
import contextlib
import gc
import hashlib
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

# This file is named like the service package; keep its folder off the import path so
# ``import intake`` finds the service.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

ADMIN_URL = os.environ.get(
    "KLAXON_BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KLAXON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROLE_PASSWORD = "klaxon-bench"

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- the baseline server ---------------------------------------------------------------


def serve_baseline(port: int, dsn: str) -> None:
    """A bare FastAPI app whose one endpoint inserts one row with asyncpg."""
    from collections.abc import AsyncIterator as Iter
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Iter[None]:
        pool["db"] = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        try:
            yield
        finally:
            await pool["db"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/baseline", status_code=201)
    async def insert(request: Request) -> JSONResponse:
        body = await request.body()
        row_id = uuid.uuid4()
        await pool["db"].execute(
            "INSERT INTO baseline (id, body) VALUES ($1, $2::jsonb)", row_id, body.decode()
        )
        return JSONResponse({"id": str(row_id)}, status_code=201)

    @app.post("/floor", status_code=201)
    async def file_bare(request: Request) -> JSONResponse:
        """The round trips a filing needs, bare: no validation, no relay, no framework."""
        body = (await request.body()).decode()
        token = request.headers["authorization"].removeprefix("Bearer ")
        key = request.headers["idempotency-key"]
        async with pool["db"].acquire() as conn:
            if await conn.fetchrow(FLOOR_AUTH, hashlib.sha256(token.encode()).hexdigest()) is None:
                return JSONResponse({"title": "Unauthorized"}, status_code=401)
        async with pool["db"].acquire() as conn:
            found = await conn.fetchrow(FLOOR_LOOKUP, "canvas-hosting")
            ticket_id = uuid.uuid4()
            answer = json.dumps({"id": str(ticket_id), "number": f"KLX-{found['seq']}"})
            fingerprint = hashlib.sha256(body.encode()).hexdigest()
            async with conn.transaction():
                await conn.execute(
                    FLOOR_FILE, ticket_id, body, answer, key, fingerprint, answer.encode()
                )
        return JSONResponse(json.loads(answer), status_code=201)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


FLOOR_TABLES = """
CREATE TABLE floor_key (key_hash text PRIMARY KEY, scopes text[] NOT NULL);
CREATE TABLE floor_idempotency (
    key text PRIMARY KEY, request_hash text NOT NULL, response jsonb NOT NULL
);
CREATE TABLE floor_product (slug text PRIMARY KEY, name text NOT NULL);
CREATE SEQUENCE floor_number;
CREATE TABLE floor_ticket (id uuid PRIMARY KEY, body jsonb NOT NULL);
CREATE TABLE floor_event (id bigserial PRIMARY KEY, ticket_id uuid NOT NULL, kind text NOT NULL);
CREATE TABLE floor_outbox (seq bigserial PRIMARY KEY, id uuid NOT NULL, body bytea NOT NULL);
INSERT INTO floor_product VALUES ('canvas-hosting', 'Canvas Hosting');
"""
FLOOR_AUTH = "SELECT scopes FROM floor_key WHERE key_hash = $1"
FLOOR_LOOKUP = (
    "SELECT name, nextval('floor_number') AS seq, now() FROM floor_product WHERE slug = $1"
)
FLOOR_FILE = (
    "WITH claim AS (INSERT INTO floor_idempotency VALUES ($4, $5, $3::jsonb)"
    " ON CONFLICT DO NOTHING RETURNING key),"
    " ticket AS (INSERT INTO floor_ticket (id, body) SELECT $1, $2::jsonb FROM claim),"
    " entry AS (INSERT INTO floor_event (ticket_id, kind) SELECT $1, 'filed' FROM claim)"
    " INSERT INTO floor_outbox (id, body) SELECT $1, $6 FROM claim"
)
"""The floor: the statements of a filing (key lookup; product lookup; in a transaction, one
statement that claims the Idempotency-Key and inserts) written bare, to show what the round
trips alone cost beside the baseline."""


# --- a minimal keep-alive HTTP/1.1 client ----------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the status."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.port = port
        self.path = path
        self.headers = headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        """Disconnect."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def post(self, body: bytes, extra: dict[str, str]) -> int:
        """POST `body`; returns the status code once the whole response is read."""
        if self.reader is None or self.writer is None:
            raise RuntimeError("connection not open")
        head = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in {**self.headers, **extra}.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        self.writer.write("\r\n".join(head).encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return status


@dataclass
class Target:
    """A server to load and how to call it."""

    name: str
    port: int
    path: str
    headers: dict[str, str]
    idempotency: bool


async def _connections(target: Target, n: int) -> list[Connection]:
    conns = [Connection(target.port, target.path, target.headers) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in conns))
    return conns


def _extra(target: Target) -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex} if target.idempotency else {}


@dataclass(frozen=True)
class Throughput:
    """A closed loop's outcome."""

    per_s: float
    errors: int
    done: int


async def closed_loop(target: Target, clients: int, duration_s: float) -> Throughput:
    """Requests per second with `clients` connections posting back to back, and errors."""
    body = json.dumps(TICKET).encode()
    conns = await _connections(target, clients)
    done = 0
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def client(conn: Connection) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            status = await conn.post(body, _extra(target))
            if status == 201:
                done += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in conns))
    return Throughput(done / elapsed, errors, done)


async def open_loop(target: Target, rate: float, duration_s: float) -> tuple[list[float], int]:
    """Latencies (ms, from scheduled send time) at a fixed offered rate; and errors."""
    body = json.dumps(TICKET).encode()
    pool = await _connections(target, 64)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in pool:
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status = await conn.post(body, _extra(target))
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


_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy: user, nice, system, irq and
    softirq (not idle, not waiting on I/O, not stolen by the hypervisor)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) * _TICK_S


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- setup: database, servers ------------------------------------------------------------


@contextlib.asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    """Create a database for this run (dropped afterwards); yields its superuser URL."""
    name = f"klaxon_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(_dsn(ADMIN_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def prepare_intake(db_url: str, prefix: str) -> tuple[dict[str, str], str]:
    """Provision and migrate intake's schema; returns its environment and an API key."""
    from intake.__main__ import SERVICE
    from intake.settings import Settings
    from servicekit.auth import create_api_key
    from servicekit.db import create_engine, provision_schema, session_factory
    from servicekit.migrations import upgrade

    role = "klaxon_intake"
    await provision_schema(db_url, schema="intake", role=role, password=ROLE_PASSWORD)
    service_url = make_url(db_url).set(username=role, password=ROLE_PASSWORD)
    environment = {
        "KLAXON_DATABASE_URL": service_url.render_as_string(hide_password=False),
        "KLAXON_DB_SCHEMA": "intake",
        "KLAXON_AMQP_URL": AMQP_URL,
        "KLAXON_EXCHANGE": f"{prefix}.events",
        "KLAXON_QUEUE_PREFIX": prefix,
        "KLAXON_LOG_LEVEL": "WARNING",
        "KLAXON_DB_POOL_SIZE": "20",
    }
    settings = Settings.model_validate(
        {k.removeprefix("KLAXON_").lower(): v for k, v in environment.items()}
    )
    await upgrade(settings, SERVICE.migrations)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            key = await create_api_key(session, name="bench", scopes=["tickets:write"])
            await session.commit()
    finally:
        await engine.dispose()
    return environment, key.secret


@contextlib.asynccontextmanager
async def server(args: list[str], env: dict[str, str], port: int) -> AsyncIterator[int]:
    """Run a server subprocess until it answers on `port`; yields its pid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.perf_counter() + 30
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"server {args} exited with {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"server {args} did not start") from None
                await asyncio.sleep(0.1)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def delete_broker_objects(prefix: str) -> None:
    """Delete the exchanges and queues the intake run declared."""
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for queue in (f"{prefix}.intake", f"{prefix}.intake.dead", f"{prefix}.events.unrouted"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in (f"{prefix}.events", f"{prefix}.events.unrouted", f"{prefix}.intake.dead"):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)


async def outbox_backlog(environment: dict[str, str]) -> int:
    """Events not yet published by intake's relay."""
    conn = await asyncpg.connect(_dsn(environment["KLAXON_DATABASE_URL"]))
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
    await closed_loop(target, clients, min(duration_s, 2.0))  # warm up
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
        closed = await closed_loop(target, clients, duration_s)
        server_cpu_s += process_cpu_s(pid) - server_before
        machine_cpu_s += machine_busy_s() - machine_before
        answered += closed.done + closed.errors
        throughputs.append(closed.per_s)
        latencies, failed_open = await open_loop(target, rate, duration_s)
        p50s.append(_pct(latencies, 0.50))
        p99s.append(_pct(latencies, 0.99))
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
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    async with throwaway_database() as db_url:
        conn = await asyncpg.connect(_dsn(db_url))
        try:
            await conn.execute(
                "CREATE TABLE baseline (id uuid PRIMARY KEY, body jsonb NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(FLOOR_TABLES)
        finally:
            await conn.close()
        environment, key = await prepare_intake(db_url, prefix)
        conn = await asyncpg.connect(_dsn(db_url))
        try:
            await conn.execute(
                "INSERT INTO floor_key VALUES ($1, '{tickets:write}')",
                hashlib.sha256(key.encode()).hexdigest(),
            )
        finally:
            await conn.close()
        intake_port, baseline_port = _free_port(), _free_port()
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

        try:
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
                [str(Path(__file__)), "--serve-baseline", str(baseline_port), _dsn(db_url)],
                {},
                baseline_port,
            ) as pid:
                baseline_result = await measured(baseline, pid)
                floor_result = await measured(floor, pid)
        finally:
            await delete_broker_objects(prefix)

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
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

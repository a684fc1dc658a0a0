"""Benchmark: the monitor service checking N monitors, beside a bare httpx loop.

Everything runs on this machine against the real Postgres and RabbitMQ, on a
throwaway database and exchange (created and dropped here):

- target: a minimal asyncio HTTP server in its own process (bench/monitor_target.py)
  answering 200 to every path; it counts requests, and a request repeating a
  (path, ``X-Klaxon-Due``) pair already seen is a duplicate check. ``/_fail?path=``
  makes a path answer 500.
- service: ``python -m monitor serve`` as a real process (one replica, later two).
- baseline: a process running a bare loop of N concurrent httpx GETs, each path
  requested once per interval, against the same target, beside the service's steady
  state in ``--quick`` and after it in full mode (each one's CPU is read from its own
  process).

Phases: apply N monitors as code (timed); steady state with one replica (checks/s,
schedule lag p50/p99 as the target sees it: arrival minus the check's due time, CPU
per check, peak RSS) and the baseline (its CPU per request); two replicas (duplicate checks, while
one target path is switched down: detection time to ``monitor.down`` on the
broker, and create/list latency with N monitors present); bytes stored per
result row times the checks a monitor makes in a day at 60 s; restart of every
replica and the time until every monitor has been checked again.

Full mode: 10,000 monitors at a 60 s interval. ``--quick``: 1,000 monitors at a
10 s interval, in under a minute (the per-check figures do not depend on the
interval; bytes per monitor-day are always given for a 60 s interval). The last
line printed is one JSON object. Usage: ``uv run python bench/monitor.py [--quick]``.
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# This file is named like the service package; keep its folder off the import path so
# ``import monitor`` finds the service, and put the repository root on it for ``bench``
# and ``tests``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import aio_pika  # noqa: E402
import httpx  # noqa: E402

from bench.measure import (  # noqa: E402
    AMQP_URL,
    peak_rss_mb,
    percentile,
    process_cpu_s,
    server,
)
from bench.monitor_target import run_baseline, serve_target  # noqa: E402
from contracts import Envelope  # noqa: E402
from tests.harness import free_port  # noqa: E402

DETECT_INTERVAL_S = 3.0
DETECT_RECHECK_S = 1.0
DETECT_FAILURES = 2
"""The monitor whose outage is timed: its bound is interval + (N-1) x re-check + 1 s."""


# --- the run ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def subprocess(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process of this script, its output read here, killed afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def target_stats(client: httpx.AsyncClient, since: float = 0.0) -> dict[str, Any]:
    """The target's counters."""
    stats: dict[str, Any] = (await client.get(f"/_stats?since={since}")).json()
    return stats


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every phase; returns the figures."""
    from monitor.settings import Settings
    from servicekit.auth import create_api_key
    from servicekit.db import create_engine, session_factory
    from servicekit.outgoing import LOOPBACK
    from servicekit.tables import catalogue_product
    from tests.harness import start_process, throwaway
    from tests.monitor.helpers import MIGRATIONS

    n = args.monitors
    interval_s = args.interval
    steady_s = args.steady
    figures: dict[str, Any] = {"monitors": n, "interval_s": interval_s, "quick": args.quick}
    target_port = free_port()
    async with (
        server([__file__, "--serve-target", str(target_port)], {}, target_port),
        throwaway() as env,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{target_port}", timeout=10) as target,
    ):
        settings = env.settings(
            Settings,
            schema="monitor",
            outgoing_allow=list(LOOPBACK),
            min_interval_s=1.0,
            default_interval_s=interval_s,
            default_timeout_s=5.0,
            scheduler_concurrency=500,
            health_sample_interval_s=1.0,
            log_json=True,
            log_level="WARNING",
        )
        await env.provision(settings, MIGRATIONS)
        engine = create_engine(settings)
        async with session_factory(engine)() as session:
            await session.execute(
                catalogue_product.insert().values(
                    slug="canvas-hosting",
                    name="Canvas Hosting",
                    active=True,
                    changed_at=datetime.now(UTC),
                )
            )
            key = (await create_api_key(session, name="bench", scopes=["monitors:write"])).secret
            await session.commit()
        auth = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{target_port}"

        def replica() -> Settings:
            return settings.model_copy(update={"replica_id": uuid.uuid4()})

        phases: dict[str, float] = {}
        phase_start = time.monotonic()
        one = await start_process(replica(), "monitor")
        two = None
        try:
            await one.wait_ready()
            doc: list[dict[str, Any]] = [
                {"name": f"m{i:05d}", "product": "canvas-hosting", "url": f"{base}/m{i}"}
                for i in range(n)
            ]
            doc.append(
                {
                    "name": "detect",
                    "product": "canvas-hosting",
                    "url": f"{base}/detect",
                    "interval_s": DETECT_INTERVAL_S,
                    "recheck_s": DETECT_RECHECK_S,
                    "failures_to_down": DETECT_FAILURES,
                }
            )
            async with httpx.AsyncClient(base_url=one.base_url, headers=auth, timeout=300) as api:
                started = time.perf_counter()
                applied = await api.post("/v1/monitors/apply", json=doc)
                figures["apply_s"] = round(time.perf_counter() - started, 3)
                assert applied.status_code == 200, applied.text
                figures["apply_10k_s"] = figures["apply_s"]

            phases["apply"] = round(time.monotonic() - phase_start, 1)
            # steady state, one replica (the first checks are spread over an interval), and
            # the bare loop against the same target: beside it in --quick (to finish in a
            # minute), after it in full mode; each's CPU is read from its own process
            await asyncio.sleep(min(interval_s, 3.0))
            rows0, size0 = await result_storage(engine)
            baseline_args = ("--baseline", base, str(n), str(interval_s), str(steady_s))
            async with contextlib.AsyncExitStack() as beside:
                if args.quick:
                    baseline = await beside.enter_async_context(subprocess(*baseline_args))
                await target.get("/_lags")
                before = await target_stats(target)
                cpu0 = process_cpu_s(one.process.pid)
                await asyncio.sleep(steady_s)
                cpu1 = process_cpu_s(one.process.pid)
                after = await target_stats(target)
                if not args.quick:
                    baseline = await beside.enter_async_context(subprocess(*baseline_args))
                assert baseline.stdout is not None
                try:
                    line = await asyncio.wait_for(baseline.stdout.readline(), steady_s * 2 + 30)
                except TimeoutError:  # a bare loop that cannot keep up never finishes
                    line = b'{"requests": 0, "cpu_s": 0}'
            bare = json.loads(line)
            checks = after["checks"] - before["checks"]
            figures["checks_per_s"] = round(checks / steady_s, 1)
            figures["expected_checks_per_s"] = round(n / interval_s, 1)
            figures["cpu_per_check_ms"] = round(1000 * (cpu1 - cpu0) / max(checks, 1), 3)
            # schedule lag as the target sees it: arrival minus the due time the check carries
            figures["lag_p50_s"] = after["lag_p50_s"] and round(after["lag_p50_s"], 4)
            figures["lag_p99_s"] = after["lag_p99_s"] and round(after["lag_p99_s"], 4)
            figures["peak_rss_mb"] = round(peak_rss_mb(one.process.pid), 1)
            figures["baseline_requests_per_s"] = round(bare["requests"] / steady_s, 1)
            if bare["requests"]:
                figures["baseline_cpu_per_request_ms"] = round(
                    1000 * bare["cpu_s"] / bare["requests"], 3
                )
                figures["cpu_per_check_ratio"] = round(
                    figures["cpu_per_check_ms"] / figures["baseline_cpu_per_request_ms"], 2
                )
            else:
                figures["baseline_cpu_per_request_ms"] = figures["cpu_per_check_ratio"] = None

            phases["steady"] = round(time.monotonic() - phase_start, 1)
            # two replicas: duplicates, detection, API latency with N present
            two = await start_process(replica(), "monitor")
            await two.wait_ready()
            dup0 = (await target_stats(target))["duplicates"]
            async with one.client(headers=auth) as api:
                try:
                    figures["detect_s"] = await detection(env, target, auth)
                except TimeoutError:
                    figures["detect_s"] = None  # no monitor.down within a minute
                figures["detect_bound_s"] = (
                    DETECT_INTERVAL_S + (DETECT_FAILURES - 1) * DETECT_RECHECK_S + 1.0
                )
                creates, lists = [], []
                for i in range(args.api_samples):
                    t0 = time.perf_counter()
                    made = await api.post(
                        "/v1/monitors",
                        json={
                            "name": f"extra-{i}",
                            "product": "canvas-hosting",
                            "url": f"{base}/extra{i}",
                            "paused": True,
                        },
                    )
                    creates.append(time.perf_counter() - t0)
                    assert made.status_code == 201, made.text
                    t0 = time.perf_counter()
                    listed = await api.get(f"/v1/monitors?limit=100&after=m{(i * 37) % n:05d}")
                    lists.append(time.perf_counter() - t0)
                    assert listed.status_code == 200
            figures["create_p99_ms"] = round(1000 * percentile(creates, 0.99), 2)
            figures["create_p50_ms"] = round(1000 * statistics.median(creates), 2)
            figures["list_p99_ms"] = round(1000 * percentile(lists, 0.99), 2)
            figures["list_p50_ms"] = round(1000 * statistics.median(lists), 2)
            await asyncio.sleep(2)
            figures["duplicate_checks"] = (await target_stats(target))["duplicates"] - dup0

            phases["two_replicas"] = round(time.monotonic() - phase_start, 1)
            # storage: what the results table grew by per result, for a monitor checked
            # every 60 s (the growth, so the table's fixed first pages are not counted)
            rows, size = await result_storage(engine)
            figures["result_rows"] = rows
            figures["bytes_per_result"] = round((size - size0) / max(rows - rows0, 1), 1)
            figures["bytes_per_monitor_day"] = round(figures["bytes_per_result"] * 1440)
            phases["storage"] = round(time.monotonic() - phase_start, 1)
            # restart every replica; time until every monitor is checked again
            await asyncio.gather(one.terminate(), two.terminate())
            restart_at = time.time()
            one = await start_process(replica(), "monitor")
            await one.wait_ready()
            deadline = time.monotonic() + interval_s * 3 + 30
            while time.monotonic() < deadline:
                fresh = (await target_stats(target, since=restart_at))["fresh"]
                if fresh >= n:
                    break
                await asyncio.sleep(0.2)
            figures["restart_all_checked_s"] = round(time.time() - restart_at, 2)
            figures["restart_checked"] = fresh
            phases["restart"] = round(time.monotonic() - phase_start, 1)
            figures["phases_s"] = phases
        finally:
            await one.kill()
            if two is not None:
                await two.kill()
            await engine.dispose()
    return figures


async def result_storage(engine: Any) -> tuple[int, int]:
    """Rows in the results table, and its size with its indexes, in bytes."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        rows = await conn.scalar(text("SELECT count(*) FROM check_result"))
        size = await conn.scalar(text("SELECT pg_total_relation_size('check_result')"))
    return int(rows), int(size)


async def detection(env: Any, target: httpx.AsyncClient, auth: dict[str, str]) -> float:
    """Seconds from switching the ``detect`` path down to ``monitor.down`` on the broker."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            env.exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": f"{env.exchange}.unrouted"},
        )
        queue = await channel.declare_queue(f"{env.prefix}.tap", durable=True)
        await queue.bind(exchange, routing_key="monitor.down")
        switched = time.monotonic()
        await target.get("/_fail?path=/detect")
        async with asyncio.timeout(60), queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    envelope = Envelope.from_json(message.body)
                    if envelope.payload.get("monitor_name") == "detect":
                        return round(time.monotonic() - switched, 3)
    raise AssertionError("no monitor.down")


def targets_met(f: dict[str, Any]) -> dict[str, bool]:
    """Each target of the issue, met or not."""
    return {
        "lag_p99_under_2s": f["lag_p99_s"] is not None and f["lag_p99_s"] < 2,
        "rss_under_300mb": f["peak_rss_mb"] < 300,
        "cpu_ratio_at_most_3": f["cpu_per_check_ratio"] is not None
        and f["cpu_per_check_ratio"] <= 3,
        "bytes_per_monitor_day_at_most_100kb": f["bytes_per_monitor_day"] <= 100_000,
        "no_duplicates": f["duplicate_checks"] == 0,
        "detect_within_bound": f["detect_s"] is not None and f["detect_s"] <= f["detect_bound_s"],
        "apply_under_30s": f["apply_s"] < 30,
        "create_list_p99_under_50ms": f["create_p99_ms"] < 50 and f["list_p99_ms"] < 50,
        "all_checked_within_interval": f["restart_checked"] >= f["monitors"]
        and f["restart_all_checked_s"] <= f["interval_s"] + 10,
    }


def main() -> None:
    """Parse arguments and run (or serve one of the helper processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 monitors, under a minute")
    parser.add_argument("--monitors", type=int)
    parser.add_argument("--interval", type=float)
    parser.add_argument("--steady", type=float)
    parser.add_argument("--api-samples", type=int)
    parser.add_argument("--serve-target", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        serve_target(args.serve_target)
        return
    if args.baseline:
        url, n, interval, duration = args.baseline
        run_baseline(url, int(n), float(interval), float(duration))
        return
    args.monitors = args.monitors or (1000 if args.quick else 10_000)
    args.interval = args.interval or (10.0 if args.quick else 60.0)
    args.steady = args.steady or (10.0 if args.quick else 120.0)
    args.api_samples = args.api_samples or (30 if args.quick else 300)
    started = time.monotonic()
    figures = asyncio.run(run(args))
    figures["targets_met"] = targets_met(figures)
    figures["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

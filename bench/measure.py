"""What the benchmarks measure with and run on.

CPU time read from ``/proc``, percentiles, and the scaffolding of a run: a throwaway
database, a service's environment on it, server subprocesses, and deleting what a run
declared on the broker. Postgres and RabbitMQ are found through ``KLAXON_BENCH_ADMIN_URL``
and ``KLAXON_BENCH_AMQP_URL``.
"""

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy.engine import make_url

from contracts.topology import SERVICES
from servicekit.db import provision_schema
from servicekit.settings import ServiceSettings
from tests import harness
from tests.harness import delete_broker_objects

ADMIN_URL = os.environ.get(
    "KLAXON_BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
"""A superuser's URL; the throwaway databases are created and dropped through it."""
AMQP_URL = os.environ.get("KLAXON_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROLE_PASSWORD = "klaxon-bench"
"""The password of every service role a benchmark provisions."""

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
"""Seconds in one clock tick, the unit of the CPU times in ``/proc``."""

S = TypeVar("S", bound=ServiceSettings)


# --- CPU, memory, percentiles --------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) process `pid` has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def machine_busy_s() -> float:
    """CPU seconds all cores have been busy since boot, from /proc/stat:
    busy = total - idle - iowait - steal.

    Total is user + nice + system + idle + iowait + irq + softirq + steal (the guest
    columns are left out: they are counted in user and nice already). Steal is time the
    hypervisor gave to other guests while this machine had work to run: it is not work
    done here, so it is not busy.
    """
    with open("/proc/stat") as stat:
        columns = stat.readline().split()[1:9]
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, columns)
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait - steal) * TICK_S


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of process `pid` (VmHWM in /proc/<pid>/status), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0 to 1) of `values` by nearest rank: the sorted values' entry at
    index floor(q x n), the last one for q = 1; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- a throwaway database, a service's environment on it -----------------------------------


def throwaway_database() -> contextlib.AbstractAsyncContextManager[str]:
    """Create a database for this run (dropped afterwards); yields its superuser URL."""
    return harness.throwaway_database(f"klaxon_bench_{uuid.uuid4().hex[:10]}", admin_url=ADMIN_URL)


async def service_environment(
    db_url: str, *, schema: str, prefix: str, **extra: str
) -> dict[str, str]:
    """Provision `schema` and its role ``klaxon_<schema>`` on the database at `db_url`;
    returns the ``KLAXON_*`` environment a service process runs with there: that role,
    an exchange and queues named under `prefix`, log level WARNING, and each of `extra`
    (``db_pool_size="20"`` is ``KLAXON_DB_POOL_SIZE=20``)."""
    role = f"klaxon_{schema}"
    await provision_schema(db_url, schema=schema, role=role, password=ROLE_PASSWORD)
    service_url = make_url(db_url).set(username=role, password=ROLE_PASSWORD)
    return {
        "KLAXON_DATABASE_URL": service_url.render_as_string(hide_password=False),
        "KLAXON_DB_SCHEMA": schema,
        "KLAXON_AMQP_URL": AMQP_URL,
        "KLAXON_EXCHANGE": f"{prefix}.events",
        "KLAXON_QUEUE_PREFIX": prefix,
        "KLAXON_LOG_LEVEL": "WARNING",
        **{f"KLAXON_{name.upper()}": value for name, value in extra.items()},
    }


def settings_from(environment: Mapping[str, str], cls: type[S]) -> S:
    """The settings a service process reads from `environment`."""
    return cls.model_validate(
        {name.removeprefix("KLAXON_").lower(): value for name, value in environment.items()}
    )


# --- server subprocesses -------------------------------------------------------------------


async def wait_listening(
    port: int, process: asyncio.subprocess.Process, *, timeout_s: float = 30.0
) -> None:
    """Wait until something accepts connections on `port`; fail if `process` exits first
    or `timeout_s` passes."""
    deadline = time.perf_counter() + timeout_s
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"nothing answered on port {port}") from None
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


@contextlib.asynccontextmanager
async def server(args: Sequence[str], env: Mapping[str, str], port: int) -> AsyncIterator[int]:
    """Run ``python <args>`` with `env` added to this environment until it answers on
    `port`; yields its pid. Stopped with SIGTERM afterwards (SIGKILL after 10 s)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_listening(port, process)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- the broker ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def broker_prefix(
    services: Iterable[str] = SERVICES, queues: Iterable[str] = ()
) -> AsyncIterator[str]:
    """A prefix of this run's own for exchange and queue names; what was declared under it
    is deleted afterwards (`delete_broker_objects`), once whatever ran inside has stopped."""
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        await delete_broker_objects(prefix, services, queues, amqp_url=AMQP_URL)

"""Throwaway databases and broker names on the real Postgres and RabbitMQ.

Every test gets a database of its own (dropped afterwards) and a unique
exchange/queue prefix (deleted afterwards); nothing is faked.
"""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from servicekit.db import asyncpg_dsn, provision_schema
from servicekit.migrations import upgrade
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings

ADMIN_URL = os.environ.get(
    "KLAXON_TEST_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KLAXON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

S = TypeVar("S", bound=ServiceSettings)


@dataclass
class Throwaway:
    """One test's database and broker namespace."""

    database_url: str
    prefix: str

    @property
    def exchange(self) -> str:
        """The test's events exchange."""
        return f"{self.prefix}.events"

    def settings(self, cls: type[S], *, schema: str, **overrides: object) -> S:
        """Settings for a service connected as its own role to this test's database."""
        url = make_url(self.database_url).set(username=f"klaxon_{schema}", password="klaxon")
        values: dict[str, object] = {
            "database_url": url.render_as_string(hide_password=False),
            "db_schema": schema,
            "amqp_url": AMQP_URL,
            "exchange": self.exchange,
            "queue_prefix": self.prefix,
            "relay_poll_interval_s": 0.2,
            "timer_poll_interval_s": 0.05,
            "consumer_retry_delay_s": 0.05,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 1.0,
            "health_sample_interval_s": 0.2,
            "log_json": False,
        }
        values.update(overrides)
        return cls.model_validate(values)

    async def provision(self, settings: ServiceSettings, migrations: Path | None) -> None:
        """Create the service's role and schema, then migrate it (as that role)."""
        await provision_schema(
            self.database_url,
            schema=settings.db_schema,
            role=f"klaxon_{settings.db_schema}",
            password="klaxon",
        )
        if migrations is not None:
            await upgrade(settings, migrations)


@contextlib.asynccontextmanager
async def throwaway() -> AsyncIterator[Throwaway]:
    """Create a database and a broker prefix; drop both afterwards."""
    token = uuid.uuid4().hex[:12]
    name = f"klaxon_t_{token}"
    admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    env = Throwaway(database_url=url, prefix=f"t{token}")
    try:
        yield env
    finally:
        await _delete_broker_objects(env.prefix)
        admin = await asyncpg.connect(asyncpg_dsn(ADMIN_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _delete_broker_objects(prefix: str) -> None:
    """Delete the exchanges and queues a test declared under `prefix`."""
    names = [f"{prefix}.{svc}" for svc in ("intake", "monitor", "notifier", "statuspage", "test")]
    queues = [
        *names,
        *(f"{n}.dead" for n in names),
        f"{prefix}.events.unrouted",
        f"{prefix}.baseline",
        f"{prefix}.tap",
    ]
    exchanges = [f"{prefix}.events", f"{prefix}.events.unrouted", *(f"{n}.dead" for n in names)]
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(AMQP_URL, timeout=10)
        async with connection:
            for queue in queues:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(queue)
            for exchange in exchanges:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)


async def eventually(
    check: Callable[[], object], *, timeout_s: float = 10.0, interval_s: float = 0.05
) -> None:
    """Wait until `check()` (sync or async) returns truthy; fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {check}")
        await asyncio.sleep(interval_s)


async def wait_connected(runtime: Runtime, timeout_s: float = 10.0) -> None:
    """Wait until a runtime's relay and consumer are connected to the broker."""
    async with asyncio.timeout(timeout_s):
        while not all(
            loop.connected for loop in (runtime.relay, runtime.consumer) if loop is not None
        ):
            await asyncio.sleep(0.02)

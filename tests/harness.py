"""Throwaway databases and broker names on the real Postgres and RabbitMQ, and any
service run on them.

Every test gets a database of its own (dropped afterwards) and a unique
exchange/queue prefix (deleted afterwards); nothing is faked. On top of that:

- `service_in_process(env, SERVICE)`: a service's app with its lifespan, provisioned and
  migrated, and an httpx client for it (``SERVICE`` is the service's
  `servicekit.cli.ServiceDefinition`, from ``<package>.__main__``);
- `service_process(env, SERVICE)`: the same as a real ``python -m <package> serve`` on a
  free port, ready when it answers ``/readyz``; `ServiceProcess.kill` (SIGKILL) and
  `ServiceProcess.terminate`;
Events on a test's exchange (publish one, tap them) are in `tests.events`; a real SMTP
server is in `tests.smtp`.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from contracts.topology import SERVICES
from servicekit.cli import ServiceDefinition, migrate
from servicekit.db import asyncpg_dsn, provision_schema
from servicekit.migrations import upgrade
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings

ADMIN_URL = os.environ.get(
    "KLAXON_TEST_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KLAXON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

S = TypeVar("S", bound=ServiceSettings)

ROOT = Path(__file__).resolve().parents[1]


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
async def throwaway_database(name: str, *, admin_url: str = ADMIN_URL) -> AsyncIterator[str]:
    """Create the database `name` (dropped afterwards); yields its superuser URL."""
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def throwaway() -> AsyncIterator[Throwaway]:
    """Create a database and a broker prefix; drop both afterwards."""
    token = uuid.uuid4().hex[:12]
    async with throwaway_database(f"klaxon_t_{token}") as url:
        env = Throwaway(database_url=url, prefix=f"t{token}")
        try:
            yield env
        finally:
            await delete_broker_objects(env.prefix)


async def delete_broker_objects(
    prefix: str,
    services: Iterable[str] = (*SERVICES, "test"),
    queues: Iterable[str] = ("baseline", "tap"),
    *,
    amqp_url: str = AMQP_URL,
) -> None:
    """Delete what a test or benchmark declared under `prefix`: the events exchange and its
    alternate (exchange and queue), each of `services`' queue and dead-letter exchange and
    queue, and the queues `queues` (names under `prefix`). What is not there is passed over."""
    names = [f"{prefix}.{service}" for service in services]
    unrouted = f"{prefix}.events.unrouted"
    queue_names = [*names, *(f"{n}.dead" for n in names), unrouted]
    queue_names += [f"{prefix}.{queue}" for queue in queues]
    exchanges = [f"{prefix}.events", unrouted, *(f"{n}.dead" for n in names)]
    with contextlib.suppress(Exception):
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            # A channel each: the broker closes the channel a failed delete was asked on.
            for queue in queue_names:
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


def free_port() -> int:
    """A local TCP port nothing listens on now (bound once to pick it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings_class(service: ServiceDefinition) -> type[ServiceSettings]:
    load = service.load_settings
    return load if isinstance(load, type) and issubclass(load, ServiceSettings) else ServiceSettings


async def service_settings(
    env: Throwaway, service: ServiceDefinition, **overrides: object
) -> ServiceSettings:
    """Settings for `service` on `env`: its role and schema provisioned, then what
    ``python -m <package> migrate`` does (schema upgraded, every service's queue and
    bindings declared)."""
    cls = _settings_class(service)
    schema = str(overrides.pop("db_schema", cls.model_fields["db_schema"].default))
    settings = env.settings(cls, schema=schema, **overrides)
    await env.provision(settings, None)
    await migrate(settings, service.migrations)
    return settings


@dataclass
class InProcess:
    """A service's app running in this process, with a client for it."""

    app: FastAPI
    settings: ServiceSettings
    client: httpx.AsyncClient

    @property
    def runtime(self) -> Runtime:
        """The app's runtime (engine, sessions, loops, resources)."""
        runtime: Runtime = self.app.state.runtime
        return runtime


@contextlib.asynccontextmanager
async def service_in_process(
    env: Throwaway, service: ServiceDefinition, **overrides: object
) -> AsyncIterator[InProcess]:
    """Provision, migrate and start `service`'s app (lifespan included) on `env`."""
    settings = await service_settings(env, service, **overrides)
    app = service.create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url=f"http://{service.name}", timeout=30
        ) as client,
    ):
        yield InProcess(app=app, settings=settings, client=client)


def environment(settings: ServiceSettings) -> dict[str, str]:
    """`settings` as the ``KLAXON_*`` environment variables a service process reads."""
    variables: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        variables[f"KLAXON_{name.upper()}"] = text
    return variables


@dataclass
class ServiceProcess:
    """A service running as ``python -m <package> serve``; its output goes to `log_path`."""

    process: asyncio.subprocess.Process
    settings: ServiceSettings
    port: int
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """Where it serves HTTP."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client for it (close it, or use it in ``async with``)."""
        return httpx.AsyncClient(base_url=self.base_url, timeout=30, **kwargs)

    def output(self) -> str:
        """What it has logged so far."""
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout_s: float = 30) -> None:
        """Wait until ``/readyz`` says 200; fail with its log if it exits or takes too long."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"service exited ({self.process.returncode}):\n{self.output()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/readyz")).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"not ready within {timeout_s}s:\n{self.output()[-5000:]}")
                await asyncio.sleep(0.1)

    async def kill(self) -> int:
        """SIGKILL it (no shutdown of any kind) and reap it; returns its exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        return await self.process.wait()

    async def terminate(self, timeout_s: float = 15) -> int:
        """SIGTERM it, as an orchestrator would, and wait for it to exit (SIGKILL after
        `timeout_s`); returns its exit status."""
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(timeout_s):
                return await self.process.wait()
        except TimeoutError:
            return await self.kill()


async def start_process(
    settings: ServiceSettings, module: str, *, port: int | None = None
) -> ServiceProcess:
    """Start ``python -m <module> serve`` with `settings` in its environment (not waited for)."""
    port = port or free_port()
    handle, name = tempfile.mkstemp(prefix=f"klaxon-{module}-", suffix=".log")
    command = [sys.executable, "-m", module, "serve", "--port", str(port)]
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            env={**os.environ, **environment(settings), "KLAXON_HTTP_HOST": "127.0.0.1"},
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        os.close(handle)
    return ServiceProcess(process, settings, port, Path(name), command)


@contextlib.asynccontextmanager
async def service_process(
    env: Throwaway, service: ServiceDefinition, *, module: str | None = None, **overrides: object
) -> AsyncIterator[ServiceProcess]:
    """Provision and migrate `service` on `env`, run it as a real process until it is
    ready, and stop it afterwards (SIGTERM, then SIGKILL)."""
    settings = await service_settings(env, service, **overrides)
    module = module or type(settings).__module__.split(".")[0]
    if module == "servicekit":
        raise ValueError(f"name the package to run for {service.name}: module=...")
    running = await start_process(settings, module)
    try:
        await running.wait_ready()
        yield running
    finally:
        await running.terminate()
        running.log_path.unlink(missing_ok=True)

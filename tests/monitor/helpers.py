"""Small helpers for the monitor tests: a running monitor app, keys, products, events."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

import monitor
from contracts import Envelope
from monitor.app import create_app
from monitor.settings import Settings
from servicekit.auth import create_api_key
from servicekit.outgoing import LOOPBACK
from servicekit.runtime import Runtime
from servicekit.tables import catalogue_product
from tests.harness import Throwaway

MIGRATIONS = Path(monitor.__file__).parent / "migrations"

QUICK: dict[str, object] = {
    "outgoing_allow": list(LOOPBACK),
    "min_interval_s": 0.1,
    "default_interval_s": 0.4,
    "default_recheck_s": 0.1,
    "default_timeout_s": 1.0,
    "scheduler_poll_interval_s": 0.03,
    "scheduler_flush_interval_s": 0.03,
    "scheduler_lookahead_s": 0.05,
    "scheduler_jitter_s": 0.01,
    "scheduler_lease_margin_s": 5.0,
    "replica_heartbeat_s": 0.3,
    "replica_ttl_s": 2.0,
    "verification_settle_s": 0.3,
    "heartbeat_min_gap_s": 0.0,
    "db_pool_size": 4,
    "db_max_overflow": 4,
}
"""Settings that run the monitor's minutes in fractions of a second."""


@dataclass
class Monitor:
    """A running monitor app and keys to call it with."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient
    writer_key: str
    reader_key: str

    @property
    def runtime(self) -> Runtime:
        """The app's runtime."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    def auth(self, key: str | None = None) -> dict[str, str]:
        """Authorization header (the writer's key by default)."""
        return {"Authorization": f"Bearer {key or self.writer_key}"}

    async def create(self, **spec: Any) -> dict[str, Any]:
        """Create a monitor; returns the 201 body."""
        body = {"product": "canvas-hosting", **spec}
        response = await self.client.post("/v1/monitors", json=body, headers=self.auth())
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def get(self, monitor_id: str) -> dict[str, Any]:
        """GET a monitor."""
        response = await self.client.get(f"/v1/monitors/{monitor_id}", headers=self.auth())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def state(self, monitor_id: str) -> str:
        """A monitor's state."""
        return str((await self.get(monitor_id))["state"])

    async def in_state(self, monitor_id: str, state: str) -> bool:
        """True if the monitor is in `state` (for `eventually`)."""
        return await self.state(monitor_id) == state

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        """Rows of a query on the monitor's schema."""
        async with self.runtime.sessions() as session:
            return list(await session.execute(text(statement), params))


async def add_product(
    settings: Settings, slug: str = "canvas-hosting", name: str = "Canvas Hosting"
) -> None:
    """Put a product in the monitor's read model, as `product.changed` would."""
    from servicekit.db import create_engine

    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                catalogue_product.insert().values(
                    slug=slug, name=name, active=True, changed_at=datetime.now(UTC)
                )
            )
    finally:
        await engine.dispose()


async def prepare(env: Throwaway, **overrides: object) -> Settings:
    """Monitor settings on the test's database, migrated, with one product."""
    settings = env.settings(Settings, schema="monitor", **{**QUICK, **overrides})
    await env.provision(settings, MIGRATIONS)
    await add_product(settings)
    return settings


async def _key(runtime: Runtime, name: str, scopes: list[str]) -> str:
    async with runtime.sessions() as session:
        key = await create_api_key(session, name=name, scopes=scopes)
        await session.commit()
    return key.secret


@contextlib.asynccontextmanager
async def running_monitor(settings: Settings) -> AsyncIterator[Monitor]:
    """Start the monitor app in process on prepared `settings`; yield it with a client."""
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://monitor", timeout=30
        ) as client,
    ):
        runtime: Runtime = app.state.runtime
        yield Monitor(
            app=app,
            settings=settings,
            client=client,
            writer_key=await _key(runtime, "ops", ["monitors:write"]),
            reader_key=await _key(runtime, "dashboard", ["monitors:read"]),
        )


async def collect(
    queue: "asyncio.Queue[Envelope]", *event_types: str, timeout_s: float = 10
) -> dict[str, Envelope]:
    """The first event of each of `event_types`, whatever order they arrive in."""
    found: dict[str, Envelope] = {}
    async with asyncio.timeout(timeout_s):
        while len(found) < len(event_types):
            envelope = await queue.get()
            if envelope.type in event_types:
                found.setdefault(envelope.type, envelope)
    return found


async def no_event(queue: "asyncio.Queue[Envelope]", event_type: str, within_s: float) -> None:
    """Fail if an event of `event_type` arrives within `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            envelope = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            return
        assert envelope.type != event_type, f"unexpected {event_type}: {envelope.payload}"

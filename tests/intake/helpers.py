"""Small helpers for the intake tests: a running app, API keys, tickets, broker I/O."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import Table, func, select

import intake
from contracts import Envelope, EventPayload
from intake.app import create_app
from intake.models import metadata
from intake.settings import Settings
from servicekit.auth import create_api_key
from servicekit.runtime import Runtime
from servicekit.tables import plumbing
from tests.events import publish
from tests.harness import AMQP_URL, Throwaway

MIGRATIONS = Path(intake.__file__).parent / "migrations"
ALL_TABLES: dict[str, Table] = {**metadata.tables, **plumbing.tables}


def ticket_body(**overrides: Any) -> dict[str, Any]:
    """A valid ticket as the portal sends it."""
    body: dict[str, Any] = {
        "organization": "Acme Corp",
        "reporter": {"name": "Ada Lovelace", "email": "ada@acme.example"},
        "product": "canvas-hosting",
        "severity": "critical",
        "subject": "Every page returns 502",
        "description": "Since 09:12 UTC the site is down.",
        "urls": ["https://acme.canvas.example/"],
        "error_text": "502 Bad Gateway",
    }
    body.update(overrides)
    return body


@dataclass
class Intake:
    """A running intake app and keys to call it with."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient
    admin_key: str
    portal_key: str
    reader_key: str
    env: Throwaway

    @property
    def runtime(self) -> Runtime:
        """The app's runtime (engine, sessions, loops)."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    def auth(self, key: str | None = None) -> dict[str, str]:
        """Authorization header for `key` (the portal's by default)."""
        return {"Authorization": f"Bearer {key or self.portal_key}"}

    async def file(self, **overrides: Any) -> dict[str, Any]:
        """File a valid ticket and return the 201 body."""
        response = await self.client.post(
            "/v1/tickets", json=ticket_body(**overrides), headers=self.auth()
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def count(self, table: str) -> int:
        """Rows in one of intake's tables."""
        async with self.runtime.sessions() as session:
            query = select(func.count()).select_from(ALL_TABLES[table])
            return int(await session.scalar(query) or 0)

    async def ticket(self, ref: str) -> dict[str, Any]:
        """GET a ticket."""
        response = await self.client.get(f"/v1/tickets/{ref}", headers=self.auth(self.reader_key))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def _key(settings: Settings, runtime: Runtime, name: str, scopes: list[str]) -> str:
    async with runtime.sessions() as session:
        key = await create_api_key(session, name=name, scopes=scopes)
        await session.commit()
    return key.secret


@contextlib.asynccontextmanager
async def running_intake(env: Throwaway, **overrides: object) -> AsyncIterator[Intake]:
    """Provision, migrate and start intake; yield it with an HTTP client."""
    settings = env.settings(Settings, schema="intake", **overrides)
    await env.provision(settings, MIGRATIONS)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://intake", timeout=30
        ) as client,
    ):
        runtime: Runtime = app.state.runtime
        service = Intake(
            app=app,
            settings=settings,
            client=client,
            admin_key=await _key(settings, runtime, "admin", ["admin"]),
            portal_key=await _key(settings, runtime, "portal", ["tickets:write"]),
            reader_key=await _key(settings, runtime, "dashboard", ["tickets:read"]),
            env=env,
        )
        yield service


async def inject(env: Throwaway, payload: EventPayload, *, producer: str = "notifier") -> Envelope:
    """Publish an event to the test's exchange as another service would."""
    return await publish(env, payload, producer=producer)


@contextlib.asynccontextmanager
async def listening(env: Throwaway, *routing_keys: str) -> AsyncIterator[asyncio.Queue[Envelope]]:
    """A queue of the test's own bound to `routing_keys`; yields envelopes as they arrive."""
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            env.exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": f"{env.exchange}.unrouted"},
        )
        queue = await channel.declare_queue(f"{env.prefix}.test", durable=True)
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(Envelope.from_json(message.body))

        await queue.consume(on_message)
        yield received


async def next_event(
    queue: "asyncio.Queue[Envelope]", event_type: str, timeout_s: float = 10
) -> Envelope:
    """The next envelope of `event_type` from a `listening` queue."""
    async with asyncio.timeout(timeout_s):
        while True:
            envelope = await queue.get()
            if envelope.type == event_type:
                return envelope


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """A fresh UUID."""
    return uuid.uuid4()


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))

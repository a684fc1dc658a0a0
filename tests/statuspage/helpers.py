"""Helpers for the statuspage tests: the running service, API keys, events, pages."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

import statuspage_sync
from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from contracts.monitor import MonitorCameUp, MonitorWentDown
from contracts.products import ProductChanged
from servicekit import catalogue
from servicekit.auth import create_api_key
from servicekit.runtime import Runtime
from statuspage_sync.app import create_app
from statuspage_sync.settings import Settings
from tests.harness import Throwaway, wait_connected

MIGRATIONS = Path(statuspage_sync.__file__).parent / "migrations"
PRODUCT = ProductRef(slug="canvas-hosting", name="Canvas Hosting")


@dataclass
class StatusPages:
    """A running statuspage-sync app, a client and keys to call it with."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient
    writer_key: str
    reader_key: str
    env: Throwaway

    @property
    def runtime(self) -> Runtime:
        """The app's runtime."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    def auth(self, key: str | None = None) -> dict[str, str]:
        """Authorization header (the writer's key by default)."""
        return {"Authorization": f"Bearer {key or self.writer_key}"}

    async def post(self, path: str, body: dict[str, Any], expect: int = 201) -> Any:
        """POST to the admin API and check the status."""
        response = await self.client.post(path, json=body, headers=self.auth())
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    async def get(self, path: str) -> Any:
        """GET from the admin API with the reader's key."""
        response = await self.client.get(path, headers=self.auth(self.reader_key))
        assert response.status_code == 200, response.text
        return response.json()

    async def public(self, path: str) -> httpx.Response:
        """GET a public file of a page, e.g. ``canvas/api/v2/summary.json``."""
        return await self.client.get(f"/status/{path}")

    async def page(self, slug: str = "canvas", **overrides: Any) -> dict[str, Any]:
        """Create a status page covering Canvas Hosting."""
        body = {"slug": slug, "title": "Canvas Hosting", "products": [PRODUCT.slug], **overrides}
        page: dict[str, Any] = await self.post("/v1/pages", body)
        return page

    async def component(self, slug: str = "canvas", **overrides: Any) -> dict[str, Any]:
        """Add a component fed by Canvas Hosting's monitors."""
        body = {"name": "Web app", "product": PRODUCT.slug, **overrides}
        created: dict[str, Any] = await self.post(f"/v1/pages/{slug}/components", body)
        return created

    async def component_status(self, component_id: str, slug: str = "canvas") -> str:
        """A component's current status per the admin API."""
        for c in await self.get(f"/v1/pages/{slug}/components"):
            if c["id"] == component_id:
                return str(c["status"])
        raise AssertionError(f"no component {component_id}")


async def seed_catalogue(session: AsyncSession) -> None:
    """The products the tests' pages cover, as intake's ``product.changed`` would have
    put them in the read model."""
    for slug, name in (("canvas-hosting", "Canvas Hosting"), ("atomic-apps", "Atomic Apps")):
        await catalogue.on_product_changed(
            session,
            ProductChanged(slug=slug, name=name, active=True, changed_at=now()),
            Envelope.wrap(
                ProductChanged(slug=slug, name=name, active=True, changed_at=now()),
                producer="intake",
            ),
        )


@contextlib.asynccontextmanager
async def running_statuspage(env: Throwaway, **overrides: object) -> AsyncIterator[StatusPages]:
    """Provision, migrate and start statuspage-sync; yield it with an HTTP client."""
    settings = env.settings(Settings, schema="statuspage", **overrides)
    await env.provision(settings, MIGRATIONS)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://statuspage", timeout=30
        ) as client,
    ):
        runtime: Runtime = app.state.runtime
        async with runtime.sessions() as session:
            await seed_catalogue(session)
            await session.commit()
        keys = []
        for name, scopes in (("engineer", ["statuspage:write"]), ("dash", ["statuspage:read"])):
            async with runtime.sessions() as session:
                keys.append((await create_api_key(session, name=name, scopes=scopes)).secret)
                await session.commit()
        await wait_connected(runtime)
        yield StatusPages(app, settings, client, keys[0], keys[1], env)


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def monitor_down(monitor_id: uuid.UUID, *, component: str | None = None) -> MonitorWentDown:
    """Canvas Hosting's monitor went down now."""
    return MonitorWentDown(
        monitor_id=monitor_id,
        monitor_name="Canvas home page",
        product=PRODUCT,
        component=component,
        url="https://canvas.example/",
        error="HTTP 502 Bad Gateway",
        down_since=now(),
    )


def monitor_up(monitor_id: uuid.UUID, *, component: str | None = None) -> MonitorCameUp:
    """Canvas Hosting's monitor came back up now."""
    return MonitorCameUp(
        monitor_id=monitor_id,
        monitor_name="Canvas home page",
        product=PRODUCT,
        component=component,
        down_since=now(),
        up_at=now(),
    )


def critical_ticket(filed_at: datetime | None = None) -> TicketFiled:
    """A CRITICAL report about Canvas Hosting."""
    return TicketFiled(
        ticket_id=uuid.uuid4(),
        number="KLX-1000",
        organization="Acme",
        reporter=Person(name="Ada Lovelace", email="ada@acme.example"),
        product=PRODUCT,
        severity=Severity.CRITICAL,
        subject="Canvas is down",
        description="502 everywhere",
        monitoring_state=HealthState.UNKNOWN,
        filed_at=filed_at or now(),
    )

"""Small helpers for the notifier tests: a running notifier with a real SMTP server,
people/schedules/policies through its API, events as other services publish them."""

import asyncio
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
from sqlalchemy import text

import notifier
from contracts import Envelope, parse_payload
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from notifier.app import create_app
from notifier.settings import Settings
from servicekit.auth import create_api_key
from servicekit.runtime import Runtime
from tests.harness import Throwaway, wait_connected
from tests.intake.helpers import next_event
from tests.smtp import Received, SmtpServer

MIGRATIONS = Path(notifier.__file__).parent / "migrations"
PRODUCT = ProductRef(slug="canvas-hosting", name="Canvas Hosting")


def ticket_filed(
    *,
    product: ProductRef = PRODUCT,
    reporter: str = "ada@acme.example",
    number: str | None = None,
    severity: Severity = Severity.CRITICAL,
) -> TicketFiled:
    """A ticket.filed payload as intake publishes it."""
    ticket_id = uuid.uuid4()
    return TicketFiled(
        ticket_id=ticket_id,
        number=number or f"KLX-{ticket_id.int % 100000}",
        organization="Acme Corp",
        reporter=Person(name="Ada Lovelace", email=reporter),
        product=product,
        severity=severity,
        subject="Every page returns 502",
        description="Since 09:12 UTC the site is down.",
        monitoring_state=HealthState.UNKNOWN,
        filed_at=datetime.now(UTC),
    )


def notifier_settings(env: Throwaway, smtp: SmtpServer, **overrides: object) -> Settings:
    """Notifier settings for a test: its database, broker prefix and SMTP server."""
    values: dict[str, object] = {
        "smtp_port": smtp.port,
        "public_base_url": "http://notifier",
        "delivery_poll_interval_s": 0.2,
        "delivery_retry_base_s": 0.2,
        "delivery_retry_max_s": 1.0,
        "smtp_timeout_s": 2.0,
    }
    values.update(overrides)
    return env.settings(Settings, schema="notifier", **values)


@dataclass
class Notifier:
    """A running notifier app and a key to call it with."""

    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient
    key: str

    @property
    def runtime(self) -> Runtime:
        """The app's runtime."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def auth(self) -> dict[str, str]:
        """Authorization header of the admin key."""
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        """POST JSON and expect `status`."""
        response = await self.client.post(path, json=body, headers=self.auth)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    async def get(self, path: str, **params: Any) -> Any:
        """GET JSON and expect 200."""
        response = await self.client.get(path, params=params, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def person(self, name: str, email: str, **extra: Any) -> str:
        """Add a person; their id."""
        return str((await self.post("/v1/people", {"name": name, "email": email, **extra}))["id"])

    async def weekly_schedule(self, *members: str, zone: str = "UTC", **layer: Any) -> str:
        """A schedule of one weekly rotation of `members` starting a week ago; its id."""
        body = {
            "name": "DevOps",
            "time_zone": zone,
            "layers": [
                {
                    "rotation_start": layer.pop("rotation_start", "2026-01-05T09:00:00"),
                    "shift_unit": layer.pop("shift_unit", "weeks"),
                    "shift_count": 1,
                    "members": list(members),
                    **layer,
                }
            ],
        }
        return str((await self.post("/v1/schedules", body))["id"])

    async def policy(
        self, *levels: tuple[str, str, float], repeat: int = 0, product: str | None = None
    ) -> str:
        """An escalation policy (the default one unless `product`); its id."""
        body = {
            "name": "Default",
            "is_default": product is None,
            "product_slug": product,
            "repeat": repeat,
            "levels": [{"target_type": t, "target_id": i, "timeout_s": s} for t, i, s in levels],
        }
        return str((await self.post("/v1/policies", body))["id"])

    async def pages(self) -> list[dict[str, Any]]:
        """Every page."""
        result: list[dict[str, Any]] = await self.get("/v1/pages")
        return result

    async def page(self, page_id: str) -> dict[str, Any]:
        """One page with its timeline."""
        result: dict[str, Any] = await self.get(f"/v1/pages/{page_id}")
        return result

    async def scalar(self, sql: str, **params: Any) -> Any:
        """One value from the notifier's schema."""
        async with self.runtime.sessions() as session:
            return await session.scalar(text(sql), params)


def for_delivery(smtp: SmtpServer, prefix: str) -> list[Received]:
    """Messages sent for deliveries whose dedupe key starts with `prefix`."""
    return [r for r in smtp.received if r.header("X-Klaxon-Delivery").startswith(prefix)]


async def next_payload(
    queue: "asyncio.Queue[Envelope]", event_type: str, timeout_s: float = 10
) -> Any:
    """The payload of the next event of `event_type` from a `listening` queue, parsed."""
    return parse_payload(await next_event(queue, event_type, timeout_s))


async def _key(runtime: Runtime) -> str:
    async with runtime.sessions() as session:
        key = await create_api_key(session, name="ops", scopes=["admin"])
        await session.commit()
    return key.secret


@contextlib.asynccontextmanager
async def running_notifier(
    env: Throwaway, smtp: SmtpServer, *, provision: bool = True, **overrides: object
) -> AsyncIterator[Notifier]:
    """Provision, migrate and start the notifier; yield it with an HTTP client."""
    settings = notifier_settings(env, smtp, **overrides)
    if provision:
        await env.provision(settings, MIGRATIONS)
    app = create_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://notifier", timeout=30
        ) as client,
    ):
        runtime: Runtime = app.state.runtime
        await wait_connected(runtime)
        yield Notifier(app=app, settings=settings, client=client, key=await _key(runtime))

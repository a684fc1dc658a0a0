"""A tiny service built from servicekit parts, for the plumbing tests."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from servicekit.consumer import Handler
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from servicekit.timers import TimerHandler
from tests.harness import Throwaway

MIGRATIONS = Path(__file__).parent / "migrations"
PRODUCER = "test"


def ticket_filed(subject: str = "Canvas is down") -> TicketFiled:
    """A valid payload to push through the plumbing."""
    return TicketFiled(
        ticket_id=uuid.uuid4(),
        number="KLX-1",
        organization="Acme",
        reporter=Person(name="Ada", email="ada@example.com"),
        product=ProductRef(slug="canvas-hosting", name="Canvas Hosting"),
        severity=Severity.CRITICAL,
        subject=subject,
        description="500 on every page",
        monitoring_state=HealthState.UNKNOWN,
        filed_at=datetime.now(UTC),
    )


async def record_effect(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
    """Handler that leaves one row per handled event."""
    await session.execute(
        text("INSERT INTO effect (event_id, note) VALUES (:id, :note)"),
        {"id": envelope.id, "note": payload.subject},
    )


HANDLERS: dict[str, Handler] = {TicketFiled.event_type: record_effect}
"""The test service handles ticket.filed by recording an effect."""


async def effects(runtime: Runtime) -> list[tuple[uuid.UUID, str]]:
    """Every (event_id, note) handled so far."""
    async with runtime.sessions() as session:
        rows = await session.execute(text("SELECT event_id, note FROM effect ORDER BY id"))
        return [(row.event_id, row.note) for row in rows]


async def handled_ids(runtime: Runtime, wanted: set[uuid.UUID]) -> bool:
    """True once every event id in `wanted` has left its effect."""
    return {event_id for event_id, _ in await effects(runtime)} >= wanted


async def handled_notes(runtime: Runtime, wanted: set[str]) -> bool:
    """True once an effect with each note in `wanted` exists."""
    return {note for _, note in await effects(runtime)} >= wanted


async def handled_count(runtime: Runtime, n: int) -> bool:
    """True once at least `n` effects exist."""
    return len(await effects(runtime)) >= n


async def prepared(env: Throwaway, **overrides: object) -> ServiceSettings:
    """Settings for the test service, its schema provisioned and migrated."""
    settings = env.settings(ServiceSettings, schema="svc", service_name="test", **overrides)
    await env.provision(settings, MIGRATIONS)
    return settings


@contextlib.asynccontextmanager
async def running(
    settings: ServiceSettings,
    *,
    handlers: Mapping[str, Handler] | None = None,
    timer_handlers: Mapping[str, TimerHandler] | None = None,
) -> AsyncIterator[Runtime]:
    """A started runtime, stopped afterwards."""
    runtime = Runtime(settings, handlers=handlers, timer_handlers=timer_handlers)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()

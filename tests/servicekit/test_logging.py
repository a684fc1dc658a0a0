"""Logs are JSON lines carrying the correlation id of the work in hand, and that id
crosses into the events the work publishes."""

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.intake import TicketFiled
from contracts.products import ProductChanged
from servicekit.deps import SessionDep
from servicekit.logging import JsonFormatter, correlation_id, correlation_uuid
from servicekit.outbox import add_event, publish
from servicekit.runtime import create_service_app
from tests.events import publish as harness_publish
from tests.events import tap
from tests.harness import Throwaway, wait_connected
from tests.servicekit.helpers import PRODUCER, prepared, ticket_filed


def test_log_lines_are_json_with_correlation_id_and_extras() -> None:
    formatter = JsonFormatter("intake")
    record = logging.LogRecord(
        "intake.api", logging.WARNING, __file__, 1, "filed %s", ("KLX-1",), None
    )
    record.ticket = "KLX-1"
    token = correlation_id.set("c0ffee")
    try:
        line = json.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    assert line["msg"] == "filed KLX-1"
    assert line["level"] == "WARNING"
    assert line["service"] == "intake"
    assert line["correlation_id"] == "c0ffee"
    assert line["ticket"] == "KLX-1"

    untagged = json.loads(formatter.format(record))
    assert "correlation_id" not in untagged


router = APIRouter()


def product_changed(slug: str) -> ProductChanged:
    """An event the test service publishes and does not consume."""
    return ProductChanged(slug=slug, name=slug, active=True, changed_at=datetime.now(UTC))


@router.post("/v1/publish/{slug}")
async def publish_from_request(slug: str, session: SessionDep) -> dict[str, str]:
    """Publish as a route does, through `servicekit.outbox.publish`."""
    envelope = await publish(session, product_changed(slug), producer=PRODUCER)
    await session.commit()
    return {"event_id": str(envelope.id)}


@router.post("/v1/wrap/{slug}")
async def add_from_request(slug: str, session: SessionDep) -> dict[str, str]:
    """Publish as a route that builds its own envelope does (`Envelope.wrap`, `add_event`)."""
    envelope = Envelope.wrap(product_changed(slug), producer=PRODUCER)
    await add_event(session, envelope)
    await session.commit()
    return {"event_id": str(envelope.id)}


async def republish(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
    """A handler that publishes an event of its own, naming no cause."""
    await publish(session, product_changed(payload.subject), producer=PRODUCER)


@contextlib.asynccontextmanager
async def serving(env: Throwaway) -> AsyncIterator[httpx.AsyncClient]:
    settings = await prepared(env)
    app = create_service_app(
        settings,
        title="test",
        routers=[router],
        handlers={TicketFiled.event_type: republish},
    )
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http,
    ):
        await wait_connected(app.state.runtime)
        yield http


@pytest.mark.parametrize("path", ["/v1/publish", "/v1/wrap"])
async def test_a_requests_correlation_id_becomes_its_events(env: Throwaway, path: str) -> None:
    request_id = uuid.uuid4()
    async with serving(env) as client, tap(env, ProductChanged.event_type) as events:
        response = await client.post(
            f"{path}/canvas", headers={"X-Correlation-ID": str(request_id)}
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Correlation-ID"] == str(request_id)
        event_id = response.json()["event_id"]
        event = await events.wait_for(ProductChanged.event_type, lambda e: str(e.id) == event_id)
    assert event.correlation_id == request_id


async def test_a_request_without_a_usable_id_gets_one_its_events_carry(env: Throwaway) -> None:
    async with serving(env) as client, tap(env, ProductChanged.event_type) as events:
        response = await client.post(
            "/v1/publish/canvas", headers={"X-Correlation-ID": "not a uuid; DROP TABLE"}
        )
        assert response.status_code == 200
        given = uuid.UUID(response.headers["X-Correlation-ID"])
        event = await events.wait_for(ProductChanged.event_type)
    assert event.correlation_id == given
    assert event.correlation_id != event.id


async def test_a_handlers_events_carry_the_incoming_events_correlation_id(
    env: Throwaway,
) -> None:
    correlation = uuid.uuid4()
    async with serving(env), tap(env, ProductChanged.event_type) as events:
        incoming = await harness_publish(env, ticket_filed("canvas"), correlation_id=correlation)
        event = await events.wait_for(ProductChanged.event_type)
    assert incoming.correlation_id == correlation
    assert event.correlation_id == correlation
    assert event.causation_id is None


def test_only_a_uuid_is_taken_as_a_correlation_id() -> None:
    value = uuid.uuid4()
    assert correlation_uuid(str(value)) == value
    assert correlation_uuid(str(value).upper()) == value
    assert correlation_uuid("req-1") is None
    assert correlation_uuid("") is None
    assert correlation_uuid(None) is None

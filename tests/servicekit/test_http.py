"""Health endpoints, API-key scopes and problem+json errors of a servicekit app."""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends
from pydantic import BaseModel, EmailStr, Field
from sqlalchemy import select, update

from contracts.intake import TicketFiled
from servicekit.auth import (
    TOUCH_EVERY_S,
    Principal,
    create_api_key,
    require_scope,
    revoke_api_key,
)
from servicekit.deps import RuntimeDep
from servicekit.outbox import publish
from servicekit.problems import NotFound
from servicekit.runtime import create_service_app
from servicekit.tables import api_key
from tests.harness import Throwaway, eventually
from tests.servicekit.helpers import PRODUCER, prepared, record_effect, ticket_filed

router = APIRouter()


class Thing(BaseModel):
    email: EmailStr
    name: str = Field(min_length=1, max_length=5)


@router.post("/v1/things")
async def create_thing(
    thing: Thing, who: Annotated[Principal, Depends(require_scope("things:write"))]
) -> dict[str, str]:
    return {"by": who.name, "name": thing.name}


@router.get("/v1/things/{thing_id}")
async def get_thing(
    thing_id: int, _: Annotated[Principal, Depends(require_scope("things:read"))]
) -> dict[str, int]:
    raise NotFound(f"no thing {thing_id}")


@router.get("/v1/things")
async def list_things(
    _: Annotated[Principal, Depends(require_scope("things:read", "things:write"))],
) -> list[str]:
    return []


@router.get("/v1/outside-call")
async def outside_call() -> None:
    raise TimeoutError("the status-page provider did not answer")


@router.post("/v1/events")
async def add_event(runtime: RuntimeDep) -> dict[str, str]:
    async with runtime.sessions() as session, session.begin():
        envelope = await publish(session, ticket_filed("via http"), producer=PRODUCER)
    return {"id": str(envelope.id)}


@pytest.fixture
async def client(env: Throwaway) -> AsyncIterator[httpx.AsyncClient]:
    settings = await prepared(env)
    app = create_service_app(
        settings,
        title="test",
        routers=[router],
        handlers={TicketFiled.event_type: record_effect},
    )
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http,
    ):
        http.app = app  # type: ignore[attr-defined]
        yield http


async def _key(client: httpx.AsyncClient, *scopes: str) -> tuple[str, str]:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.sessions() as session, session.begin():
        key = await create_api_key(session, name="portal", scopes=list(scopes))
    return str(key.id), key.secret


async def test_health_endpoints_report_dependencies_and_backlog(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(ready)

    async def healthy() -> bool:  # readiness is the database alone; the broker connects too
        return bool((await client.get("/health")).json()["status"] == "ok")

    await eventually(healthy)
    await client.post("/v1/events")
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["dependencies"]["database"]["ok"] is True
    assert health["dependencies"]["broker"]["ok"] is True
    assert set(health["outbox"]) == {"backlog", "oldest_unsent_age_s"}
    assert health["queue"]["depth"] is not None
    metrics = (await client.get("/metrics")).text
    assert "klaxon_outbox_backlog" in metrics
    assert "klaxon_events_published_total" in metrics


async def test_api_keys_gate_routes_by_scope(client: httpx.AsyncClient) -> None:
    body = {"email": "ada@example.com", "name": "ok"}
    missing = await client.post("/v1/things", json=body)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"

    unknown = await client.post("/v1/things", json=body, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401

    _, reader = await _key(client, "things:read")
    forbidden = await client.post(
        "/v1/things", json=body, headers={"Authorization": f"Bearer {reader}"}
    )
    assert forbidden.status_code == 403
    assert "things:write" in forbidden.json()["detail"]

    key_id, writer = await _key(client, "things:write")
    ok = await client.post("/v1/things", json=body, headers={"Authorization": f"Bearer {writer}"})
    assert ok.status_code == 200
    assert ok.json()["by"] == "portal"

    _, admin = await _key(client, "admin")
    assert (
        await client.post("/v1/things", json=body, headers={"Authorization": f"Bearer {admin}"})
    ).status_code == 200

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.sessions() as session, session.begin():
        await revoke_api_key(session, key_id=uuid.UUID(key_id))
    revoked = await client.post(
        "/v1/things", json=body, headers={"Authorization": f"Bearer {writer}"}
    )
    assert revoked.status_code == 401


async def test_errors_are_problem_json_naming_the_field(client: httpx.AsyncClient) -> None:
    _, admin = await _key(client, "admin")
    auth = {"Authorization": f"Bearer {admin}"}

    bad = await client.post("/v1/things", json={"email": "nope", "name": "toolong"}, headers=auth)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in bad.json()["errors"]}
    assert fields == {"email", "name"}

    not_json = await client.post(
        "/v1/things", content=b"{oops", headers=auth | {"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["field"] == "body"

    missing = await client.get("/v1/things/7", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no thing 7"

    bad_path = await client.get("/v1/things/seven", headers=auth)
    assert bad_path.status_code == 422
    assert bad_path.json()["errors"][0]["field"] == "thing_id"

    nowhere = await client.get("/v1/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"] == "application/problem+json"


async def test_a_route_can_admit_any_of_several_scopes(client: httpx.AsyncClient) -> None:
    for scope in ("things:read", "things:write", "admin"):
        _, secret = await _key(client, scope)
        admitted = await client.get("/v1/things", headers={"Authorization": f"Bearer {secret}"})
        assert admitted.status_code == 200, scope
    _, other = await _key(client, "stuff:read")
    refused = await client.get("/v1/things", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "things:read or things:write"


async def test_a_key_records_when_it_was_last_used_at_most_once_a_minute(
    client: httpx.AsyncClient,
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    key_id, secret = await _key(client, "things:read")

    async def last_used() -> datetime | None:
        async with runtime.sessions() as session:
            used: datetime | None = await session.scalar(
                select(api_key.c.last_used_at).where(api_key.c.id == uuid.UUID(key_id))
            )
            return used

    assert await last_used() is None
    auth = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/things", headers=auth)).status_code == 200
    first = await last_used()
    assert first is not None
    assert (await client.get("/v1/things", headers=auth)).status_code == 200
    assert await last_used() == first, "written again within the minute"
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(api_key)
            .where(api_key.c.id == uuid.UUID(key_id))
            .values(last_used_at=first - timedelta(seconds=TOUCH_EVERY_S + 1))
        )
    assert (await client.get("/v1/things", headers=auth)).status_code == 200
    again = await last_used()
    assert again is not None
    assert again >= first, "a minute-old stamp is written again"


async def test_a_timeout_that_is_not_the_database_is_a_500_not_a_503(
    client: httpx.AsyncClient,
) -> None:
    app = client.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as plain:
        response = await plain.get("/v1/outside-call")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "database" not in response.json()["detail"]

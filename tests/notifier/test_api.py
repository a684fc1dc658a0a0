"""The CRUD API: scopes, and problem+json 422s that name the field and the reason."""

import uuid
from typing import Any

import pytest

from tests.notifier.helpers import Notifier

LAYER = {"rotation_start": "2026-01-05T09:00:00", "shift_unit": "weeks", "members": []}


async def _problem(service: Notifier, path: str, body: dict[str, Any]) -> tuple[int, list[str]]:
    response = await service.client.post(path, json=body, headers=service.auth)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code, [e["field"] for e in response.json().get("errors", [])]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/people", {"name": "A", "email": "not-an-address"}, "email"),
        ("/v1/people", {"name": "A", "time_zone": "Mars/Olympus"}, "time_zone"),
        ("/v1/people", {"name": "A", "rules": [{"channel": "pigeon"}]}, "rules.0.channel"),
        ("/v1/schedules", {"name": "S", "time_zone": "UTC", "layers": [LAYER]}, "layers.0.members"),
        ("/v1/schedules", {"name": "S", "time_zone": "UTC", "layers": []}, "layers"),
        ("/v1/schedules", {"name": "S", "time_zone": "Nowhere/City", "layers": []}, "time_zone"),
        ("/v1/policies", {"name": "P", "is_default": True, "levels": []}, "levels"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    service: Notifier, path: str, body: dict[str, Any], field: str
) -> None:
    status, fields = await _problem(service, path, body)
    assert status == 422
    assert field in fields


async def test_unknown_people_and_schedules_are_422(service: Notifier) -> None:
    ghost = str(uuid.uuid4())
    layer = {**LAYER, "members": [ghost]}
    status, fields = await _problem(
        service, "/v1/schedules", {"name": "S", "time_zone": "UTC", "layers": [layer]}
    )
    assert (status, fields) == (422, ["layers.0.members"])
    level = {"target_type": "schedule", "target_id": ghost, "timeout_s": 60}
    status, fields = await _problem(
        service, "/v1/policies", {"name": "P", "is_default": True, "levels": [level]}
    )
    assert (status, fields) == (422, ["levels.0.target_id"])


async def test_one_default_policy_and_one_per_product(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    await service.policy(("person", alice, 60))
    status, _ = await _problem(
        service,
        "/v1/policies",
        {
            "name": "Again",
            "is_default": True,
            "levels": [{"target_type": "person", "target_id": alice}],
        },
    )
    assert status == 409
    await service.policy(("person", alice, 60), product="canvas-hosting")
    status, _ = await _problem(
        service,
        "/v1/policies",
        {
            "name": "Twice",
            "product_slug": "canvas-hosting",
            "levels": [{"target_type": "person", "target_id": alice}],
        },
    )
    assert status == 409


async def test_scopes_are_checked(service: Notifier) -> None:
    from servicekit.auth import create_api_key

    async with service.runtime.sessions() as session:
        reader = await create_api_key(session, name="dash", scopes=["oncall:read"])
        await session.commit()
    headers = {"Authorization": f"Bearer {reader.secret}"}
    assert (await service.client.get("/v1/pages", headers=headers)).status_code == 200
    refused = await service.client.post("/v1/people", json={"name": "X"}, headers=headers)
    assert refused.status_code == 403
    assert (await service.client.get("/v1/pages")).status_code == 401
    missing = await service.client.get(f"/v1/pages/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404


async def test_people_crud_and_a_person_in_a_schedule_cannot_be_deleted(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example", rules=[{"channel": "email"}])
    bob = await service.person("Bob", "bob@ops.example")
    await service.weekly_schedule(alice)
    replaced = await service.client.put(
        f"/v1/people/{bob}",
        json={
            "name": "Robert",
            "email": "robert@ops.example",
            "rules": [{"channel": "email", "delay_s": 0}],
        },
        headers=service.auth,
    )
    assert replaced.json()["name"] == "Robert"
    assert (
        await service.client.delete(f"/v1/people/{alice}", headers=service.auth)
    ).status_code == 409
    assert (
        await service.client.delete(f"/v1/people/{bob}", headers=service.auth)
    ).status_code == 204
    assert [p["name"] for p in await service.get("/v1/people")] == ["Alice"]


async def test_openapi_lists_the_routes_and_bodies(service: Notifier) -> None:
    schema = (await service.client.get("/openapi.json")).json()
    assert "/v1/oncall" in schema["paths"]
    assert "/v1/pages/{page_id}/{action}" in schema["paths"]
    assert "PolicyCreate" in schema["components"]["schemas"]


async def test_schedules_overrides_and_policies_are_listed(service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    schedule = await service.weekly_schedule(alice)
    override = {
        "person_id": alice,
        "starts_at": "2026-12-24T18:00:00Z",
        "ends_at": "2026-12-26T09:00:00Z",
    }
    await service.post(f"/v1/schedules/{schedule}/overrides", override)
    await service.policy(("schedule", schedule, 60))
    assert [s["id"] for s in await service.get("/v1/schedules")] == [schedule]
    (listed,) = await service.get(f"/v1/schedules/{schedule}/overrides")
    assert listed["person_id"] == alice
    (policy,) = await service.get("/v1/policies")
    assert policy["levels"][0]["target_id"] == schedule

"""Maintenances move components at their window's start and end; bad input is a 422."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import eventually
from tests.statuspage.helpers import StatusPages


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_a_maintenance_puts_its_components_under_maintenance_for_its_window(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    api = await statuspage.component(name="API")
    created = await statuspage.post(
        "/v1/pages/canvas/maintenances",
        {
            "name": "Database patching",
            "body": "Monthly patches; the web app may be unavailable.",
            "scheduled_for": _in(1.0),
            "scheduled_until": _in(2.5),
            "component_ids": [web["id"]],
        },
    )
    assert created["status"] == "scheduled"
    upcoming = (
        await statuspage.public("canvas/api/v2/scheduled-maintenances/upcoming.json")
    ).json()
    assert [m["id"] for m in upcoming["scheduled_maintenances"]] == [created["id"]]

    async def status_is(component: dict[str, Any], wanted: str) -> bool:
        return await statuspage.component_status(component["id"]) == wanted

    await eventually(lambda: status_is(web, "under_maintenance"), timeout_s=5)
    assert await statuspage.component_status(api["id"]) == "operational"
    active = (await statuspage.public("canvas/api/v2/scheduled-maintenances/active.json")).json()
    assert [m["status"] for m in active["scheduled_maintenances"]] == ["in_progress"]
    status = (await statuspage.public("canvas/api/v2/status.json")).json()["status"]
    assert status == {"indicator": "maintenance", "description": "Service Under Maintenance"}

    await eventually(lambda: status_is(web, "operational"), timeout_s=5)
    (done,) = (await statuspage.public("canvas/api/v2/scheduled-maintenances.json")).json()[
        "scheduled_maintenances"
    ]
    assert done["status"] == "completed"
    assert [u["status"] for u in done["incident_updates"]] == [
        "completed",
        "in_progress",
        "scheduled",
    ]


async def _problem(statuspage: StatusPages, path: str, body: Any, field: str) -> None:
    response = await statuspage.client.post(path, json=body, headers=statuspage.auth())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields


async def test_bad_input_is_refused_with_the_field_and_reason(statuspage: StatusPages) -> None:
    await statuspage.page()
    web = await statuspage.component()
    incidents = "/v1/pages/canvas/incidents"
    unknown = str(uuid.uuid4())
    await _problem(
        statuspage,
        incidents,
        {
            "name": "X",
            "body": "Y",
            "components": [{"component_id": unknown, "status": "major_outage"}],
        },
        "components[0]",
    )
    await _problem(
        statuspage,
        incidents,
        {"name": "X", "body": "Y", "components": [{"component_id": web["id"], "status": "broken"}]},
        "components.0.status",
    )
    await _problem(statuspage, incidents, {"name": "X", "body": "   "}, "body")
    await _problem(
        statuspage,
        incidents,
        {"name": "X", "body": "Y", "expected_resolution_at": _in(-60)},
        "expected_resolution_at",
    )
    await _problem(
        statuspage,
        "/v1/pages/canvas/maintenances",
        {"name": "M", "body": "B", "scheduled_for": _in(600), "scheduled_until": _in(300)},
        "scheduled_until",
    )
    incident = await statuspage.post(incidents, {"name": "X", "body": "Y"})
    await _problem(statuspage, f"{incidents}/{incident['id']}/notices", {"body": ""}, "body")
    await _problem(
        statuspage, "/v1/pages", {"slug": "x", "title": "X", "products": ["nope"]}, "products[0]"
    )
    await _problem(
        statuspage, "/v1/pages", {"slug": "x", "title": "X", "time_zone": "Mars/Base"}, "time_zone"
    )
    await _problem(
        statuspage, "/v1/pages/canvas/components", {"name": "X", "product": "nope"}, "product"
    )
    response = await statuspage.client.put(
        f"/v1/pages/canvas/components/{web['id']}/manual-status",
        json={"status": "sideways"},
        headers=statuspage.auth(),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


async def test_keys_need_the_right_scope(statuspage: StatusPages) -> None:
    await statuspage.page()
    body = {"slug": "other", "title": "Other"}
    response = await statuspage.client.post(
        "/v1/pages", json=body, headers=statuspage.auth(statuspage.reader_key)
    )
    assert response.status_code == 403
    response = await statuspage.client.post("/v1/pages", json=body)
    assert response.status_code == 401
    assert (await statuspage.client.get("/v1/pages")).status_code == 401


async def test_unknown_pages_and_files_are_the_same_404(statuspage: StatusPages) -> None:
    await statuspage.page()
    missing = await statuspage.public("nope/api/v2/summary.json")
    unknown_file = await statuspage.public("canvas/api/v2/secrets.json")
    assert missing.status_code == unknown_file.status_code == 404
    assert missing.content == unknown_file.content
    assert b"canvas" not in missing.content

    redirect = await statuspage.client.get("/status/canvas")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "/status/canvas/"
    head = await statuspage.client.head("/status/canvas/api/v2/status.json")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    post = await statuspage.client.post("/status/canvas/api/v2/status.json")
    assert post.status_code == 405

"""Engineers change and remove groups and components, and cancel a maintenance."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.harness import eventually
from tests.intake.helpers import inject
from tests.statuspage.helpers import StatusPages, monitor_down


async def _send(
    statuspage: StatusPages, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await statuspage.client.request(method, path, json=body, headers=statuspage.auth())


async def _components(statuspage: StatusPages) -> list[dict[str, Any]]:
    document = (await statuspage.public("canvas/api/v2/components.json")).json()
    components: list[dict[str, Any]] = document["components"]
    return components


async def test_a_group_is_renamed_and_removed_leaving_its_components(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    group = await statuspage.post("/v1/pages/canvas/groups", {"name": "Web"})
    other = await statuspage.post("/v1/pages/canvas/groups", {"name": "Mobile"})
    web = await statuspage.component(group_id=group["id"])
    path = f"/v1/pages/canvas/groups/{group['id']}"

    renamed = await _send(statuspage, "PATCH", path, {"name": "Websites", "description": None})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Websites"
    assert "Websites" in [c["name"] for c in await _components(statuspage)]
    taken = await _send(statuspage, "PATCH", path, {"name": "Mobile"})
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"

    assert (await _send(statuspage, "DELETE", path)).status_code == 204
    assert (await _send(statuspage, "DELETE", path)).status_code == 404
    (left,) = await statuspage.get("/v1/pages/canvas/components")
    assert left["id"] == web["id"]
    assert left["group_id"] is None
    names = [c["name"] for c in await _components(statuspage)]
    assert "Websites" not in names
    assert "Mobile" in names
    moved = await _send(
        statuspage, "PATCH", f"/v1/pages/canvas/components/{web['id']}", {"group_id": group["id"]}
    )
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["field"] == "group_id"
    regrouped = await _send(
        statuspage, "PATCH", f"/v1/pages/canvas/components/{web['id']}", {"group_id": other["id"]}
    )
    assert regrouped.json()["group_id"] == other["id"]


async def test_a_component_is_changed_follows_its_new_monitors_and_is_removed(
    statuspage: StatusPages,
) -> None:
    await statuspage.page(auto_open_incidents=False)
    web = await statuspage.component()
    api = await statuspage.component(name="API", product="atomic-apps")
    path = f"/v1/pages/canvas/components/{api['id']}"
    monitor_id = uuid.uuid4()
    await inject(statuspage.env, monitor_down(monitor_id), producer="monitor")

    async def status_is(component_id: str, wanted: str) -> bool:
        return await statuspage.component_status(component_id) == wanted

    await eventually(lambda: status_is(web["id"], "major_outage"))
    assert await statuspage.component_status(api["id"]) == "operational"

    changed = await _send(
        statuspage,
        "PATCH",
        path,
        {"name": "Public API", "monitor_ids": [str(monitor_id)], "position": None},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Public API"
    assert changed.json()["status"] == "major_outage"  # what its new monitor said last
    shown = {c["name"]: c["status"] for c in await _components(statuspage)}
    assert shown["Public API"] == "major_outage"
    assert (await _send(statuspage, "PATCH", path, {"name": "Web app"})).status_code == 409
    unknown = await _send(statuspage, "PATCH", path, {"product": "no-such-product"})
    assert unknown.status_code == 422
    cleared = await _send(statuspage, "PATCH", path, {"product": None})
    assert cleared.json()["product"] is None

    assert (await _send(statuspage, "DELETE", path)).status_code == 204
    assert (await _send(statuspage, "PATCH", path, {"name": "API"})).status_code == 404
    assert [c["name"] for c in await _components(statuspage)] == ["Web app"]
    bad = await _send(statuspage, "DELETE", "/v1/pages/canvas/components/not-a-uuid")
    assert bad.status_code == 422


async def test_a_maintenance_under_way_is_cancelled_and_its_components_return(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    now = datetime.now(UTC)
    created = await statuspage.post(
        "/v1/pages/canvas/maintenances",
        {
            "name": "Database patching",
            "body": "Monthly patches.",
            "scheduled_for": (now - timedelta(minutes=1)).isoformat(),
            "scheduled_until": (now + timedelta(hours=1)).isoformat(),
            "component_ids": [web["id"]],
        },
    )

    async def under_maintenance() -> bool:
        return await statuspage.component_status(web["id"]) == "under_maintenance"

    await eventually(under_maintenance, timeout_s=5)
    path = f"/v1/pages/canvas/maintenances/{created['id']}/cancel"
    cancelled = await _send(statuspage, "POST", path)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "completed"
    assert cancelled.json()["notices"][0]["body"] == "The scheduled maintenance was cancelled."
    assert await statuspage.component_status(web["id"]) == "operational"
    active = (await statuspage.public("canvas/api/v2/scheduled-maintenances/active.json")).json()
    assert active["scheduled_maintenances"] == []
    assert (await _send(statuspage, "POST", path)).status_code == 409
    unknown = f"/v1/pages/canvas/maintenances/{uuid.uuid4()}/cancel"
    assert (await _send(statuspage, "POST", unknown)).status_code == 404

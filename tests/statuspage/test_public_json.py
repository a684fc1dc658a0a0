"""The public v2 JSON: Atlassian Statuspage's shapes, served from memory with ETags."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.harness import eventually
from tests.intake.helpers import inject
from tests.statuspage.helpers import StatusPages, monitor_down, running_statuspage
from tests.statuspage.shapes import (
    check_component,
    check_incident,
    check_page,
    check_status,
)

_OFFSET = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%z")
BERLIN_OFFSET = f"{_OFFSET[:3]}:{_OFFSET[3:]}"

DOCUMENTS = {
    "summary.json": {"page", "components", "incidents", "scheduled_maintenances", "status"},
    "status.json": {"page", "status"},
    "components.json": {"page", "components"},
    "incidents.json": {"page", "incidents"},
    "incidents/unresolved.json": {"page", "incidents"},
    "scheduled-maintenances.json": {"page", "scheduled_maintenances"},
    "scheduled-maintenances/upcoming.json": {"page", "scheduled_maintenances"},
    "scheduled-maintenances/active.json": {"page", "scheduled_maintenances"},
}


async def _busy_page(statuspage: StatusPages) -> dict[str, Any]:
    await statuspage.page(time_zone="Europe/Berlin")
    group = await statuspage.post("/v1/pages/canvas/groups", {"name": "Hosting", "position": 1})
    web = await statuspage.component(group_id=group["id"], description="The Canvas web app")
    await statuspage.component(name="Status API", product=None, position=2)
    await statuspage.component(name="Legacy", product=None, only_show_if_degraded=True)
    incident = await statuspage.post(
        "/v1/pages/canvas/incidents",
        {
            "name": "Uploads failing",
            "impact": "minor",
            "body": "Uploads fail with an error.",
            "components": [{"component_id": web["id"], "status": "partial_outage"}],
        },
    )
    later = datetime.now(UTC) + timedelta(days=1)
    await statuspage.post(
        "/v1/pages/canvas/maintenances",
        {
            "name": "Database patching",
            "body": "Patches.",
            "scheduled_for": later.isoformat(),
            "scheduled_until": (later + timedelta(hours=1)).isoformat(),
            "component_ids": [web["id"]],
        },
    )
    return {"group": group, "web": web, "incident": incident}


async def test_every_v2_document_has_statuspage_fields_types_and_values(
    statuspage: StatusPages,
) -> None:
    made = await _busy_page(statuspage)
    docs = {}
    for name, keys in DOCUMENTS.items():
        response = await statuspage.public(f"canvas/api/v2/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == "*"
        doc = response.json()
        assert set(doc) == keys, name
        check_page(doc["page"])
        assert doc["page"]["name"] == "Canvas Hosting"
        assert doc["page"]["time_zone"] == "Europe/Berlin"
        assert doc["page"]["updated_at"].endswith(BERLIN_OFFSET)  # page-local, as Statuspage
        if "status" in doc:
            check_status(doc["status"])
        for c in doc.get("components", []):
            check_component(c)
        for i in doc.get("incidents", []):
            check_incident(i)
        for m in doc.get("scheduled_maintenances", []):
            check_incident(m, maintenance=True)
        docs[name] = doc

    summary = docs["summary.json"]
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    by_name = {c["name"]: c for c in summary["components"]}
    assert set(by_name) == {"Web app", "Status API", "Hosting"}  # Legacy hidden: operational
    assert by_name["Web app"]["status"] == "partial_outage"
    assert by_name["Web app"]["group_id"] == made["group"]["id"]
    assert by_name["Hosting"]["group"] is True
    assert by_name["Hosting"]["components"] == [made["web"]["id"]]
    assert by_name["Hosting"]["status"] == "partial_outage"
    (incident,) = summary["incidents"]
    assert incident["impact"] == "minor"
    (update,) = incident["incident_updates"]
    assert update["affected_components"] == [
        {
            "code": made["web"]["id"],
            "name": "Web app",
            "old_status": "operational",
            "new_status": "partial_outage",
        }
    ]
    assert [m["status"] for m in summary["scheduled_maintenances"]] == ["scheduled"]
    assert docs["scheduled-maintenances/active.json"]["scheduled_maintenances"] == []
    assert len(docs["scheduled-maintenances/upcoming.json"]["scheduled_maintenances"]) == 1
    assert docs["incidents/unresolved.json"]["incidents"] == summary["incidents"]
    assert docs["components.json"]["components"] == summary["components"]


async def test_responses_carry_etags_and_a_change_is_seen_by_every_replica(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    identity = {"Accept-Encoding": "identity"}
    first = await statuspage.client.get("/status/canvas/api/v2/summary.json", headers=identity)
    assert "content-encoding" not in first.headers
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=5"
    again = await statuspage.client.get(
        "/status/canvas/api/v2/summary.json", headers={**identity, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""

    zipped = await statuspage.client.get(
        "/status/canvas/api/v2/summary.json", headers={"Accept-Encoding": "gzip"}
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["etag"] != etag
    assert zipped.json() == first.json()  # httpx decompresses
    for refusing in ("gzip;q=0", "br, gzip; q=0.0", "*;q=0", "gzip;q=0, *"):
        plain = await statuspage.client.get(
            "/status/canvas/api/v2/summary.json", headers={"Accept-Encoding": refusing}
        )
        assert "content-encoding" not in plain.headers, refusing
        assert plain.headers["etag"] == etag

    cache = statuspage.app.state.page_cache
    renders = cache.renders
    for _ in range(50):
        assert (await statuspage.public("canvas/")).status_code == 200
    assert cache.renders == renders  # served from memory: nothing changed

    async with running_statuspage(statuspage.env) as replica:
        same = await replica.client.get("/status/canvas/api/v2/summary.json", headers=identity)
        assert same.headers["etag"] == etag
        await inject(statuspage.env, monitor_down(uuid.uuid4()), producer="monitor")

        async def replica_shows_outage() -> bool:
            summary = (await replica.public("canvas/api/v2/summary.json")).json()
            return bool(summary["components"][0]["status"] == "major_outage")

        await eventually(replica_shows_outage, timeout_s=5)
        assert await statuspage.component_status(web["id"]) == "major_outage"
    changed = await statuspage.client.get(
        "/status/canvas/api/v2/summary.json", headers={**identity, "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag

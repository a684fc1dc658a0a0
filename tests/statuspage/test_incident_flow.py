"""A monitor's verdict moves the status page by itself; people add what is known."""

import uuid
from datetime import timedelta

from contracts.monitor import MonitorDegraded
from tests.harness import eventually
from tests.intake.helpers import inject, listening, next_event
from tests.statuspage.helpers import PRODUCT, StatusPages, monitor_down, monitor_up, now


async def test_monitor_down_opens_an_incident_a_notice_follows_and_monitor_up_resolves_it(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    monitor_id = uuid.uuid4()
    async with listening(
        statuspage.env,
        "component.status_changed",
        "incident.opened",
        "incident.notice_posted",
        "incident.resolved",
    ) as events:
        await inject(statuspage.env, monitor_down(monitor_id), producer="monitor")

        changed = await next_event(events, "component.status_changed")
        assert changed.payload["new_status"] == "major_outage"
        assert changed.payload["old_status"] == "operational"
        assert changed.payload["component_id"] == web["id"]
        opened = await next_event(events, "incident.opened")
        assert opened.payload["automatic"] is True
        assert "Web app" in opened.payload["title"]
        first = await next_event(events, "incident.notice_posted")
        assert "HTTP 502 Bad Gateway" in first.payload["message"]
        assert first.payload["status_page_url"].endswith("/status/canvas/")
        assert await statuspage.component_status(web["id"]) == "major_outage"

        summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
        assert summary["status"] == {"indicator": "critical", "description": "Major Service Outage"}
        assert [c["status"] for c in summary["components"]] == ["major_outage"]
        (incident,) = summary["incidents"]
        assert incident["status"] == "investigating"
        incident_id = incident["id"]

        eta = now() + timedelta(hours=1)
        await statuspage.post(
            f"/v1/pages/canvas/incidents/{incident_id}/notices",
            {
                "body": "A failed database upgrade; rolling back.",
                "status": "identified",
                "expected_resolution_at": eta.isoformat(),
            },
        )
        notice = await next_event(events, "incident.notice_posted")
        assert notice.payload["automatic"] is False
        assert notice.payload["incident_status"] == "identified"
        assert notice.payload["message"] == "A failed database upgrade; rolling back."
        assert notice.payload["expected_resolution_at"] is not None

        await inject(statuspage.env, monitor_up(monitor_id), producer="monitor")
        resolved = await next_event(events, "incident.resolved")
        assert resolved.payload["incident_id"] == incident_id

    assert await statuspage.component_status(web["id"]) == "operational"
    summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
    assert summary["incidents"] == []
    assert summary["status"]["indicator"] == "none"
    history = (await statuspage.public("canvas/api/v2/incidents.json")).json()
    (past,) = history["incidents"]
    assert past["status"] == "resolved"
    assert [u["status"] for u in past["incident_updates"]] == [
        "resolved",
        "identified",
        "investigating",
    ]


async def test_a_manual_status_survives_monitor_verdicts_until_cleared(
    statuspage: StatusPages,
) -> None:
    await statuspage.page(auto_open_incidents=False)
    web = await statuspage.component()
    path = f"/v1/pages/canvas/components/{web['id']}/manual-status"
    response = await statuspage.client.put(
        path, json={"status": "partial_outage"}, headers=statuspage.auth()
    )
    assert response.status_code == 204, response.text
    monitor_id = uuid.uuid4()

    await inject(statuspage.env, monitor_down(monitor_id), producer="monitor")
    await eventually(lambda: _observed(statuspage, monitor_id))
    assert await statuspage.component_status(web["id"]) == "partial_outage"

    response = await statuspage.client.delete(path, headers=statuspage.auth())
    assert response.status_code == 204
    assert await statuspage.component_status(web["id"]) == "major_outage"

    await inject(statuspage.env, monitor_up(monitor_id), producer="monitor")

    async def operational() -> bool:
        return await statuspage.component_status(web["id"]) == "operational"

    await eventually(operational)


async def test_the_worst_of_several_monitors_wins_and_late_verdicts_change_nothing(
    statuspage: StatusPages,
) -> None:
    await statuspage.page(auto_open_incidents=False)
    web = await statuspage.component()
    first, second = uuid.uuid4(), uuid.uuid4()
    await inject(statuspage.env, monitor_down(first), producer="monitor")
    await inject(statuspage.env, monitor_down(second), producer="monitor")
    stale_up = monitor_up(second).model_copy(update={"up_at": now() - timedelta(hours=1)})
    await inject(statuspage.env, monitor_up(first), producer="monitor")
    await inject(statuspage.env, stale_up, producer="monitor")
    await eventually(lambda: _observed(statuspage, first, "operational"))
    assert await statuspage.component_status(web["id"]) == "major_outage"


async def _observed(statuspage: StatusPages, monitor_id: uuid.UUID, status: str = "") -> bool:
    from sqlalchemy import select

    from statuspage_sync.models import monitor_observation

    async with statuspage.runtime.sessions() as session:
        found = await session.scalar(
            select(monitor_observation.c.status).where(
                monitor_observation.c.monitor_id == monitor_id
            )
        )
    return found is not None and (not status or found == status)


async def test_a_slow_monitor_shows_degraded_performance_without_an_incident(
    statuspage: StatusPages,
) -> None:
    await statuspage.page()
    web = await statuspage.component()
    monitor_id = uuid.uuid4()
    slow = MonitorDegraded(
        monitor_id=monitor_id,
        monitor_name="Canvas home page",
        product=PRODUCT,
        url="https://canvas.example/",
        error="answered in 4.2 s (threshold 2 s)",
        degraded_since=now(),
    )
    await inject(statuspage.env, slow, producer="monitor")

    async def degraded() -> bool:
        return await statuspage.component_status(web["id"]) == "degraded_performance"

    await eventually(degraded)
    summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
    assert summary["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    assert summary["incidents"] == []

    await inject(statuspage.env, monitor_up(monitor_id), producer="monitor")

    async def operational() -> bool:
        return await statuspage.component_status(web["id"]) == "operational"

    await eventually(operational)

"""Intake follows the notifier's page events and keeps a read model of product health."""

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from contracts import parse_payload
from contracts.common import ComponentStatus, Person, ProductRef
from contracts.intake import TicketStatusChanged
from contracts.monitor import MonitorCameUp, MonitorWentDown
from contracts.notifier import (
    Channel,
    PageAcknowledged,
    PageEscalated,
    PageNotified,
    PageResolved,
    ReporterAcknowledged,
)
from contracts.statuspage import ComponentStatusChanged, IncidentOpened, IncidentResolved
from servicekit.tables import inbox_event
from tests.harness import eventually, wait_connected
from tests.intake.helpers import (
    Intake,
    inject,
    listening,
    new_id,
    next_event,
    now,
)

CANVAS = ProductRef(slug="canvas-hosting", name="Canvas Hosting")
ONCALL = Person(name="Grace Hopper", email="grace@vendor.example")


def notified(*ticket_ids: str, level: int = 1) -> PageNotified:
    return PageNotified(
        page_id=new_id(),
        product=CANVAS,
        level=level,
        oncall=ONCALL,
        channels=(Channel.SMS, Channel.VOICE),
        ticket_ids=tuple(uuid.UUID(t) for t in ticket_ids),
        notified_at=now(),
    )


def acknowledged(*ticket_ids: str) -> PageAcknowledged:
    return PageAcknowledged(
        page_id=new_id(),
        product=CANVAS,
        by=ONCALL,
        ticket_ids=tuple(uuid.UUID(t) for t in ticket_ids),
        acknowledged_at=now(),
    )


async def _status(intake: Intake, ticket_id: str, status: str) -> bool:
    return bool((await intake.ticket(ticket_id))["status"] == status)


async def _timeline(intake: Intake, ticket_id: str) -> list[dict[str, Any]]:
    timeline: list[dict[str, Any]] = (await intake.ticket(ticket_id))["timeline"]
    return timeline


async def test_page_events_move_the_ticket_forward_and_log_each_step(intake: Intake) -> None:
    ticket = await intake.file()
    tid = ticket["id"]
    async with listening(intake.env, TicketStatusChanged.event_type) as events:
        await wait_connected(intake.runtime)
        await inject(intake.env, notified(tid))
        await eventually(lambda: _status(intake, tid, "oncall_notified"))
        assert "has been paged" in (await intake.ticket(tid))["next_steps"]
        changed = parse_payload(await next_event(events, TicketStatusChanged.event_type))
        assert isinstance(changed, TicketStatusChanged)
        assert (changed.old_status, changed.new_status) == ("new", "oncall_notified")
        assert changed.number == ticket["number"]

        await inject(intake.env, acknowledged(tid))
        await eventually(lambda: _status(intake, tid, "acknowledged"))
        assert "is working on it" in (await intake.ticket(tid))["next_steps"]

        await inject(intake.env, notified(tid, level=2))
        escalated = PageEscalated(
            page_id=new_id(),
            product=CANVAS,
            from_level=1,
            to_level=2,
            oncall=ONCALL,
            reason="no ack in 5 minutes",
            ticket_ids=(uuid.UUID(tid),),
            escalated_at=now(),
        )
        await inject(intake.env, escalated)
        await eventually(
            lambda: _has_kind(intake, tid, "escalated"),
        )
        assert (await intake.ticket(tid))["status"] == "acknowledged"

        await inject(
            intake.env,
            PageResolved(
                page_id=new_id(),
                product=CANVAS,
                ticket_ids=(uuid.UUID(tid),),
                resolved_at=now(),
                note="rolled back deploy",
            ),
        )
        await eventually(lambda: _status(intake, tid, "resolved"))
        assert "marked resolved" in (await intake.ticket(tid))["next_steps"]
        transitions = [changed.new_status]
        for _ in range(2):
            payload = parse_payload(await next_event(events, TicketStatusChanged.event_type))
            assert isinstance(payload, TicketStatusChanged)
            transitions.append(payload.new_status)
    assert transitions == ["oncall_notified", "acknowledged", "resolved"]

    timeline = await _timeline(intake, tid)
    assert [(e["kind"], e["status"]) for e in timeline] == [
        ("filed", "new"),
        ("status_changed", "oncall_notified"),
        ("status_changed", "acknowledged"),
        ("escalated", None),
        ("status_changed", "resolved"),
    ]
    assert "Grace Hopper" in timeline[1]["detail"]
    assert "rolled back deploy" in timeline[-1]["detail"]

    closed = await intake.client.post(f"/v1/tickets/{tid}/close", headers=intake.auth())
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert "paging" not in closed.json()["next_steps"]


async def _has_kind(intake: Intake, ticket_id: str, kind: str) -> bool:
    return kind in [e["kind"] for e in await _timeline(intake, ticket_id)]


async def test_a_late_notification_never_moves_a_ticket_back(intake: Intake) -> None:
    tid = (await intake.file())["id"]
    await wait_connected(intake.runtime)
    await inject(intake.env, acknowledged(tid))
    await eventually(lambda: _status(intake, tid, "acknowledged"))
    late = await inject(intake.env, notified(tid))
    await eventually(lambda: _inbox_has(intake, late.id))
    assert (await intake.ticket(tid))["status"] == "acknowledged"
    assert len(await _timeline(intake, tid)) == 2


async def _inbox_has(intake: Intake, event_id: uuid.UUID) -> bool:
    async with intake.runtime.sessions() as session:
        return (
            await session.scalar(
                select(inbox_event.c.event_id).where(inbox_event.c.event_id == event_id)
            )
        ) is not None


async def test_one_page_event_moves_every_grouped_ticket(intake: Intake) -> None:
    first = (await intake.file())["id"]
    second = (await intake.file(organization="Other Org"))["id"]
    await wait_connected(intake.runtime)
    await inject(intake.env, notified(first, second, str(uuid.uuid4())))
    await eventually(lambda: _status(intake, second, "oncall_notified"))
    assert (await intake.ticket(first))["status"] == "oncall_notified"


async def test_reporter_email_is_noted_on_the_timeline(intake: Intake) -> None:
    ticket = await intake.file()
    await wait_connected(intake.runtime)
    await inject(
        intake.env,
        ReporterAcknowledged(
            page_id=new_id(),
            ticket_id=uuid.UUID(ticket["id"]),
            reporter=Person(name="Ada Lovelace", email="ada@acme.example"),
            sent_at=now(),
        ),
    )
    await eventually(lambda: _has_kind(intake, ticket["id"], "reporter_emailed"))


async def test_health_model_ignores_out_of_order_monitor_events(intake: Intake) -> None:
    await wait_connected(intake.runtime)
    monitor_id = new_id()
    t0 = now() - timedelta(minutes=10)
    up = MonitorCameUp(
        monitor_id=monitor_id,
        monitor_name="canvas",
        product=CANVAS,
        down_since=t0,
        up_at=t0 + timedelta(minutes=5),
    )
    stale_down = MonitorWentDown(
        monitor_id=monitor_id, monitor_name="canvas", product=CANVAS, error="503", down_since=t0
    )
    await inject(intake.env, up, producer="monitor")
    await eventually(lambda: _filed_state(intake, "up"))
    marker = await inject(intake.env, stale_down, producer="monitor")
    await eventually(lambda: _inbox_has(intake, marker.id))
    assert (await intake.file())["monitoring_state"] == "up"

    second_monitor = MonitorWentDown(
        monitor_id=new_id(),
        monitor_name="canvas api",
        product=CANVAS,
        error="timeout",
        down_since=now(),
    )
    await inject(intake.env, second_monitor, producer="monitor")
    await eventually(lambda: _filed_state(intake, "down"))


async def _filed_state(intake: Intake, state: str) -> bool:
    return bool((await intake.file(severity="low"))["monitoring_state"] == state)


async def test_incidents_and_components_count_as_monitoring(intake: Intake) -> None:
    await wait_connected(intake.runtime)
    incident = IncidentOpened(
        incident_id=new_id(),
        status_page="status.vendor.example",
        product=CANVAS,
        title="Canvas 502s",
        opened_at=now(),
    )
    await inject(intake.env, incident, producer="statuspage")
    await eventually(lambda: _filed_state(intake, "down"))
    await inject(
        intake.env,
        IncidentResolved(
            incident_id=incident.incident_id,
            status_page=incident.status_page,
            product=CANVAS,
            resolved_at=now(),
        ),
        producer="statuspage",
    )
    await eventually(lambda: _filed_state(intake, "up"))
    await inject(
        intake.env,
        ComponentStatusChanged(
            component_id=new_id(),
            status_page="status.vendor.example",
            product=CANVAS,
            component="Hosting",
            old_status=ComponentStatus.OPERATIONAL,
            new_status=ComponentStatus.MAJOR_OUTAGE,
            changed_at=now(),
        ),
        producer="statuspage",
    )
    await eventually(lambda: _filed_state(intake, "down"))


async def test_report_counts_critical_tickets_filed_while_monitoring_saw_the_product_up(
    intake: Intake,
) -> None:
    await wait_connected(intake.runtime)
    down = MonitorWentDown(
        monitor_id=new_id(), monitor_name="canvas", product=CANVAS, error="502", down_since=now()
    )
    await inject(intake.env, down, producer="monitor")
    await eventually(lambda: _filed_state(intake, "down"))
    await intake.file(organization="Acme")
    await inject(
        intake.env,
        MonitorCameUp(
            monitor_id=down.monitor_id,
            monitor_name="canvas",
            product=CANVAS,
            down_since=down.down_since,
            up_at=now(),
        ),
        producer="monitor",
    )
    await eventually(lambda: _filed_state(intake, "up"))
    for _ in range(3):
        await intake.file(organization="Crywolf Inc")
    await intake.file(organization="Acme")
    await intake.file(organization="Acme", product="atomic-apps")
    await intake.file(organization="Acme", severity="high")

    response = await intake.client.get(
        "/v1/reports/critical-usage", headers=intake.auth(intake.reader_key)
    )
    assert response.status_code == 200
    rows = {row["organization"]: row for row in response.json()["organizations"]}
    assert rows["Crywolf Inc"] == {
        "organization": "Crywolf Inc",
        "critical_total": 3,
        "filed_while_up": 3,
        "filed_while_down": 0,
        "filed_while_unknown": 0,
    }
    assert rows["Acme"]["critical_total"] == 3
    assert rows["Acme"]["filed_while_up"] == 1
    assert rows["Acme"]["filed_while_down"] == 1
    assert rows["Acme"]["filed_while_unknown"] == 1
    assert response.json()["organizations"][0]["organization"] == "Crywolf Inc"

    future = await intake.client.get(
        "/v1/reports/critical-usage",
        params={"created_from": "2999-01-01T00:00:00Z"},
        headers=intake.auth(intake.reader_key),
    )
    assert future.json()["organizations"] == []

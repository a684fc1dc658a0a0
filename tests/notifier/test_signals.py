"""Monitors, patch-window verification and the status-page deadlines: pages opened,
resolved, escalated and reminders sent, each once, in whatever order events arrive."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from contracts.common import Person
from contracts.monitor import MonitorCameUp, MonitorVerificationFailed, MonitorWentDown
from contracts.statuspage import DueReason, StatusUpdateDueSoon, StatusUpdateOverdue
from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject, listening
from tests.notifier.helpers import PRODUCT, Notifier, for_delivery, next_payload, ticket_filed
from tests.smtp import SmtpServer

DOWN_SINCE = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def down(monitor_id: uuid.UUID, *, in_patch_window: bool = False) -> MonitorWentDown:
    """monitor.down as the monitor publishes it."""
    return MonitorWentDown(
        monitor_id=monitor_id,
        monitor_name="Canvas home",
        product=PRODUCT,
        error="HTTP 502",
        down_since=DOWN_SINCE,
        in_patch_window=in_patch_window,
    )


def up(monitor_id: uuid.UUID) -> MonitorCameUp:
    """monitor.up for the outage `down` describes."""
    return MonitorCameUp(
        monitor_id=monitor_id,
        monitor_name="Canvas home",
        product=PRODUCT,
        down_since=DOWN_SINCE,
        up_at=DOWN_SINCE + timedelta(minutes=5),
    )


async def _ladder(service: Notifier, timeout_s: float = 60) -> tuple[str, str]:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    await service.policy(("person", alice, timeout_s), ("person", bob, timeout_s))
    return alice, bob


async def test_monitor_down_pages_once_and_up_resolves(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    await _ladder(service)
    monitor = uuid.uuid4()
    async with listening(env, "page.resolved") as events:
        await inject(env, down(monitor), producer="monitor")
        await inject(env, down(monitor), producer="monitor")
        await smtp.wait_for(1, address="alice@ops.example")
        await inject(env, up(monitor), producer="monitor")
        resolved = await next_payload(events, "page.resolved")
    (page,) = await service.pages()
    assert resolved.page_id == uuid.UUID(page["id"])
    assert page["state"] == "resolved"
    assert len(smtp.to("alice@ops.example")) == 1


async def test_monitor_up_arriving_before_down_opens_no_page(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    await _ladder(service)
    monitor = uuid.uuid4()
    await inject(env, up(monitor), producer="monitor")
    await eventually(lambda: service.scalar("SELECT count(*) FROM handled_signal"))
    await inject(env, down(monitor), producer="monitor")
    await inject(env, ticket_filed(), producer="intake")  # a marker handled after it
    await smtp.wait_for(1, address="alice@ops.example")
    (page,) = await service.pages()
    assert page["source"] == "ticket"


async def test_outage_in_patch_window_pages_low_urgency_until_a_ticket_joins(
    env: Throwaway, smtp: SmtpServer
) -> None:
    from tests.notifier.helpers import running_notifier

    async with running_notifier(env, smtp) as service:
        await _ladder(service, timeout_s=0.5)
        monitor = uuid.uuid4()
        await inject(env, down(monitor, in_patch_window=True), producer="monitor")
        await smtp.wait_for(1, address="alice@ops.example")
        await asyncio.sleep(1.5)
        assert smtp.to("bob@ops.example") == []  # low urgency: level 1 only
        (page,) = await service.pages()
        assert page["urgency"] == "low"

        await inject(env, ticket_filed(), producer="intake")
        await smtp.wait_for(1, address="bob@ops.example", timeout_s=5)
        (page,) = await service.pages()
        assert page["urgency"] == "high"
        assert len(page["tickets"]) == 1
        await inject(env, up(monitor), producer="monitor")
        await asyncio.sleep(0.5)
        (page,) = await service.pages()
        assert page["state"] != "resolved"  # a ticket is on it: people resolve it


async def test_failed_verification_pages(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    await _ladder(service)
    now = datetime.now(UTC)
    failed = MonitorVerificationFailed(
        patch_window_id=uuid.uuid4(),
        product=PRODUCT,
        starts_at=now - timedelta(hours=1),
        ends_at=now,
        monitor_ids=(uuid.uuid4(),),
        reason="the patch window produced no alert",
    )
    await inject(env, failed, producer="monitor")
    await inject(env, failed, producer="monitor")
    await smtp.wait_for(1, address="alice@ops.example")
    (page,) = await service.pages()
    assert page["source"] == "verification"
    assert "no alert" in smtp.to("alice@ops.example")[0].text()


async def test_overdue_escalates_and_reminds_the_reporter_once_per_deadline(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    await _ladder(service)
    ticket = ticket_filed(reporter="ada@acme.example")
    await inject(env, ticket, producer="intake")
    await smtp.wait_for(1, address="ada@acme.example")
    (page,) = await service.pages()
    overdue = StatusUpdateOverdue(
        ticket_id=ticket.ticket_id,
        page_id=uuid.UUID(page["id"]),
        product=PRODUCT,
        reporter=ticket.reporter,
        reported_at=ticket.filed_at,
        deadline_at=ticket.filed_at + timedelta(minutes=30),
    )
    async with listening(env, "page.escalated") as events:
        await inject(env, overdue, producer="statuspage")
        await inject(env, overdue, producer="statuspage")
        escalated = await next_payload(events, "page.escalated")
        await smtp.wait_for(2, address="ada@acme.example")
        await smtp.wait_for(1, address="bob@ops.example")
        await asyncio.sleep(0.5)
        assert events.empty()
    assert (escalated.from_level, escalated.to_level) == (1, 2)
    assert "status-page update" in escalated.reason
    reminders = for_delivery(smtp, "reporter-reminder:")
    assert len(reminders) == 1
    assert service.settings.after_hours_phone in reminders[0].text()
    assert (
        reminders[0].message["In-Reply-To"]
        == for_delivery(smtp, "reporter-ack:")[0].message["Message-ID"]
    )
    assert len(smtp.to("bob@ops.example")) == 1

    # A second deadline (a later promise) escalates again: the top level, repeated.
    later = overdue.model_copy(update={"deadline_at": overdue.deadline_at + timedelta(minutes=30)})
    await inject(env, later, producer="statuspage")
    await smtp.wait_for(2, address="bob@ops.example")
    await smtp.wait_for(3, address="ada@acme.example")


async def test_overdue_before_the_ticket_opens_the_page_and_reminds(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    await _ladder(service)
    ticket = ticket_filed(reporter="ada@acme.example")
    overdue = StatusUpdateOverdue(
        ticket_id=ticket.ticket_id,
        product=PRODUCT,
        reporter=ticket.reporter,
        reported_at=ticket.filed_at,
        deadline_at=ticket.filed_at + timedelta(minutes=30),
    )
    await inject(env, overdue, producer="statuspage")
    await inject(env, ticket, producer="intake")
    await smtp.wait_for(1, address="bob@ops.example")
    await eventually(lambda: for_delivery(smtp, "reporter-reminder:"))

    async def numbered() -> bool:
        (page,) = await service.pages()
        return [(t["ticket_id"], t["number"]) for t in page["tickets"]] == [
            (str(ticket.ticket_id), ticket.number)
        ]

    await eventually(numbered)


async def test_due_soon_reminds_whoever_acknowledged(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    _, bob = await _ladder(service)
    ticket = ticket_filed()
    await inject(env, ticket, producer="intake")
    await smtp.wait_for(1, address="alice@ops.example")
    (page,) = await service.pages()
    await service.post(f"/v1/pages/{page['id']}/acknowledge", {"person_id": bob}, status=200)
    due = StatusUpdateDueSoon(
        deadline_id=uuid.uuid4(),
        reason=DueReason.NO_UPDATE_AFTER_REPORT,
        status_page="canvas",
        status_page_url="https://status.example.com/canvas",
        product=PRODUCT,
        ticket_id=ticket.ticket_id,
        reporter=Person(name="Ada", email="ada@acme.example"),
        started_at=ticket.filed_at,
        due_at=ticket.filed_at + timedelta(minutes=30),
        message="No status-page update 20 minutes after a CRITICAL report.",
    )
    await inject(env, due, producer="statuspage")
    await inject(env, due, producer="statuspage")
    await smtp.wait_for(1, address="bob@ops.example")
    await asyncio.sleep(0.5)
    (mail,) = smtp.to("bob@ops.example")
    assert "20 minutes after a CRITICAL report" in mail.text()
    assert "http://notifier/v1/links/" in mail.text()
    assert len(smtp.to("alice@ops.example")) == 1

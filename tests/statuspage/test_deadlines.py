"""The 30-minute promises, watched: reminders, overdue reports, and notices that keep them."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from contracts.common import Person
from contracts.intake import TicketFiled
from contracts.notifier import Channel, PageNotified
from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject, listening, next_event
from tests.statuspage.helpers import (
    PRODUCT,
    critical_ticket,
    monitor_down,
    now,
    running_statuspage,
)

FAST = {"report_reminder_s": 1.0, "report_update_deadline_s": 2.0, "eta_reminder_s": 600.0}
ROOMY = {**FAST, "report_reminder_s": 4.0, "report_update_deadline_s": 5.0}
"""For tests that post a notice in time: seconds enough for it on a loaded machine."""


async def _past_the_deadline(ticket: TicketFiled) -> None:
    """Sleep until half a second after a ROOMY deadline of `ticket` would have fired."""
    left = ticket.filed_at + timedelta(seconds=5.5) - now()
    await asyncio.sleep(max(left.total_seconds(), 0.5))


async def test_a_critical_report_with_no_notice_is_reminded_then_overdue_once(
    env: Throwaway,
) -> None:
    async with (
        running_statuspage(env, **FAST) as statuspage,
        listening(env, "statuspage.update_due_soon", "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        ticket = critical_ticket()
        await inject(env, ticket, producer="intake")
        page_id = uuid.uuid4()
        await inject(
            env,
            PageNotified(
                page_id=page_id,
                product=PRODUCT,
                level=1,
                oncall=Person(name="Grace", email="grace@vendor.example"),
                channels=(Channel.SMS,),
                ticket_ids=(ticket.ticket_id,),
                notified_at=now(),
            ),
        )

        due = await next_event(events, "statuspage.update_due_soon")
        assert due.payload["reason"] == "no_update_after_report"
        assert due.payload["ticket_id"] == str(ticket.ticket_id)
        assert due.payload["page_id"] == str(page_id)
        assert due.payload["status_page"] == "canvas"
        assert due.payload["reporter"]["email"] == "ada@acme.example"
        assert "Ada Lovelace" in due.payload["message"]
        overdue = await next_event(events, "statuspage.update_overdue")
        assert overdue.payload["ticket_id"] == str(ticket.ticket_id)
        assert overdue.payload["page_id"] == str(page_id)
        assert overdue.payload["status_page_url"].endswith("/status/canvas/")
        reported = datetime.fromisoformat(overdue.payload["reported_at"])
        deadline = datetime.fromisoformat(overdue.payload["deadline_at"])
        assert deadline - reported == timedelta(seconds=2)

        await inject(env, ticket, producer="intake")  # the same report again, re-sent
        await asyncio.sleep(2.5)
        assert events.empty()
        (watched,) = await statuspage.get("/v1/pages/canvas/deadlines")
        assert watched["state"] == "expired"


async def test_a_notice_posted_after_the_report_keeps_the_promise(env: Throwaway) -> None:
    async with (
        running_statuspage(env, **ROOMY) as statuspage,
        listening(env, "statuspage.update_due_soon", "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        ticket = critical_ticket()
        await inject(env, ticket, producer="intake")

        async def watching() -> bool:
            return bool(await statuspage.get("/v1/pages/canvas/deadlines"))

        await eventually(watching)
        await statuspage.post(
            "/v1/pages/canvas/incidents",
            {"name": "Canvas is unavailable", "body": "We are looking into reports of errors."},
        )
        await _past_the_deadline(ticket)
        assert events.empty()
        deadlines = await statuspage.get("/v1/pages/canvas/deadlines")
        (kept,) = [d for d in deadlines if d["kind"] == "no_update_after_report"]
        assert kept["state"] == "cleared"
        assert kept["reminded_at"] is None


async def test_a_report_filed_after_the_last_notice_is_still_watched(env: Throwaway) -> None:
    async with (
        running_statuspage(env, **FAST) as statuspage,
        listening(env, "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        await statuspage.post(
            "/v1/pages/canvas/incidents", {"name": "Slow pages", "body": "Investigating."}
        )
        await inject(env, critical_ticket(), producer="intake")
        await next_event(events, "statuspage.update_overdue")


async def test_an_incident_open_without_an_eta_notice_gets_a_reminder(env: Throwaway) -> None:
    settings = {**FAST, "eta_reminder_s": 1.0}
    async with (
        running_statuspage(env, **settings) as statuspage,
        listening(env, "statuspage.update_due_soon") as events,
    ):
        await statuspage.page()
        without = await statuspage.post(
            "/v1/pages/canvas/incidents", {"name": "Errors on upload", "body": "Investigating."}
        )
        eta = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        await statuspage.post(
            "/v1/pages/canvas/incidents",
            {"name": "Slow search", "body": "Reindexing.", "expected_resolution_at": eta},
        )
        due = await next_event(events, "statuspage.update_due_soon")
        assert due.payload["reason"] == "no_eta_notice"
        assert due.payload["incident_id"] == without["id"]
        assert due.payload["ticket_id"] is None
        await asyncio.sleep(1.5)
        assert events.empty()


async def test_a_notice_with_an_eta_stops_the_eta_reminder(env: Throwaway) -> None:
    settings = {**FAST, "eta_reminder_s": 1.5}
    async with (
        running_statuspage(env, **settings) as statuspage,
        listening(env, "statuspage.update_due_soon") as events,
    ):
        await statuspage.page()
        incident = await statuspage.post(
            "/v1/pages/canvas/incidents", {"name": "Errors on upload", "body": "Investigating."}
        )
        eta = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        await statuspage.post(
            f"/v1/pages/canvas/incidents/{incident['id']}/notices",
            {"body": "A full disk; expanding it.", "expected_resolution_at": eta},
        )
        await asyncio.sleep(2.5)
        assert events.empty()


async def test_a_report_watched_on_two_pages_is_reminded_and_escalated_once(
    env: Throwaway,
) -> None:
    async with (
        running_statuspage(env, **FAST) as statuspage,
        listening(env, "statuspage.update_due_soon", "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        await statuspage.page(slug="everything", title="All products")
        await inject(env, critical_ticket(), producer="intake")
        await next_event(events, "statuspage.update_due_soon")
        await next_event(events, "statuspage.update_overdue")
        await asyncio.sleep(1.5)
        assert events.empty()
        for slug in ("canvas", "everything"):
            (watched,) = await statuspage.get(f"/v1/pages/{slug}/deadlines")
            assert watched["state"] == "expired"


async def test_a_notice_on_one_of_the_pages_keeps_the_promise_on_every_page(
    env: Throwaway,
) -> None:
    async with (
        running_statuspage(env, **ROOMY) as statuspage,
        listening(env, "statuspage.update_due_soon", "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        await statuspage.page(slug="everything", title="All products")
        ticket = critical_ticket()
        await inject(env, ticket, producer="intake")

        async def watched_on_both() -> bool:
            pages = [
                await statuspage.get(f"/v1/pages/{s}/deadlines") for s in ("canvas", "everything")
            ]
            return all(pages)

        await eventually(watched_on_both)
        await statuspage.post(
            "/v1/pages/everything/incidents", {"name": "Canvas errors", "body": "Looking."}
        )
        await _past_the_deadline(ticket)
        assert events.empty()
        (kept,) = await statuspage.get("/v1/pages/canvas/deadlines")
        assert kept["state"] == "cleared"


async def test_klaxons_own_notices_do_not_keep_the_promise(env: Throwaway) -> None:
    async with (
        running_statuspage(env, **FAST) as statuspage,
        listening(env, "incident.notice_posted", "statuspage.update_overdue") as events,
    ):
        await statuspage.page()
        await statuspage.component()
        ticket = critical_ticket()
        await inject(env, ticket, producer="intake")

        async def watching() -> bool:
            return bool(await statuspage.get("/v1/pages/canvas/deadlines"))

        await eventually(watching)
        monitor_id = uuid.uuid4()
        await inject(env, monitor_down(monitor_id), producer="monitor")  # automatic notice
        automatic = await next_event(events, "incident.notice_posted")
        assert automatic.payload["automatic"] is True
        overdue = await next_event(events, "statuspage.update_overdue")
        assert overdue.payload["ticket_id"] == str(ticket.ticket_id)
        deadlines = await statuspage.get("/v1/pages/canvas/deadlines")
        (report,) = [d for d in deadlines if d["ticket_id"] == str(ticket.ticket_id)]
        assert report["state"] == "expired"

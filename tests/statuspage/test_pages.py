"""A page's address and products are published for the notifier; deadlines outlive a restart."""

from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject, listening, next_event
from tests.statuspage.helpers import critical_ticket, running_statuspage


async def test_a_pages_url_and_products_are_published_whenever_they_change(
    env: Throwaway,
) -> None:
    async with (
        running_statuspage(env, public_base_url="https://status.vendor.example") as statuspage,
        listening(env, "statuspage.published") as events,
    ):
        page = await statuspage.page()
        created = await next_event(events, "statuspage.published")
        assert created.payload["status_page_id"] == page["id"]
        assert created.payload["status_page"] == "canvas"
        assert created.payload["status_page_url"] == "https://status.vendor.example/status/canvas/"
        assert created.payload["products"] == ["canvas-hosting"]
        assert page["url"] == created.payload["status_page_url"]

        response = await statuspage.client.patch(
            "/v1/pages/canvas",
            json={"products": ["canvas-hosting", "atomic-apps"]},
            headers=statuspage.auth(),
        )
        assert response.status_code == 200, response.text
        changed = await next_event(events, "statuspage.published")
        assert changed.payload["products"] == ["canvas-hosting", "atomic-apps"]
        assert changed.payload["changed_at"] > created.payload["changed_at"]

        response = await statuspage.client.patch(
            "/v1/pages/canvas",
            json={"time_zone": "Europe/Paris", "products": None},
            headers=statuspage.auth(),
        )
        assert response.status_code == 200
        assert response.json()["products"] == ["canvas-hosting", "atomic-apps"]
        renamed = await statuspage.client.patch(
            "/v1/pages/canvas", json={"slug": "canvas-status"}, headers=statuspage.auth()
        )
        assert renamed.status_code == 200
        moved = await next_event(events, "statuspage.published")  # the time zone published none
        assert moved.payload["status_page_url"].endswith("/status/canvas-status/")
        assert (await statuspage.public("canvas-status/")).status_code == 200
        assert (await statuspage.public("canvas/")).status_code == 404


async def test_a_deadline_started_before_a_restart_fires_after_it(env: Throwaway) -> None:
    fast = {"report_reminder_s": 2.0, "report_update_deadline_s": 3.0}
    ticket = critical_ticket()
    async with listening(env, "statuspage.update_overdue") as events:
        async with running_statuspage(env, **fast) as statuspage:
            await statuspage.page()
            await inject(env, ticket, producer="intake")

            async def watching() -> bool:
                return bool(await statuspage.get("/v1/pages/canvas/deadlines"))

            await eventually(watching)
        # stopped before the reminder was due; a new process picks the timers up
        async with running_statuspage(env, **fast):
            overdue = await next_event(events, "statuspage.update_overdue")
            assert overdue.payload["ticket_id"] == str(ticket.ticket_id)


async def test_health_reports_the_page_cache_and_the_watched_promises(env: Throwaway) -> None:
    async with running_statuspage(env) as statuspage:
        await statuspage.page()
        await inject(env, critical_ticket(), producer="intake")

        async def watching() -> bool:
            return bool(await statuspage.get("/v1/pages/canvas/deadlines"))

        await eventually(watching)
        assert (await statuspage.public("canvas/")).status_code == 200

        async def reported() -> bool:
            health = (await statuspage.client.get("/health")).json()
            return bool(
                health["deadlines"] == {"watching": 1, "overdue": 0}
                and health["page_cache"]["pages"] == 1
                and health["page_cache"]["pages_rendered"] == 1
            )

        await eventually(reported, timeout_s=10)


async def test_every_pages_address_is_published_again_at_start_up(env: Throwaway) -> None:
    async with (
        running_statuspage(env) as statuspage,
        listening(env, "statuspage.published") as first,
    ):
        page = await statuspage.page()
        created = await next_event(first, "statuspage.published")
        renamed = await statuspage.client.patch(
            "/v1/pages/canvas", json={"title": "Canvas"}, headers=statuspage.auth()
        )
        assert renamed.status_code == 200
        sent = await next_event(first, "statuspage.published")
    # the notifier lost its copy: the next start sends the page's current address again
    async with listening(env, "statuspage.published") as events, running_statuspage(env):
        again = await next_event(events, "statuspage.published")
        while again.id in {sent.id, created.id}:  # a late second copy from the relay
            again = await next_event(events, "statuspage.published")
        assert again.payload["status_page_id"] == page["id"]
        assert again.payload["title"] == "Canvas"
        assert again.payload["status_page_url"].endswith("/status/canvas/")
        assert again.payload["products"] == ["canvas-hosting"]
        # no newer than the copy a reader may still have, so it is ignored there
        assert again.payload["changed_at"] == sent.payload["changed_at"]

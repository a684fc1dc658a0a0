"""The notifier service's FastAPI app."""

import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notifier import api, api_pages, coverage, link_secret, schemas
from notifier.handlers import make_handlers, make_timer_handlers
from notifier.models import page
from notifier.outcomes import make_outcome_handler
from notifier.settings import Settings
from notifier.smtp import SmtpPool, send_email, smtp_resource
from servicekit.api_openapi import install_openapi
from servicekit.deliveries import Delivery, Sender
from servicekit.runtime import Runtime, create_service_app
from servicekit.sampler import Figure
from servicekit.settings import ServiceSettings

DESCRIPTION = (
    "Pages the on-call engineer and escalates until someone acknowledges; emails the "
    "reporter of a CRITICAL ticket once on-call has been notified. Send `Authorization: "
    "Bearer <key>` with scope oncall:read, oncall:write or pages:write; signed action links "
    "and iCal feeds need no key."
)

BODIES = (
    schemas.PersonCreate,
    schemas.ScheduleCreate,
    schemas.OverrideCreate,
    schemas.PolicyCreate,
    schemas.PageAction,
)


def email_sender(runtime: Runtime) -> Sender:
    """The email channel's sender, on the runtime's SMTP pool."""
    settings = runtime.settings
    assert isinstance(settings, Settings)
    pool: SmtpPool = runtime.resources["smtp"]

    async def send(item: Delivery) -> Mapping[str, Any] | None:
        if item.payload.get("skip_unless_triggered"):
            state = await _page_state(runtime, item.payload["page_id"])
            if state != "triggered":
                return {"skipped": f"the page is {state}"}
        return await send_email(pool, settings, item)

    return send


async def _page_state(runtime: Runtime, page_id: str) -> str | None:
    async with runtime.sessions() as session:
        state: str | None = await session.scalar(select(page.c.state).where(page.c.id == page_id))
        return state


WARNINGS_EVERY_S = 60.0
"""How often the ``/health`` figure recomputes the warnings (14 days of every schedule)."""


def warnings_figure(settings: Settings) -> Figure:
    """``/health`` figure: schedule gaps and people nobody can reach, recomputed at most
    every `WARNINGS_EVERY_S` (the sampler asks every few seconds)."""
    last: dict[str, Any] = {}

    async def figure(session: AsyncSession) -> Mapping[str, Any]:
        now = time.monotonic()
        if not last or now - last["at"] > WARNINGS_EVERY_S:
            found = await coverage.warnings(session, settings)
            last.update(at=now, value={"count": len(found), "warnings": found[:20]})
        value: Mapping[str, Any] = last["value"]
        return value

    return figure


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database, broker and SMTP connections open in the lifespan, and the
    link secret is read there once."""
    if not isinstance(settings, Settings):
        settings = Settings.model_validate(settings.model_dump()) if settings else Settings()
    app = create_service_app(
        settings,
        title="Klaxon notifier",
        routers=[api.router, api_pages.router],
        handlers=make_handlers(settings),
        timer_handlers=make_timer_handlers(settings),
        senders={"email": email_sender},
        delivery_outcomes={"email": make_outcome_handler(settings)},
        resources={link_secret.RESOURCE: link_secret.link_secret_resource, "smtp": smtp_resource},
        figures={"oncall_warnings": warnings_figure(settings)},
        description=DESCRIPTION,
    )
    install_openapi(app, body_models=BODIES)
    return app

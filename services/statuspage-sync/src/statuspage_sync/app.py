"""The statuspage-sync service's FastAPI app: the admin API under ``/v1`` and the public
status pages under ``/status/<slug>/`` (served from memory, see `statuspage_sync.cache`)."""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.api_openapi import install_openapi
from servicekit.runtime import Runtime, create_service_app
from servicekit.settings import ServiceSettings
from statuspage_sync import api, api_editing, deadlines, maintenance, pages
from statuspage_sync.cache import PageCache
from statuspage_sync.handlers import make_handlers
from statuspage_sync.public import PublicPages
from statuspage_sync.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Status pages kept true by monitor verdicts and engineers' notices. The admin API "
    "(`/v1`, API key with `statuspage:read` / `statuspage:write`) manages pages, components, "
    "incidents, notices and maintenances. The public pages need no key: "
    "`/status/<slug>/` (HTML), `/status/<slug>/api/v2/summary.json` and the other "
    "Statuspage v2 JSON documents, `/status/<slug>/history.atom` and `history.rss`."
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database and broker connections open in the lifespan."""
    if not isinstance(settings, Settings):
        settings = Settings.model_validate(settings.model_dump()) if settings else Settings()
    cache = PageCache(settings)

    async def follow_versions(runtime: Runtime) -> None:
        await cache.follow(runtime)

    async def republish_pages(runtime: Runtime) -> None:
        """Once per start: every page's ``statuspage.published`` again, for a reader (the
        notifier) that lost its copy; retried with backoff until it commits."""
        async with runtime.sessions() as session:
            count = await pages.republish_pages(session, settings)
            await session.commit()
        log.info("published the address of %d status pages again", count)
        await asyncio.Event().wait()  # done: a loop that returned would be run again

    async def page_cache_figure(_: AsyncSession) -> Mapping[str, Any]:
        return {
            "pages": len(cache.versions),
            "pages_rendered": len(cache.entries),
            "renders": cache.renders,
        }

    app = create_service_app(
        settings,
        title="Klaxon statuspage-sync",
        routers=[api.router, api_editing.router],
        handlers=make_handlers(settings),
        timer_handlers={
            **deadlines.make_timer_handlers(settings),
            **maintenance.make_timer_handlers(settings),
        },
        loops={"page versions": follow_versions, "republish pages": republish_pages},
        figures={"page_cache": page_cache_figure, "deadlines": deadlines.figure},
        description=DESCRIPTION,
    )
    app.state.page_cache = cache
    app.add_middleware(PublicPages, cache=cache)
    install_openapi(app, body_models=api.BODY_MODELS + api_editing.BODY_MODELS)
    return app

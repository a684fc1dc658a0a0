"""The monitor service's FastAPI app: the API, the scheduler loop, the rollup loop, the
shared HTTP clients, the product read model and the patch-window timer."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.api import router
from monitor.checks import Clients
from monitor.monitors import policy
from monitor.results import prune_results, prune_rollups, roll_up
from monitor.scheduler import Scheduler
from monitor.schemas import ApplyDocument, MonitorSpec, PatchWindowSpec
from monitor.settings import Settings
from monitor.windows import CLOSE_TIMER, close_window
from servicekit import catalogue
from servicekit.api_openapi import install_openapi
from servicekit.outgoing import create_client
from servicekit.runtime import Runtime, create_service_app
from servicekit.settings import ServiceSettings

DESCRIPTION = (
    "HTTP, TCP and heartbeat monitoring that confirms an outage (several failed checks, in"
    " at least half of the regions that check a monitor) before it publishes `monitor.down`,"
    " and patch windows that prove monitoring works. Send `Authorization: Bearer <key>`"
    " (scopes monitors:read, monitors:write) on every /v1 call except heartbeat pings."
)

ROLLUP_INTERVAL_S = 600.0
"""How often each replica rolls up the results of the current and the previous hour."""


@contextlib.asynccontextmanager
async def http_clients(settings: Settings) -> AsyncIterator[Clients]:
    """The replica's shared HTTP clients (one verifying TLS, one not), closed at shutdown.

    httpx logs every request at INFO; a check's outcome is stored instead, so its
    logger is kept to warnings.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rules = policy(settings)
    async with (
        create_client(rules) as verifying,
        create_client(rules, verify=False) as trusting,
    ):
        yield Clients(verifying=verifying, trusting=trusting, policy=rules)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database, broker and HTTP clients open in the lifespan."""
    if not isinstance(settings, Settings):
        settings = Settings.model_validate(settings.model_dump()) if settings else Settings()
    monitor_settings = settings
    current: dict[str, Scheduler] = {}

    async def run_scheduler(runtime: Runtime) -> None:
        scheduler = Scheduler(monitor_settings, runtime.sessions, runtime.resources["http"])
        current["scheduler"] = scheduler
        await scheduler.run()

    async def run_rollups(runtime: Runtime) -> None:
        while True:
            async with runtime.sessions() as session, session.begin():
                await roll_up(session)
            await asyncio.sleep(ROLLUP_INTERVAL_S)

    async def scheduler_figure(session: AsyncSession) -> Mapping[str, Any]:
        scheduler = current.get("scheduler")
        figures: dict[str, Any] = {"region": monitor_settings.monitor_region}
        if scheduler is not None:
            figures.update(scheduler.lag_figures())
        return figures

    async def regions_figure(session: AsyncSession) -> Mapping[str, Any]:
        rows = await session.execute(
            text(
                "SELECT r.name, count(p.id) AS live FROM region r LEFT JOIN replica p"
                " ON p.region = r.name AND p.seen_at > now() - make_interval(secs => :ttl)"
                " WHERE r.name <> '_' GROUP BY r.name ORDER BY r.name"
            ),
            {"ttl": monitor_settings.replica_ttl_s},
        )
        live = {name: int(n) for name, n in rows}
        return {
            "live": sorted(name for name, n in live.items() if n),
            "vanished": sorted(name for name, n in live.items() if not n),
            "replicas": sum(live.values()),
        }

    loops = {"rollups": run_rollups}
    if monitor_settings.scheduler_enabled:
        loops["scheduler"] = run_scheduler
    app = create_service_app(
        settings,
        title="Klaxon monitor",
        routers=[router],
        handlers=catalogue.HANDLERS,
        timer_handlers={CLOSE_TIMER: close_window},
        prunes={
            "check results": functools.partial(
                prune_results, older_than_s=monitor_settings.result_retention_s
            ),
            "rollups": functools.partial(
                prune_rollups, older_than_s=monitor_settings.rollup_retention_s
            ),
        },
        loops=loops,
        resources={"http": http_clients},
        figures={"scheduler": scheduler_figure, "regions": regions_figure},
        description=DESCRIPTION,
    )
    install_openapi(app, body_models=(MonitorSpec, PatchWindowSpec, ApplyDocument))
    app.state.schedulers = current
    return app

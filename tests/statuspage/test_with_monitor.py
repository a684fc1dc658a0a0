"""The monitor service as a real process watching a switchable target: its verdicts
reach the status page by themselves (down: the outage shows; up: operational again)."""

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx

from monitor.settings import Settings as MonitorSettings
from tests.harness import Throwaway, eventually
from tests.monitor.helpers import QUICK, prepare
from tests.monitor.targets import HttpTarget, http_target
from tests.statuspage.helpers import running_statuspage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(settings: MonitorSettings, port: int) -> dict[str, str]:
    values: dict[str, Any] = {
        **QUICK,
        "database_url": settings.database_url,
        "db_schema": settings.db_schema,
        "amqp_url": settings.amqp_url,
        "exchange": settings.exchange,
        "queue_prefix": settings.queue_prefix,
        "http_port": port,
        "log_level": "WARNING",
    }
    env = dict(os.environ)
    for name, value in values.items():
        env[f"KLAXON_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return env


@contextlib.asynccontextmanager
async def monitor_process(env: Throwaway) -> AsyncIterator[tuple[str, str]]:
    """``python -m monitor serve`` on the test's database and exchange; yields its base URL
    and an admin key."""
    settings = await prepare(env)
    port = _free_port()
    environment = _environment(settings, port)
    creating = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "create-api-key", env=environment, stdout=-1
    )
    key = json.loads((await creating.communicate())[0])["key"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", env=environment
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/readyz")).status_code == 200
                return False

            await eventually(ready, timeout_s=20)
        yield base, key
    finally:
        process.terminate()
        await process.wait()


async def test_the_monitor_service_moves_the_status_page_down_and_up(env: Throwaway) -> None:
    target: HttpTarget
    async with (
        http_target() as target,
        running_statuspage(env) as statuspage,
        monitor_process(env) as (base, key),
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as monitor,
    ):
        await statuspage.page()
        web = await statuspage.component(name="Web")
        created = await monitor.post(
            "/v1/monitors",
            json={
                "name": "canvas-home",
                "product": "canvas-hosting",
                "component": "Web",
                "url": f"{target.url}/home",
                "failures_to_down": 2,
            },
        )
        assert created.status_code == 201, created.text

        async def page_shows(status: str) -> bool:
            summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
            return bool(summary["components"][0]["status"] == status)

        await target.switch("wrong_status")
        await eventually(lambda: page_shows("major_outage"), timeout_s=15)
        html = (await statuspage.public("canvas/")).text
        assert "Major Service Outage" in html
        assert "Web unavailable" in html

        await target.switch("up")
        await eventually(lambda: page_shows("operational"), timeout_s=15)
        assert await statuspage.component_status(web["id"]) == "operational"
        summary = (await statuspage.public("canvas/api/v2/summary.json")).json()
        assert summary["incidents"] == []
        assert summary["status"]["indicator"] == "none"

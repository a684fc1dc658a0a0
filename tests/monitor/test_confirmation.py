"""Confirmation, not flapping: down only after N failures in a row, up again, degraded."""

import asyncio
import functools

from tests.harness import Throwaway, eventually
from tests.intake.helpers import listening, next_event
from tests.monitor.helpers import no_event, prepare, running_monitor
from tests.monitor.targets import KEYWORD, HttpTarget


async def test_a_monitor_goes_down_only_after_confirmation_and_comes_back_up(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        created = await service.create(
            name="canvas-home", url=f"{target.url}/home", failures_to_down=3, component="Web"
        )
        await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
        assert await service.state(created["id"]) == "up"

        await target.switch("wrong_status")
        switched_at = asyncio.get_running_loop().time()
        down = await next_event(events, "monitor.down", timeout_s=10)
        assert down.payload["monitor_id"] == created["id"]
        assert down.payload["reason"] == "status_code"
        assert down.payload["error"] == "status 500"
        assert down.payload["component"] == "Web"
        assert down.payload["product"] == {"slug": "canvas-hosting", "name": "Canvas Hosting"}
        assert down.payload["confirmed_at"] > down.payload["down_since"]
        # three failed checks were needed: the first and two re-checks
        failed = await service.sql(
            "SELECT count(*) FROM check_result r JOIN monitor m ON m.key = r.monitor_key"
            " WHERE m.id = :id AND r.outcome = 2",
            id=created["id"],
        )
        assert failed[0][0] >= 3
        assert asyncio.get_running_loop().time() - switched_at < 3

        await target.switch("up")
        up = await next_event(events, "monitor.up", timeout_s=10)
        assert up.payload["monitor_id"] == created["id"]
        assert up.payload["previous_state"] == "down"
        assert up.payload["downtime_s"] > 0
        assert await service.state(created["id"]) == "up"


def _more_requests(target: HttpTarget, path: str, before: int) -> bool:
    return len(target.requests(path)) > before


async def test_a_single_failed_or_slow_check_publishes_nothing(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        created = await service.create(
            name="canvas-api",
            url=f"{target.url}/api",
            interval_s=0.5,
            recheck_s=0.4,
            failures_to_down=2,
            degraded_ms=150,
            keyword=KEYWORD,
        )
        await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
        for mode in ("no_keyword", "slow"):
            target.slow_s = 0.3
            before = len(target.requests("/api"))
            await target.switch(mode)
            await eventually(functools.partial(_more_requests, target, "/api", before), timeout_s=5)
            await target.switch("up")
        await no_event(events, "monitor.down", within_s=1.5)
        assert await service.state(created["id"]) == "up"
        assert events.empty()


async def test_slow_answers_in_a_row_make_a_monitor_degraded(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        created = await service.create(
            name="canvas-slow", url=f"{target.url}/slow", degraded_ms=100, failures_to_down=2
        )
        await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
        target.slow_s = 0.25
        await target.switch("slow")
        degraded = await next_event(events, "monitor.degraded", timeout_s=10)
        assert degraded.payload["monitor_id"] == created["id"]
        assert "over 100 ms" in degraded.payload["error"]
        await target.switch("up")
        up = await next_event(events, "monitor.up", timeout_s=10)
        assert up.payload["previous_state"] == "degraded"

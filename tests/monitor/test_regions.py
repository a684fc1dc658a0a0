"""Confirmation from several regions: down only on a quorum, and a vanished region does not
block it."""

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator

from monitor.settings import Settings
from tests.harness import Throwaway, eventually
from tests.intake.helpers import listening, next_event
from tests.monitor.helpers import Monitor, no_event, prepare, running_monitor
from tests.monitor.targets import HttpTarget


def in_region(settings: Settings, region: str) -> Settings:
    """`settings` for another replica, in `region`."""
    return settings.model_copy(update={"monitor_region": region, "replica_id": uuid.uuid4()})


@contextlib.asynccontextmanager
async def regions(settings: Settings, *names: str) -> AsyncIterator[list[Monitor]]:
    """One running replica per region."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running_monitor(in_region(settings, name)))
            for name in names
        ]


async def _region_state(service: Monitor, monitor_id: str, region: str, state: str) -> bool:
    body = await service.get(monitor_id)
    return any(r["region"] == region and r["state"] == state for r in body["region_states"])


async def test_a_monitor_goes_down_only_when_half_of_its_regions_confirm(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env, replica_ttl_s=1.5, replica_heartbeat_s=0.2)
    async with (
        listening(env, "monitor.*") as events,
        regions(settings, "eu", "us", "ap") as (
            eu,
            _us,
            _ap,
        ),
    ):
        await eventually(lambda: _live_regions(eu, 3), timeout_s=15)
        created = await eu.create(name="global", url=f"{target.url}/g")
        monitor_id = created["id"]
        for region in ("eu", "us", "ap"):
            await eventually(
                functools.partial(_region_state, eu, monitor_id, region, "up"), timeout_s=15
            )
        assert {s.region for s in target.requests("/g")} == {"eu", "us", "ap"}

        target.fail_regions = {"eu"}  # one region's network blip
        await eventually(lambda: _region_state(eu, monitor_id, "eu", "down"), timeout_s=15)
        await no_event(events, "monitor.down", within_s=1.0)
        assert await eu.state(monitor_id) == "up"

        target.fail_regions = {"eu", "us"}
        down = await next_event(events, "monitor.down", timeout_s=15)
        seen = {r["region"]: r["state"] for r in down.payload["regions"]}
        assert seen == {"eu": "down", "us": "down", "ap": "up"}
        target.fail_regions = set()
        await next_event(events, "monitor.up", timeout_s=15)


async def _live_regions(service: Monitor, n: int) -> bool:
    rows = await service.sql(
        "SELECT count(DISTINCT region) FROM replica WHERE seen_at > now() - interval '2 s'"
    )
    return int(rows[0][0]) >= n


async def test_a_region_whose_replicas_vanish_is_reported_and_does_not_block_the_quorum(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env, replica_ttl_s=1.0, replica_heartbeat_s=0.2)
    async with (
        listening(env, "monitor.*") as events,
        regions(settings, "eu", "us") as (eu, us),
    ):
        async with running_monitor(in_region(settings, "ap")) as ap:
            await eventually(lambda: _live_regions(ap, 3), timeout_s=15)
            created = await eu.create(name="global", url=f"{target.url}/g")
            await eventually(lambda: _region_state(eu, created["id"], "ap", "up"), timeout_s=15)
        # ap's only replica is gone: eu failing alone is now half of the live regions
        target.fail_regions = {"eu"}
        down = await next_event(events, "monitor.down", timeout_s=15)
        assert {r["region"] for r in down.payload["regions"]} == {"eu", "us"}

        async def vanished() -> bool:
            health = (await us.client.get("/health")).json()
            return bool(health["regions"]["vanished"] == ["ap"])

        await eventually(vanished, timeout_s=15)

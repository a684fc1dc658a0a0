"""Heartbeats: a missed ping is an outage; ``?status=fail`` reports one at once."""

import asyncio

from tests.harness import Throwaway, eventually
from tests.intake.helpers import listening, next_event
from tests.monitor.helpers import prepare, running_monitor


async def test_a_heartbeat_that_stops_pinging_goes_down_and_a_ping_brings_it_up(
    env: Throwaway,
) -> None:
    settings = await prepare(env)
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        created = await service.create(
            name="nightly-backup", kind="heartbeat", period_s=1, grace_s=0.5
        )
        token = created["heartbeat_token"]
        assert len(token) >= 24
        for _ in range(3):
            response = await service.client.get(f"/v1/heartbeats/{token}")
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.5)
        assert await service.state(created["id"]) == "up"
        assert events.empty()
        down = await next_event(events, "monitor.down", timeout_s=5)
        assert down.payload["reason"] == "heartbeat_missed"
        assert down.payload["kind"] == "heartbeat"
        pinged = await service.client.post(f"/v1/heartbeats/{token}")
        assert pinged.json()["monitor_state"] == "up"
        up = await next_event(events, "monitor.up", timeout_s=5)
        assert up.payload["monitor_id"] == created["id"]


async def test_a_ping_with_status_fail_is_an_outage_at_once(env: Throwaway) -> None:
    settings = await prepare(env)
    async with listening(env, "monitor.*") as events, running_monitor(settings) as service:
        created = await service.create(name="etl", kind="heartbeat", period_s=3600)
        token = created["heartbeat_token"]
        await service.client.get(f"/v1/heartbeats/{token}")
        failed = await service.client.get(f"/v1/heartbeats/{token}?status=fail")
        assert failed.json()["monitor_state"] == "down"
        down = await next_event(events, "monitor.down", timeout_s=5)
        assert down.payload["reason"] == "heartbeat_failed"
        assert await service.state(created["id"]) == "down"


async def test_unknown_tokens_are_404_and_pings_are_rate_limited(env: Throwaway) -> None:
    settings = await prepare(env, heartbeat_min_gap_s=60)
    async with running_monitor(settings) as service:
        unknown = await service.client.get("/v1/heartbeats/abcdefghijklmnop")
        assert unknown.status_code == 404
        created = await service.create(name="cron", kind="heartbeat", period_s=60)
        token = created["heartbeat_token"]
        assert (await service.client.get(f"/v1/heartbeats/{token}")).status_code == 200
        again = await service.client.get(f"/v1/heartbeats/{token}")
        assert again.status_code == 429
        assert again.headers["content-type"] == "application/problem+json"
        await eventually(lambda: service.in_state(created["id"], "up"))

"""Replicas of one region share its checks: none runs twice, and a killed replica's leased
checks are taken over when their leases run out."""

import asyncio
import uuid
from collections import Counter

from monitor.settings import Settings
from tests.harness import Throwaway, eventually, start_process
from tests.monitor.helpers import prepare, running_monitor
from tests.monitor.targets import HttpTarget


def replica(settings: Settings, **overrides: object) -> Settings:
    """`settings` for another replica of the same region."""
    return settings.model_copy(update={"replica_id": uuid.uuid4(), **overrides})


async def test_two_replicas_share_the_checks_and_run_none_twice(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env, scheduler_batch_size=5)
    async with running_monitor(replica(settings)) as one, running_monitor(replica(settings)) as two:
        for i in range(30):
            await one.create(name=f"site-{i}", url=f"{target.url}/{i}", interval_s=0.3)
        await asyncio.sleep(3)
        ran = [svc.app.state.schedulers["scheduler"].checks_run for svc in (one, two)]
    assert min(ran) > 0, ran  # both replicas did part of the work
    per_path = Counter(seen.path for seen in target.seen)
    assert len(per_path) == 30
    assert min(per_path.values()) >= 3  # checked again and again, each due time once
    per_due = Counter((seen.path, seen.headers["x-klaxon-due"]) for seen in target.seen)
    twice = {check: n for check, n in per_due.items() if n > 1}
    assert twice == {}


async def test_a_killed_replicas_leased_checks_are_taken_over(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env, scheduler_lease_margin_s=1.0, default_timeout_s=3.0)
    doomed = replica(settings)
    process = await start_process(doomed, "monitor")
    try:
        await process.wait_ready()
        async with running_monitor(replica(settings, scheduler_enabled=False)) as api:
            await target.switch("hang")
            created = await api.create(name="slow-site", url=f"{target.url}/s", interval_s=10)

            async def leased_by(replica_id: uuid.UUID) -> bool:
                rows = await api.sql(
                    "SELECT leased_by FROM check_state WHERE monitor_id = :id", id=created["id"]
                )
                return bool(rows) and rows[0][0] == replica_id

            await eventually(lambda: leased_by(doomed.replica_id), timeout_s=10)
            await process.kill()
            await target.switch("up")
            killed_at = asyncio.get_running_loop().time()
            survivor = replica(settings)
            async with running_monitor(survivor) as taking_over:
                await eventually(lambda: taking_over.in_state(created["id"], "up"), timeout_s=10)
                took_s = asyncio.get_running_loop().time() - killed_at
                results = await api.sql(
                    "SELECT count(*) FROM check_result r JOIN monitor m ON m.key = r.monitor_key"
                    " WHERE m.id = :id",
                    id=created["id"],
                )
    finally:
        await process.kill()
        process.log_path.unlink(missing_ok=True)
    assert results[0][0] == 1  # the killed replica recorded nothing; the survivor once
    assert took_s < 3.0 + 1.0 + 2.0  # within the lease (timeout + margin), and a poll or two

"""A delivery worker killed mid-send repeats only the sends it had in flight."""

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import text

from servicekit.deliveries import enqueue
from tests.harness import Throwaway, eventually
from tests.servicekit.deliveries_support import (
    CHANNEL,
    all_in_state,
    delivering,
    recorder,
    rows,
)
from tests.servicekit.helpers import prepared, running

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 4


async def test_a_worker_killed_mid_send_repeats_at_most_its_sends_in_flight(
    env: Throwaway,
) -> None:
    settings = await prepared(
        env,
        relay_enabled=False,
        delivery_concurrency=CONCURRENCY,
        delivery_lease_s=2.0,
        delivery_send_timeout_s=1.0,
        delivery_poll_interval_s=0.2,
    )
    keys = [f"kill-{i}" for i in range(24)]
    async with recorder(delay_s=0.4) as server:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.servicekit.deliveries_worker",
            settings.model_dump_json(),
            server.url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=30)
            assert line.strip() == b"ready"
            async with running(settings) as local:
                async with local.sessions() as session, session.begin():
                    for key in keys:
                        await enqueue(session, channel=CHANNEL, dedupe_key=key, payload={})
                # Let the worker get part of the way, then kill it without warning.
                await eventually(lambda: len(server.requests) >= 9, timeout_s=20)
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
                await asyncio.sleep(0.2)  # requests already on the wire reach the server
                async with local.sessions() as session:
                    claimed = await session.scalars(
                        text("SELECT dedupe_key FROM delivery WHERE state = 'sending'")
                    )
                    in_flight = set(claimed.all())
                reached_before = set(server.keys())
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        assert 0 < len(in_flight) <= CONCURRENCY
        assert len(reached_before) < len(keys)

        async with delivering(settings, server.url) as restarted:
            await eventually(lambda: all_in_state(restarted, "sent", len(keys)), timeout_s=30)
            await asyncio.sleep(0.5)  # anything sent twice more would show up now
            final = await rows(restarted)

    sends = Counter(server.keys())
    repeated = {key for key, n in sends.items() if n > 1}
    assert set(sends) == set(keys)
    assert max(sends.values()) == 2
    # Exactly the sends that were in flight and had reached the provider went twice.
    assert repeated == in_flight & reached_before
    assert repeated
    assert {key for key, row in final.items() if row.attempts == 2} == in_flight

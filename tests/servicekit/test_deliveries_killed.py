"""A delivery worker that stops mid-send, by a kill, a shutdown or a stall, repeats only the
sends it had in flight, and never records over another worker's attempt."""

import asyncio
import signal
import sys
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.deliveries import Delivery, Outcome, enqueue
from servicekit.delivery_worker import DeliveryWorker
from tests.harness import Throwaway, eventually
from tests.servicekit.deliveries_support import (
    CHANNEL,
    all_in_state,
    delivering,
    recorder,
    rows,
    webhook_sender,
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


async def test_a_stopping_worker_finishes_its_sends_in_flight_and_records_them(
    env: Throwaway,
) -> None:
    settings = await prepared(
        env, relay_enabled=False, delivery_lease_s=1.0, delivery_send_timeout_s=0.8
    )
    keys = ["deploy-1", "deploy-2", "deploy-3"]
    async with recorder(delay_s=0.3) as server:
        async with delivering(settings, server.url) as runtime:
            async with runtime.sessions() as session, session.begin():
                for key in keys:
                    await enqueue(session, channel=CHANNEL, dedupe_key=key, payload={})
            await eventually(lambda: server.received(3), interval_s=0.01)
            assert not any(request.answered for request in server.requests)
        # Stopped while all three were waiting for their answers.
        async with delivering(settings, server.url) as restarted:
            assert await all_in_state(restarted, "sent", 3)
            await asyncio.sleep(1.5)  # past the lease: a send left unrecorded would go again
    assert sorted(server.keys()) == keys


async def test_a_worker_whose_claim_expired_cannot_record_over_the_attempt_that_replaced_it(
    env: Throwaway,
) -> None:
    """A worker paused past its lease (a stalled VM, say) sends late; the attempt that
    replaced its claim keeps the record, and the outcome is reported once."""
    settings = await prepared(
        env, relay_enabled=False, delivery_lease_s=0.5, delivery_send_timeout_s=0.4
    )
    reported: list[tuple[int, object]] = []

    async def on_outcome(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        reported.append((item.attempt, outcome.result))

    async with recorder() as server, running(settings) as local, httpx.AsyncClient() as client:
        senders = {CHANNEL: webhook_sender(client, server.url)}
        paused = DeliveryWorker(settings, local.sessions, senders, {CHANNEL: on_outcome})
        prompt = DeliveryWorker(settings, local.sessions, senders, {CHANNEL: on_outcome})
        async with local.sessions() as session, session.begin():
            await enqueue(session, channel=CHANNEL, dedupe_key="fenced", payload={})
        [stale] = await paused.claim(10)
        assert await prompt.claim(10) == []  # held while the lease runs
        await asyncio.sleep(0.6)
        [fresh] = await prompt.claim(10)
        assert (stale.delivery.attempt, fresh.delivery.attempt) == (1, 2)
        await paused.deliver(stale)  # wakes up, sends late, finds its claim taken over
        await prompt.deliver(fresh)
        row = (await rows(local))["fenced"]
    assert [request.body["attempt"] for request in server.requests] == [1, 2]
    assert (row.state, row.attempts, row.result) == ("sent", 2, {"message_id": "msg-2"})
    assert reported == [(2, {"message_id": "msg-2"})]

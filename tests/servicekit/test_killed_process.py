"""A service process killed mid-work loses nothing and repeats nothing."""

import asyncio
import signal
import sys
import uuid
from pathlib import Path

from contracts.intake import TicketFiled
from servicekit.outbox import publish
from tests.harness import Throwaway, eventually
from tests.servicekit.helpers import (
    PRODUCER,
    effects,
    handled_count,
    prepared,
    record_effect,
    running,
    ticket_filed,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_events_survive_a_killed_service_process_and_are_handled_once(
    env: Throwaway,
) -> None:
    settings = await prepared(env, consumer_workers=1, consumer_batch_size=1)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.servicekit.worker",
        settings.model_dump_json(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=30)
        assert line.strip() == b"ready"
        async with running(settings.model_copy(update={"relay_enabled": False})) as local:
            ids: list[uuid.UUID] = []
            async with local.sessions() as session, session.begin():
                for i in range(40):
                    envelope = await publish(session, ticket_filed(f"kill-{i}"), producer=PRODUCER)
                    ids.append(envelope.id)
            # Let the worker get part of the way, then kill it without warning.
            await eventually(lambda: handled_count(local, 5), timeout_s=20)
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            done_before = len(await effects(local))
            assert done_before < len(ids)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    async with running(settings, handlers={TicketFiled.event_type: record_effect}) as restarted:
        await eventually(lambda: handled_count(restarted, len(ids)), timeout_s=30)
        await asyncio.sleep(0.5)  # anything handled twice would show up now
        handled = [event_id for event_id, _ in await effects(restarted)]
    assert sorted(handled) == sorted(ids)

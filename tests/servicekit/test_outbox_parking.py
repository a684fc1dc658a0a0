"""An event the broker refuses is parked after a few tries; the events around it flow,
each published once, and the parked one goes out again when an operator says so."""

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractQueue
from prometheus_client import generate_latest
from sqlalchemy import func, insert, select

from contracts.products import ProductChanged
from servicekit.outbox import backlog, publish
from servicekit.parking import parked_counts
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from servicekit.tables import outbox_event, timer
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.servicekit.helpers import (
    HANDLERS,
    PRODUCER,
    handled_ids,
    handled_notes,
    prepared,
    running,
    ticket_filed,
)

ROOT = Path(__file__).resolve().parents[2]
PARKED_OUTBOX_SERIES = 'klaxon_figure{field="outbox",figure="parked",service="test"}'


def _product() -> ProductChanged:
    return ProductChanged(
        slug="canvas-hosting", name="Canvas Hosting", active=True, changed_at=datetime.now(UTC)
    )


async def _parked(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        return await parked_counts(session)


async def _copies(tap: AbstractQueue, at_least: int) -> Counter[str]:
    """Message ids of every copy in `tap`: at least `at_least`, and whatever follows soon."""
    seen: Counter[str] = Counter()
    while sum(seen.values()) < at_least:
        seen[str((await tap.get(timeout=10, no_ack=True)).message_id)] += 1
    await asyncio.sleep(0.5)
    while (extra := await tap.get(no_ack=True, fail=False)) is not None:
        seen[str(extra.message_id)] += 1
    return seen


async def _cli(settings: ServiceSettings, *args: str) -> tuple[int, list[dict[str, object]]]:
    """Run ``parked ...`` as the service's real command line; its exit code and JSON lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.servicekit.service_cli",
        "parked",
        *args,
        cwd=ROOT,
        env={**os.environ, "KLAXON_TEST_SETTINGS": settings.model_dump_json()},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_a_refused_event_is_parked_while_the_rest_flow_once_each(env: Throwaway) -> None:
    settings = await prepared(
        env, relay_max_attempts=3, relay_retry_base_s=0.1, relay_retry_max_s=0.2
    )
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        channel = await connection.channel()
        # A full queue that refuses new messages, bound to one routing key only: the broker
        # nacks every publish of a product.changed event, and takes every other one.
        full = await channel.declare_queue(
            f"{env.prefix}.full",
            durable=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(settings.exchange, routing_key=ProductChanged.event_type)
        tap = await channel.declare_queue(f"{env.prefix}.tap", durable=True)
        await tap.bind(settings.exchange, routing_key="#")
        try:
            async with runtime.sessions() as session, session.begin():
                around = [
                    await publish(session, ticket_filed(f"before-{i}"), producer=PRODUCER)
                    for i in range(5)
                ]
                refused = await publish(session, _product(), producer=PRODUCER)
                around += [
                    await publish(session, ticket_filed(f"after-{i}"), producer=PRODUCER)
                    for i in range(5)
                ]
            await eventually(lambda: handled_ids(runtime, {e.id for e in around}))
            await eventually(lambda: _parked_is(runtime, {"outbox": 1, "timer": 0}))

            # With the refused event parked, new events keep flowing.
            async with runtime.sessions() as session, session.begin():
                later = await publish(session, ticket_filed("later"), producer=PRODUCER)
            await eventually(lambda: handled_ids(runtime, {later.id}))

            copies = await _copies(tap, at_least=len(around) + 1 + 3)
            assert copies == Counter(
                {**{str(e.id): 1 for e in [*around, later]}, str(refused.id): 3}
            )
            async with runtime.sessions() as session:
                row = (await session.execute(select(outbox_event))).one()
                assert await backlog(session) == (0, None)  # parked rows are not a backlog
            assert row.event_id == refused.id
            assert row.attempts == 3
            assert row.parked_at is not None
            assert "nack" in row.last_error
            # Dashboards and alerts see it.
            sample = await runtime.sampler.refresh()
            assert sample.body["parked"] == {"outbox": 1, "timer": 0}
            assert PARKED_OUTBOX_SERIES + " 1.0" in generate_latest().decode()

            code, listed = await _cli(settings, "list")
            assert code == 0
            assert [(p["what"], p["id"], p["name"], p["attempts"]) for p in listed] == [
                ("outbox", str(refused.id), ProductChanged.event_type, 3)
            ]

            code, _ = await _cli(settings, "retry", "--id", str(uuid.uuid4()))
            assert code == 1  # not parked: nothing put back, and it says so
            await full.unbind(settings.exchange, routing_key=ProductChanged.event_type)
            code, retried = await _cli(settings, "retry", "--id", str(refused.id))
            assert code == 0
            assert [p["id"] for p in retried] == [str(refused.id)]
            assert await _copies(tap, at_least=1) == Counter({str(refused.id): 1})
            assert await _parked(runtime) == {"outbox": 0, "timer": 0}
            async with runtime.sessions() as session:
                assert await backlog(session) == (0, None)
            assert await _cli(settings, "list") == (0, [])
        finally:
            await full.delete(if_unused=False, if_empty=False)


async def _parked_is(runtime: Runtime, expected: dict[str, int]) -> bool:
    return await _parked(runtime) == expected


async def test_parked_and_waiting_events_do_not_silence_the_relays_wake_up(
    env: Throwaway,
) -> None:
    # With the fallback poll at a minute, only a NOTIFY gets a new event out within 15 s.
    settings = await prepared(env, relay_poll_interval_s=60.0)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        async with runtime.sessions() as session, session.begin():
            for column in ("parked_at", "retry_at"):
                await session.execute(
                    insert(outbox_event).values(
                        event_id=uuid.uuid4(),
                        routing_key=ProductChanged.event_type,
                        body=b"{}",
                        correlation_id=uuid.uuid4(),
                        attempts=1,
                        last_error="refused",
                        **{column: func.now() + timedelta(hours=1)},
                    )
                )
        await asyncio.sleep(0.3)  # the relay has looked, found nothing to send, and waits
        async with runtime.sessions() as session, session.begin():
            await publish(session, ticket_filed("prompt"), producer=PRODUCER)
        await eventually(lambda: handled_notes(runtime, {"prompt"}), timeout_s=15)


async def test_parked_timers_are_listed_and_retried_from_the_command_line(
    env: Throwaway,
) -> None:
    settings = await prepared(env)
    async with running(settings) as runtime:
        async with runtime.sessions() as session, session.begin():
            timer_id = await session.scalar(
                insert(timer)
                .values(
                    kind="escalate",
                    key="page-1",
                    due_at=func.now(),
                    attempts=20,
                    last_error="RuntimeError: no policy",
                    parked_at=func.now(),
                )
                .returning(timer.c.id)
            )
        code, listed = await _cli(settings, "list")
        assert code == 0
        assert [
            (p["what"], p["id"], p["name"], p["attempts"], p["last_error"]) for p in listed
        ] == [("timer", str(timer_id), "escalate/page-1", 20, "RuntimeError: no policy")]
        code, retried = await _cli(settings, "retry", "--all")
        assert code == 0
        assert [p["id"] for p in retried] == [str(timer_id)]
        async with runtime.sessions() as session:
            row = (await session.execute(select(timer))).one()
            assert row.parked_at is None
            assert row.attempts == 0
        assert row.due_at <= datetime.now(UTC)  # due at once
        assert await _cli(settings, "list") == (0, [])

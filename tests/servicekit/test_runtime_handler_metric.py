"""The handler-time metric measures each event's handler, not the batch it came in."""

import asyncio

from prometheus_client import REGISTRY

from contracts import Envelope
from contracts.intake import TicketFiled
from servicekit.outbox import publish
from tests.harness import Throwaway, eventually, wait_connected
from tests.servicekit.helpers import PRODUCER, prepared, running, ticket_filed

HANDLER_S = 0.2
LABELS = {"service": "test", "event_type": TicketFiled.event_type}


def observations(le: str | None = None) -> float:
    """Observations so far: all, or those of at most `le` seconds."""
    if le is None:
        return REGISTRY.get_sample_value("klaxon_event_handler_seconds_count", LABELS) or 0.0
    bucket = {**LABELS, "le": le}
    return REGISTRY.get_sample_value("klaxon_event_handler_seconds_bucket", bucket) or 0.0


async def test_each_event_of_a_batch_is_timed_by_its_own_handler(env: Throwaway) -> None:
    settings = await prepared(env, consumer_workers=1, consumer_batch_size=50)
    first_started, gate = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def slow(session: object, payload: TicketFiled, envelope: Envelope) -> None:
        if not first_started.is_set():
            first_started.set()
            await gate.wait()  # hold the worker while the next events queue up
        await asyncio.sleep(HANDLER_S)
        handled.append(payload.subject)

    async with running(settings, handlers={TicketFiled.event_type: slow}) as runtime:
        await wait_connected(runtime)
        assert runtime.consumer is not None
        count_before, quick_before = observations(), observations("0.5")
        async with runtime.sessions() as session, session.begin():
            await publish(session, ticket_filed("first"), producer=PRODUCER)
        await asyncio.wait_for(first_started.wait(), 10)
        async with runtime.sessions() as session, session.begin():
            for i in range(4):
                await publish(session, ticket_filed(f"batched-{i}"), producer=PRODUCER)
        await eventually(
            lambda: runtime.consumer is not None and runtime.consumer._waiting.qsize() == 4
        )
        gate.set()
        await eventually(lambda: len(handled) == 5)
        await eventually(lambda: observations() - count_before == 5)
    # The four waiting events were handled as one batch of 4 x 0.2 s: each took ~0.2 s,
    # not the batch's ~0.8 s.
    assert observations("0.5") - quick_before >= 4

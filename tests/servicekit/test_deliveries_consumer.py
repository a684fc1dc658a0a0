"""Event handlers queue deliveries; a failed batch of events repeats none of them."""

import asyncio
import logging
from collections import Counter

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, topology
from contracts.intake import TicketFiled
from servicekit.deliveries import enqueue
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.servicekit.deliveries_support import CHANNEL, all_in_state, delivering, recorder
from tests.servicekit.helpers import PRODUCER, prepared, ticket_filed


async def test_a_failed_batch_of_events_repeats_no_delivery(
    env: Throwaway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = await prepared(
        env, relay_enabled=False, consumer_delivery_limit=1, consumer_workers=1
    )
    handled: list[str] = []

    async def acknowledge(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        """Queue the reporter's email; the poison event queues one, then fails."""
        handled.append(payload.subject)
        await enqueue(
            session,
            channel=CHANNEL,
            dedupe_key=f"ack:{envelope.id}",
            payload={"s": payload.subject},
        )
        if payload.subject == "poison":
            raise RuntimeError("cannot handle this one")

    handlers = {TicketFiled.event_type: acknowledge}
    async with recorder() as server:
        # Declare the queue, then fill it while no consumer runs, so events come in batches.
        async with delivering(settings, server.url, handlers=handlers) as runtime:
            await wait_connected(runtime)
        subjects = [f"ok-{i}" for i in range(40)]
        subjects.insert(17, "poison")
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(settings.exchange)
            correlations = {}
            for subject in subjects:
                envelope = Envelope.wrap(ticket_filed(subject), producer=PRODUCER)
                correlations[subject] = str(envelope.correlation_id)
                await exchange.publish(
                    aio_pika.Message(envelope.to_json(), delivery_mode=2),
                    routing_key=envelope.type,
                )

            async with delivering(settings, server.url, handlers=handlers) as runtime:
                await eventually(lambda: all_in_state(runtime, "sent", 40), timeout_s=30)
                dead = topology.dead_letter_name("test", prefix=settings.queue_prefix)

                async def poison_dead() -> bool:
                    queue = await channel.declare_queue(dead, passive=True)
                    return bool(queue.declaration_result.message_count)

                await eventually(poison_dead)
                await asyncio.sleep(0.5)  # a repeated send would show up now

    sent = Counter(request.body["s"] for request in server.requests)
    assert sorted(sent) == sorted(s for s in subjects if s != "poison")
    assert set(sent.values()) == {1}
    assert all(r.body["correlation_id"] == correlations[r.body["s"]] for r in server.requests)
    assert len(handled) > len(subjects)  # the batch with the poison was handled again
    assert "handling one by one" in caplog.text

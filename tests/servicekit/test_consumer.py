"""The consumer handles each event once, and no message can stop it."""

import asyncio
import json
import uuid
from collections.abc import Awaitable

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, parse_payload, topology
from contracts.intake import TicketFiled
from servicekit.bus import ReplayStopped, replay_dead_letters
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.servicekit.helpers import (
    HANDLERS,
    PRODUCER,
    effects,
    handled_notes,
    prepared,
    record_effect,
    running,
    ticket_filed,
)


async def _send(
    channel: AbstractChannel, settings: ServiceSettings, body: bytes, routing_key: str
) -> None:
    exchange = await channel.get_exchange(settings.exchange)
    await exchange.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=routing_key,
    )


async def _drain(channel: AbstractChannel, name: str) -> list[bytes]:
    queue = await channel.declare_queue(name, passive=True)
    bodies = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        bodies.append(message.body)
    return bodies


async def _dead_letters(channel: AbstractChannel, settings: ServiceSettings) -> list[bytes]:
    return await _drain(channel, topology.dead_letter_name("test", prefix=settings.queue_prefix))


async def test_redelivered_event_is_handled_once(env: Throwaway, channel: AbstractChannel) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        envelope = Envelope.wrap(ticket_filed("twice"), producer=PRODUCER)
        for _ in range(3):
            await _send(channel, settings, envelope.to_json(), envelope.type)
        marker = Envelope.wrap(ticket_filed("marker"), producer=PRODUCER)
        await _send(channel, settings, marker.to_json(), marker.type)

        await eventually(lambda: handled_notes(runtime, {"twice", "marker"}))
        assert sorted(note for _, note in await effects(runtime)) == ["marker", "twice"]


async def test_malformed_messages_are_dead_lettered_and_consumer_keeps_going(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        good = Envelope.wrap(ticket_filed("good"), producer=PRODUCER)
        bad_payload = good.model_copy(update={"id": uuid.uuid4(), "payload": {"ticket_id": 1}})
        naive_time = json.loads(good.to_json()) | {"occurred_at": "2026-01-01T00:00:00"}
        unknown_version = good.model_copy(update={"id": uuid.uuid4(), "version": 99})
        garbage = [
            b"not json at all",
            b'{"id": "x"}',
            json.dumps(naive_time).encode(),
            bad_payload.to_json(),
            unknown_version.to_json(),
            b"\xff\xfe\x00",
        ]
        for body in garbage:
            await _send(channel, settings, body, TicketFiled.event_type)
        await _send(channel, settings, good.to_json(), good.type)

        await eventually(lambda: handled_notes(runtime, {"good"}))
        dead: list[bytes] = []

        async def all_dead() -> bool:
            dead.extend(await _dead_letters(channel, settings))
            return len(dead) >= len(garbage)

        await eventually(all_dead)
        assert sorted(dead) == sorted(garbage)
        assert runtime.consumer is not None
        assert runtime.consumer.connected
        assert [note for _, note in await effects(runtime)] == ["good"]


async def test_failing_handler_is_retried_then_dead_lettered(
    env: Throwaway, channel: AbstractChannel
) -> None:
    # One delivery per batch, so every handler call is a delivery: a failed batch is handled
    # again one by one, and that second call would count as an attempt.
    settings = await prepared(env, consumer_delivery_limit=2, consumer_batch_size=1)
    attempts: list[uuid.UUID] = []

    async def flaky(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        attempts.append(envelope.id)
        if payload.subject == "poison" or attempts.count(envelope.id) == 1:
            raise RuntimeError("handler failed")
        await record_effect(session, payload, envelope)

    async with running(settings, handlers={TicketFiled.event_type: flaky}) as runtime:
        await wait_connected(runtime)
        poison = Envelope.wrap(ticket_filed("poison"), producer=PRODUCER)
        transient = Envelope.wrap(ticket_filed("transient"), producer=PRODUCER)
        await _send(channel, settings, poison.to_json(), poison.type)
        await _send(channel, settings, transient.to_json(), transient.type)

        await eventually(lambda: handled_notes(runtime, {"transient"}))
        dead: list[bytes] = []

        async def poison_dead() -> bool:
            dead.extend(await _dead_letters(channel, settings))
            return bool(dead)

        await eventually(poison_dead)
        assert [Envelope.from_json(body).id for body in dead] == [poison.id]
        assert attempts.count(transient.id) == 2
        assert attempts.count(poison.id) == 3  # first delivery + delivery_limit redeliveries
        assert [note for _, note in await effects(runtime)] == ["transient"]


async def test_dead_letters_are_replayed_once_the_handler_is_fixed(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env, consumer_delivery_limit=1, consumer_batch_size=1)
    fixed = asyncio.Event()

    async def until_fixed(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        if not fixed.is_set():
            raise RuntimeError("handler failed")
        await record_effect(session, payload, envelope)

    async with running(settings, handlers={TicketFiled.event_type: until_fixed}) as runtime:
        await wait_connected(runtime)
        envelope = Envelope.wrap(ticket_filed("replayed"), producer=PRODUCER)
        await _send(channel, settings, envelope.to_json(), envelope.type)
        await eventually(lambda: _equals(_dead_count(channel, settings), 1))

        fixed.set()
        replayed = await replay_dead_letters(AMQP_URL, service="test", prefix=settings.queue_prefix)
        assert replayed == 1
        await eventually(lambda: handled_notes(runtime, {"replayed"}))
        assert await _dead_count(channel, settings) == 0


async def test_a_replay_into_a_full_queue_stops_and_keeps_the_event(
    channel: AbstractChannel,
) -> None:
    prefix = f"replay{uuid.uuid4().hex[:8]}"
    target, dead = f"{prefix}.test", f"{prefix}.test.dead"
    await channel.declare_queue(
        target,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        dead_letters = [f"dead {i}".encode() for i in range(4)]
        for name, body in ((target, b"waiting"), *((dead, body) for body in dead_letters)):
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=name)
        with pytest.raises(ReplayStopped) as stopped:
            await replay_dead_letters(AMQP_URL, service="test", prefix=prefix)
        assert f"into {target}" in str(stopped.value)
        # The queue refuses a publish once it is over its length (a quorum queue may take
        # one more first): every event is in exactly one of the two queues, none lost.
        moved = stopped.value.moved
        assert moved < len(dead_letters)
        taken = await _drain(channel, target)
        assert taken == [b"waiting", *dead_letters[:moved]]
        assert sorted(await _drain(channel, dead)) == dead_letters[moved:]  # returned: last
    finally:
        for name in (target, dead):
            await channel.queue_delete(name)


async def _dead_count(channel: AbstractChannel, settings: ServiceSettings) -> int:
    name = topology.dead_letter_name("test", prefix=settings.queue_prefix)
    queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.message_count or 0


async def test_poison_event_in_a_busy_queue_spoils_only_itself(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env, consumer_delivery_limit=1, consumer_workers=1)
    seen: list[str] = []

    async def picky(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        seen.append(payload.subject)
        if payload.subject == "poison":
            raise RuntimeError("cannot handle this one")
        await record_effect(session, payload, envelope)

    # Queue everything before the consumer starts, so it arrives in batches.
    async with running(settings, handlers={TicketFiled.event_type: picky}) as runtime:
        await wait_connected(runtime)
    subjects = [f"ok-{i}" for i in range(40)]
    subjects.insert(17, "poison")
    for subject in subjects:
        envelope = Envelope.wrap(ticket_filed(subject), producer=PRODUCER)
        await _send(channel, settings, envelope.to_json(), envelope.type)

    async with running(settings, handlers={TicketFiled.event_type: picky}) as runtime:
        await eventually(lambda: handled_notes(runtime, {s for s in subjects if s != "poison"}))
        dead: list[bytes] = []

        async def poison_dead() -> bool:
            dead.extend(await _dead_letters(channel, settings))
            return bool(dead)

        await eventually(poison_dead)
        notes = [note for _, note in await effects(runtime)]
        assert sorted(notes) == sorted(s for s in subjects if s != "poison")
        assert [Envelope.from_json(body).payload["subject"] for body in dead] == ["poison"]
        assert len(seen) > len(subjects)  # the batch with the poison was retried one by one


async def test_a_delivery_still_being_handled_is_never_acked_with_a_batch(
    env: Throwaway, channel: AbstractChannel
) -> None:
    """Batches are acked with one frame up to their last tag; one still in a handler is not."""
    settings = await prepared(env, consumer_workers=4)
    entered = asyncio.Event()

    async def slow_when_asked(
        session: AsyncSession, payload: TicketFiled, envelope: Envelope
    ) -> None:
        if payload.subject == "slow":
            entered.set()
            await asyncio.Event().wait()  # held, unacked, until the runtime stops
        await record_effect(session, payload, envelope)

    async def send(subjects: list[str]) -> None:
        for subject in subjects:
            envelope = Envelope.wrap(ticket_filed(subject), producer=PRODUCER)
            await _send(channel, settings, envelope.to_json(), envelope.type)

    before = [f"before-{i}" for i in range(20)]
    after = [f"after-{i}" for i in range(40)]
    async with running(settings, handlers={TicketFiled.event_type: slow_when_asked}) as runtime:
        await wait_connected(runtime)
        await send(before)
        await eventually(lambda: handled_notes(runtime, set(before)))
        await send(["slow"])
        await asyncio.wait_for(entered.wait(), timeout=10)
        await send(after)  # tagged after "slow": their acks must not cover it
        await eventually(lambda: handled_notes(runtime, set(after)))
    # Stopped with "slow" still in its handler: the broker returns it, and it alone.
    name = topology.service_queue("test", prefix=settings.queue_prefix)

    async def ready() -> int:
        declared = await channel.declare_queue(name, passive=True)
        return declared.declaration_result.message_count or 0

    await eventually(lambda: _equals(ready(), 1))
    async with running(settings, handlers=HANDLERS) as runtime:
        await eventually(lambda: handled_notes(runtime, {"slow"}))
        notes = [note for _, note in await effects(runtime)]
    assert sorted(notes) == sorted([*before, "slow", *after])


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_consumer_comes_back_when_the_broker_closes_its_channel(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        assert runtime.consumer is not None
        assert runtime.consumer.queue is not None
        consuming = await runtime.consumer.queue.channel.get_underlay_channel()
        # A protocol error closes the channel and leaves the connection open, as the
        # broker does for a delivery held unacked past its consumer_timeout.
        await consuming.basic_ack(delivery_tag=999_999)
        await eventually(lambda: _closed(consuming))
        await _handled_once_sent(channel, settings, runtime, "after the channel closed")


async def test_consumer_comes_back_when_its_queue_is_deleted(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        assert runtime.consumer is not None
        queue = runtime.consumer.queue
        assert queue is not None
        await channel.queue_delete(queue.name)  # the broker cancels the consumer
        await eventually(lambda: _redeclared(runtime, queue))
        await _handled_once_sent(channel, settings, runtime, "after the queue came back")


async def _handled_once_sent(
    channel: AbstractChannel, settings: ServiceSettings, runtime: Runtime, note: str
) -> None:
    envelope = Envelope.wrap(ticket_filed(note), producer=PRODUCER)
    await _send(channel, settings, envelope.to_json(), envelope.type)
    await eventually(lambda: handled_notes(runtime, {note}))


async def _closed(channel: aiormq.abc.AbstractChannel) -> bool:
    return channel.is_closed


async def _redeclared(runtime: Runtime, old: AbstractQueue) -> bool:
    queue = runtime.consumer.queue if runtime.consumer else None
    return queue is not None and queue is not old


async def test_a_handler_timing_out_with_the_database_up_spends_its_deliveries(
    env: Throwaway, channel: AbstractChannel
) -> None:
    """A timeout or socket error from a handler's own call (mail, HTTP) is the handler's
    failure, not a database outage: it is dead-lettered, not retried forever."""
    # One event a batch: a failed batch is handled again one by one, which would call the
    # handler once more than the deliveries it counts.
    settings = await prepared(env, consumer_delivery_limit=2, consumer_batch_size=1)
    attempts: list[str] = []

    async def calls_out(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
        attempts.append(payload.subject)
        if payload.subject == "mail server hangs":
            raise TimeoutError("SMTP server did not answer")
        if payload.subject == "mail server refuses":
            raise ConnectionRefusedError("SMTP server refused the connection")
        await record_effect(session, payload, envelope)

    async with running(settings, handlers={TicketFiled.event_type: calls_out}) as runtime:
        await wait_connected(runtime)
        for subject in ("mail server hangs", "mail server refuses", "fine"):
            envelope = Envelope.wrap(ticket_filed(subject), producer=PRODUCER)
            await _send(channel, settings, envelope.to_json(), envelope.type)
        await eventually(lambda: handled_notes(runtime, {"fine"}))
        dead: list[bytes] = []

        async def both_dead() -> bool:
            dead.extend(await _dead_letters(channel, settings))
            return len(dead) == 2

        await eventually(both_dead)
        subjects = [str(getattr(parse_payload(Envelope.from_json(b)), "subject", "")) for b in dead]
        assert sorted(subjects) == ["mail server hangs", "mail server refuses"]
        assert attempts.count("mail server hangs") == 3  # first delivery + the limit's redeliveries

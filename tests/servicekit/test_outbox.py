"""The outbox publishes exactly what was committed, once, whatever the broker does."""

import asyncio
import uuid

import aio_pika
import aiormq
import asyncpg
from sqlalchemy import text

from servicekit import bus
from servicekit.db import asyncpg_dsn
from servicekit.migrations import upgrade
from servicekit.outbox import backlog, notify_channel, publish
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from tests.harness import AMQP_URL, Throwaway, eventually, wait_connected
from tests.servicekit.helpers import (
    HANDLERS,
    MIGRATIONS,
    PRODUCER,
    effects,
    handled_count,
    handled_ids,
    handled_notes,
    prepared,
    running,
    ticket_filed,
)


async def test_event_added_in_rolled_back_transaction_is_never_published(env: Throwaway) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        async with runtime.sessions() as session, session.begin():
            await publish(session, ticket_filed("rolled back"), producer=PRODUCER)
            await session.rollback()
        async with runtime.sessions() as session, session.begin():
            marker = await publish(session, ticket_filed("committed"), producer=PRODUCER)

        await eventually(lambda: handled_ids(runtime, {marker.id}))
        assert [note for _, note in await effects(runtime)] == ["committed"]


async def test_committed_events_arrive_exactly_once_with_two_relays(env: Throwaway) -> None:
    settings = await prepared(env, relay_batch_size=7)
    async with running(settings, handlers=HANDLERS) as first, running(settings) as second:
        await wait_connected(first)
        await wait_connected(second)
        # A plain queue on the same exchange sees every copy the relays published.
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        tap = await channel.declare_queue(f"{env.prefix}.tap", durable=True)
        await tap.bind(settings.exchange, routing_key="#")
        ids: list[uuid.UUID] = []
        for batch in range(20):
            async with first.sessions() as session, session.begin():
                for i in range(10):
                    envelope = await publish(
                        session, ticket_filed(f"{batch}-{i}"), producer=PRODUCER
                    )
                    ids.append(envelope.id)

        await eventually(lambda: handled_count(first, len(ids)), timeout_s=30)
        handled = [event_id for event_id, _ in await effects(first)]
        assert sorted(handled) == sorted(ids)
        async with first.sessions() as session:
            assert (await backlog(session))[0] == 0

        published: list[str] = []
        while len(published) < len(ids):
            message = await tap.get(timeout=5, no_ack=True)
            published.append(str(message.message_id))
        assert await tap.get(fail=False) is None
        assert sorted(published) == sorted(str(i) for i in ids)
        await connection.close()


async def test_events_the_broker_refuses_stay_in_the_outbox_until_it_takes_them(
    env: Throwaway,
) -> None:
    settings = await prepared(env, reconnect_min_s=0.05, reconnect_max_s=0.2)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        # A full queue that refuses new messages: the broker nacks every publish routed to it.
        channel = await connection.channel()
        full = await channel.declare_queue(
            f"{env.prefix}.full",
            durable=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(settings.exchange, routing_key="#")
        try:
            async with runtime.sessions() as session, session.begin():
                refused = [
                    await publish(session, ticket_filed(f"refused-{i}"), producer=PRODUCER)
                    for i in range(3)
                ]

            # The consumer's own queue took each copy, but the relay keeps every row
            # while the broker nacks, and publishes them again and again.
            await eventually(lambda: handled_ids(runtime, {e.id for e in refused}))
            await asyncio.sleep(1.0)
            async with runtime.sessions() as session:
                assert (await backlog(session))[0] == 3

            await full.unbind(settings.exchange, routing_key="#")
            async with runtime.sessions() as session, session.begin():
                later = await publish(session, ticket_filed("later"), producer=PRODUCER)
            await eventually(lambda: handled_ids(runtime, {later.id}))

            async def drained() -> bool:
                async with runtime.sessions() as session:
                    return (await backlog(session))[0] == 0

            await eventually(drained)
            # Each event was handled once, however often it was published.
            handled = [event_id for event_id, _ in await effects(runtime)]
            assert sorted(handled) == sorted([*(e.id for e in refused), later.id])
        finally:
            await full.delete(if_unused=False, if_empty=False)


async def test_writers_notify_the_relay_only_while_no_older_event_waits(env: Throwaway) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)  # the queue exists before anything is published
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    heard: list[str] = []
    await listener.add_listener(notify_channel(settings.db_schema), lambda *a: heard.append(a[2]))
    runtime = Runtime(settings)  # not started: no relay takes the rows
    try:
        async with runtime.sessions() as session:
            async with session.begin():
                await publish(session, ticket_filed("first"), producer=PRODUCER)
            await eventually(lambda: len(heard) == 1)
            for subject in ("second", "third"):
                async with session.begin():
                    await publish(session, ticket_filed(subject), producer=PRODUCER)
        await asyncio.sleep(0.2)
        assert len(heard) == 1  # the first event waits, so the next two did not notify
    finally:
        await runtime.stop()
        await listener.close()

    async with running(settings, handlers=HANDLERS) as r:
        await eventually(lambda: handled_notes(r, {"first", "second", "third"}))
        async with r.sessions() as session, session.begin():
            await publish(session, ticket_filed("after"), producer=PRODUCER)
        await eventually(lambda: handled_notes(r, {"after"}))


async def test_an_insert_that_adds_no_row_wakes_nobody(env: Throwaway) -> None:
    settings = await prepared(env)
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    heard: list[str] = []
    await listener.add_listener(notify_channel(settings.db_schema), lambda *a: heard.append(a[2]))
    try:
        await listener.execute(
            "INSERT INTO outbox_event (event_id, routing_key, body, correlation_id)"
            " SELECT gen_random_uuid(), 'nothing', '', gen_random_uuid() WHERE false"
        )
        await asyncio.sleep(0.2)
        assert heard == []
    finally:
        await listener.close()


async def test_an_upgrade_brings_the_outbox_trigger_function_up_to_date(env: Throwaway) -> None:
    settings = await prepared(env)
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    current = "SELECT prosrc FROM pg_proc WHERE proname = 'notify_outbox'"
    try:
        up_to_date = await conn.fetchval(current)
        await conn.execute(  # as a schema migrated with an older servicekit has it
            "CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN PERFORM pg_notify('older', ''); RETURN NULL; END $$"
        )
        await upgrade(settings, MIGRATIONS)  # no revision to run
        assert await conn.fetchval(current) == up_to_date
    finally:
        await conn.close()


async def test_a_burst_of_writers_is_published_without_waiting_for_the_poll(
    env: Throwaway,
) -> None:
    # With the fallback poll at a minute, only NOTIFY and the relay's recheck after each
    # batch can find these rows; most of them are committed without a NOTIFY.
    settings = await prepared(env, relay_poll_interval_s=60.0)
    async with running(settings, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        subjects = [f"burst-{i}" for i in range(400)]
        pending = iter(subjects)

        async def writer() -> None:
            for subject in pending:
                async with runtime.sessions() as session, session.begin():
                    await publish(session, ticket_filed(subject), producer=PRODUCER)

        await asyncio.gather(*(writer() for _ in range(8)))
        await eventually(lambda: handled_notes(runtime, set(subjects)), timeout_s=20)


async def test_a_connection_takes_a_whole_relay_batch_in_one_event_loop_turn() -> None:
    # The relay starts a batch's publishes together. Each must reach the connection's
    # writer without waiting for the writer to run: in a busy process every such wait
    # costs a turn of the event loop (see `servicekit.bus.OUTGOING_FRAMES`).
    batch = ServiceSettings().relay_batch_size
    connection, _ = await bus.connect(AMQP_URL)
    async with connection:
        channel = await (await connection.channel()).get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        publishes = [
            asyncio.ensure_future(
                channel.basic_publish(b"{}", routing_key=f"nowhere-{uuid.uuid4()}", wait=False)
            )
            for _ in range(batch)
        ]
        await asyncio.sleep(0)  # one turn: each publish runs until it waits for its confirm
        assert channel.delivery_tag == batch
        await asyncio.gather(*publishes)


async def test_relays_vacuum_the_outbox_they_empty(env: Throwaway) -> None:
    settings = await prepared(env, relay_vacuum_every=40, relay_batch_size=7)
    async with running(settings, handlers=HANDLERS) as first, running(settings) as second:
        await wait_connected(first)
        await wait_connected(second)
        for batch in range(12):
            async with first.sessions() as session, session.begin():
                for i in range(10):
                    await publish(session, ticket_filed(f"{batch}-{i}"), producer=PRODUCER)
        await eventually(lambda: handled_count(first, 120), timeout_s=30)

        async def vacuumed() -> bool:
            async with first.sessions() as session:
                count = await session.scalar(
                    text(
                        "SELECT vacuum_count FROM pg_stat_user_tables"
                        " WHERE schemaname = current_schema() AND relname = 'outbox_event'"
                    )
                )
            return bool(count)

        await eventually(vacuumed)

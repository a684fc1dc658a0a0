"""A query the driver refuses is the handler's bug, not a database outage: it is not
retried forever, while a database that really went away still is waited out."""

import aio_pika
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, topology
from contracts.intake import TicketFiled
from servicekit.db import create_engine, is_database_outage, session_factory
from servicekit.outbox import publish
from tests.harness import AMQP_URL, Throwaway, eventually, free_port, wait_connected
from tests.servicekit.helpers import PRODUCER, prepared, running, ticket_filed


async def bad_cast(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
    """A handler with a bug: asyncpg cannot encode a subject as an integer."""
    await session.execute(text("SELECT CAST(:n AS int)"), {"n": payload.subject})


async def wrong_argument_count(
    session: AsyncSession, payload: TicketFiled, envelope: Envelope
) -> None:
    """A handler with a bug in driver-level SQL: one placeholder, two arguments."""
    raw = await (await session.connection()).get_raw_connection()
    assert raw.driver_connection is not None
    await raw.driver_connection.fetch("SELECT $1::text", payload.subject, "extra")


@pytest.mark.parametrize("handler", [bad_cast, wrong_argument_count])
async def test_a_query_the_driver_refuses_is_not_a_database_outage(
    env: Throwaway, handler: object
) -> None:
    settings = await prepared(env)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            try:
                await handler(session, ticket_filed("not a number"), None)  # type: ignore[operator]
            except Exception as exc:
                caught = exc
            else:
                pytest.fail("the driver took the query")
        assert not await is_database_outage(caught, sessions)
    finally:
        await engine.dispose()


async def test_an_interface_error_while_the_database_is_down_is_an_outage(
    env: Throwaway,
) -> None:
    settings = await prepared(env)
    url = make_url(settings.database_url).set(port=free_port())
    down = settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
    engine = create_engine(down)
    try:
        error = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
        assert await is_database_outage(error, session_factory(engine))
    finally:
        await engine.dispose()


async def test_an_event_whose_handler_the_driver_refuses_is_dead_lettered(
    env: Throwaway,
) -> None:
    settings = await prepared(env, consumer_delivery_limit=1)
    async with running(
        settings, handlers={TicketFiled.event_type: wrong_argument_count}
    ) as runtime:
        await wait_connected(runtime)
        async with runtime.sessions() as session, session.begin():
            envelope = await publish(session, ticket_filed("poison"), producer=PRODUCER)

        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            dead = topology.dead_letter_name("test", prefix=settings.queue_prefix)

            async def dead_lettered() -> bool:
                queue = await channel.declare_queue(dead, passive=True)
                message = await queue.get(no_ack=True, fail=False)
                return message is not None and message.message_id == str(envelope.id)

            await eventually(dead_lettered, timeout_s=15)

"""`migrate` declares every queue and binding of the routing table, so no event is lost
to the unrouted queue because its consumer has not started yet."""

import asyncio
import os
import sys
from collections.abc import Awaitable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from aio_pika.exceptions import ChannelNotFoundEntity

from contracts import Envelope, topology
from contracts.intake import TicketFiled
from intake.settings import Settings as IntakeSettings
from servicekit import outbox
from servicekit.cli import migrate
from servicekit.consumer import routing_keys
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually, wait_connected
from tests.servicekit.helpers import (
    HANDLERS,
    MIGRATIONS,
    handled_ids,
    prepared,
    record_effect,
    running,
    ticket_filed,
)


async def _ready(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def _file_through_the_outbox(settings: ServiceSettings) -> Envelope:
    """Commit a `ticket.filed` to the outbox and let a relay publish it (intake's path)."""
    async with running(settings) as producer:
        async with producer.sessions() as session, session.begin():
            envelope = await outbox.publish(session, ticket_filed("before"), producer="intake")
        await wait_connected(producer)

        async def published() -> bool:
            async with producer.sessions() as session:
                count, _ = await outbox.backlog(session)
            return count == 0

        await eventually(published, timeout_s=30)
    return envelope


async def _service(env: Throwaway, name: str, schema: str) -> ServiceSettings:
    """Settings of a test service called `name`, on a schema of its own, migrated."""
    settings = env.settings(ServiceSettings, schema=schema, service_name=name)
    await env.provision(settings, MIGRATIONS)
    return settings


async def _notifier(env: Throwaway) -> ServiceSettings:
    """A consumer named "notifier" (its handler records ticket.filed)."""
    return await _service(env, "notifier", "notif")


async def test_ticket_filed_before_the_notifier_ever_started_waits_for_it(
    env: Throwaway, channel: AbstractChannel
) -> None:
    producer = await _service(env, "intake", "svc")
    await migrate(producer, MIGRATIONS)

    filed = await _file_through_the_outbox(producer)

    notifier_queue = topology.service_queue("notifier", prefix=env.prefix)
    await eventually(lambda: _at_least(_ready(channel, notifier_queue), 1), timeout_s=30)
    assert await _ready(channel, topology.unrouted_name(env.exchange)) == 0

    async with running(await _notifier(env), handlers=HANDLERS) as notifier:
        await eventually(lambda: handled_ids(notifier, {filed.id}))


async def test_without_migrate_the_same_ticket_filed_goes_to_unrouted(
    env: Throwaway, channel: AbstractChannel
) -> None:
    producer = await _service(env, "intake", "svc")

    await _file_through_the_outbox(producer)

    unrouted = topology.unrouted_name(env.exchange)
    await eventually(lambda: _at_least(_ready(channel, unrouted), 1), timeout_s=30)
    with pytest.raises(ChannelNotFoundEntity):
        await _ready(channel, topology.service_queue("notifier", prefix=env.prefix))


async def test_migrate_binds_every_queue_to_every_type_the_routing_table_lists(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env)
    await migrate(settings, MIGRATIONS)

    exchange = await channel.get_exchange(env.exchange)
    every_type = sorted(set().union(*topology.CONSUMES.values()))
    for event_type in every_type:
        await exchange.publish(aio_pika.Message(event_type.encode()), routing_key=event_type)

    for service, types in topology.CONSUMES.items():
        queue = topology.service_queue(service, prefix=env.prefix)

        async def holds_one_per_type(queue: str = queue, n: int = len(types)) -> bool:
            return await _ready(channel, queue) == n

        await eventually(holds_one_per_type)
        await _ready(channel, topology.dead_letter_name(service, prefix=env.prefix))
    assert await _ready(channel, topology.unrouted_name(env.exchange)) == 0


async def test_migrate_twice_and_a_consumer_after_it_declare_the_same_topology(
    env: Throwaway,
) -> None:
    settings = await prepared(env)
    await migrate(settings, MIGRATIONS)
    await migrate(settings, MIGRATIONS)
    notifier = await _notifier(env)
    await migrate(notifier, MIGRATIONS)

    async with running(notifier, handlers=HANDLERS) as runtime:
        await wait_connected(runtime)
        assert runtime.consumer is not None
        assert runtime.consumer.routing_keys == topology.CONSUMES["notifier"]


async def test_a_handler_for_a_type_the_routing_table_does_not_list_stops_start_up(
    env: Throwaway,
) -> None:
    settings = env.settings(ServiceSettings, schema="svc", service_name="intake")

    with pytest.raises(ValueError, match=r"CONSUMES\['intake'\] does not list"):
        Runtime(settings, handlers={TicketFiled.event_type: record_effect})


def test_a_service_the_routing_table_does_not_name_is_bound_to_its_handlers() -> None:
    assert "test" not in topology.CONSUMES
    assert routing_keys("test", HANDLERS) == {TicketFiled.event_type}
    assert routing_keys("notifier", HANDLERS) == topology.CONSUMES["notifier"]


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _at_least(value: Awaitable[int], expected: int) -> bool:
    """At least: the relay publishes at least once, and may publish twice."""
    return await value >= expected


async def _run_migrate(settings: ServiceSettings, **overrides: str) -> tuple[int, str]:
    """Run ``python -m intake migrate`` as a process with `settings` in its environment."""
    variables = {
        f"KLAXON_{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if name in {"database_url", "db_schema", "amqp_url", "exchange", "queue_prefix"}
    }
    variables.update(overrides)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intake",
        "migrate",
        env={**os.environ, **variables, "KLAXON_LOG_JSON": "false"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stderr.decode()


async def test_the_migrate_command_declares_the_notifiers_queue(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = env.settings(IntakeSettings, schema="intake")
    await env.provision(settings, None)

    code, stderr = await _run_migrate(settings)
    assert code == 0, stderr

    exchange = await channel.get_exchange(env.exchange)
    filed = Envelope.wrap(ticket_filed("by hand"), producer="intake")
    await exchange.publish(aio_pika.Message(filed.to_json()), routing_key=filed.type)
    notifier_queue = topology.service_queue("notifier", prefix=env.prefix)
    await eventually(lambda: _equals(_ready(channel, notifier_queue), 1))


async def test_the_migrate_command_fails_clearly_without_the_broker(env: Throwaway) -> None:
    settings = env.settings(IntakeSettings, schema="intake")
    await env.provision(settings, None)

    code, stderr = await _run_migrate(settings, KLAXON_AMQP_URL="amqp://guest:guest@127.0.0.1:1/")

    assert code == 2
    assert "the broker's queues could not be declared" in stderr

"""The product catalogue's read model: newest change wins in any order, lookups for a 422,
and a service with an empty copy asks intake for the whole catalogue at migrate."""

import itertools
from datetime import UTC, datetime, timedelta

import aio_pika
from aio_pika.abc import AbstractChannel
from sqlalchemy import select

from contracts import Envelope, parse_payload, topology
from contracts.products import CatalogueRequested, ProductChanged
from servicekit import catalogue
from servicekit.catalogue import CatalogueProduct, get_product, list_products, product_exists
from servicekit.cli import migrate
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from servicekit.tables import catalogue_product, inbox_event, outbox_event
from tests.harness import Throwaway, eventually, wait_connected
from tests.servicekit.helpers import MIGRATIONS, prepared, running

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _change(name: str, *, minutes: int, active: bool = True, slug: str = "canvas") -> Envelope:
    payload = ProductChanged(
        slug=slug, name=name, active=active, changed_at=T0 + timedelta(minutes=minutes)
    )
    return Envelope.wrap(payload, producer="intake")


async def _apply(runtime: Runtime, *changes: Envelope) -> None:
    for change in changes:
        async with runtime.sessions() as session, session.begin():
            payload = ProductChanged.model_validate(change.payload, strict=False)
            await catalogue.on_product_changed(session, payload, change)


async def _product(runtime: Runtime, slug: str = "canvas") -> CatalogueProduct | None:
    async with runtime.sessions() as session:
        return await get_product(session, slug)


async def test_product_changes_in_any_order_and_twice_leave_the_newest(env: Throwaway) -> None:
    settings = await prepared(env, relay_enabled=False)
    changes = [
        _change("Canvas", minutes=0),
        _change("Canvas Hosting", minutes=5),
        _change("Canvas (retired)", minutes=9, active=False),
    ]
    async with running(settings) as runtime:
        for order in itertools.permutations(changes):
            async with runtime.sessions() as session, session.begin():
                await session.execute(catalogue_product.delete())
            await _apply(runtime, *order, *order)

            assert await _product(runtime) == CatalogueProduct(
                slug="canvas",
                name="Canvas (retired)",
                active=False,
                changed_at=T0 + timedelta(minutes=9),
            ), order


async def test_lookups_answer_from_the_read_model(env: Throwaway) -> None:
    settings = await prepared(env, relay_enabled=False)
    async with running(settings) as runtime:
        await _apply(
            runtime,
            _change("Canvas", minutes=0),
            _change("Old Mail", minutes=0, slug="mail", active=False),
        )
        async with runtime.sessions() as session:
            assert await product_exists(session, "canvas")
            assert not await product_exists(session, "mail")
            assert await product_exists(session, "mail", retired_too=True)
            assert not await product_exists(session, "nope", retired_too=True)
            assert await get_product(session, "nope") is None
            assert [p.slug for p in await list_products(session)] == ["canvas"]
            assert [p.slug for p in await list_products(session, retired_too=True)] == [
                "canvas",
                "mail",
            ]


async def test_product_changed_on_the_bus_reaches_the_read_model(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await prepared(env)
    async with running(settings, handlers=catalogue.HANDLERS) as runtime:
        await wait_connected(runtime)
        exchange = await channel.get_exchange(settings.exchange)
        # The newer change first: the older one, arriving late, must not undo it.
        for change in (_change("Canvas Hosting", minutes=5), _change("Canvas", minutes=0)):
            await exchange.publish(
                aio_pika.Message(change.to_json(), message_id=str(change.id)),
                routing_key=change.type,
            )

        await eventually(lambda: _handled(runtime, 2))
        product = await _product(runtime)
        assert product is not None
        assert product.name == "Canvas Hosting"


async def _handled(runtime: Runtime, n: int) -> bool:
    async with runtime.sessions() as session:
        return len((await session.scalars(select(inbox_event.c.event_id))).all()) == n


async def _service(env: Throwaway, name: str) -> ServiceSettings:
    settings = env.settings(ServiceSettings, schema="svc", service_name=name)
    await env.provision(settings, MIGRATIONS)
    return settings


async def _requests(runtime: Runtime) -> list[CatalogueRequested]:
    async with runtime.sessions() as session:
        bodies = (await session.scalars(select(outbox_event.c.body))).all()
    payloads = [parse_payload(Envelope.from_json(body)) for body in bodies]
    return [p for p in payloads if isinstance(p, CatalogueRequested)]


async def test_migrate_asks_intake_for_the_catalogue_while_the_copy_is_empty(
    env: Throwaway, channel: AbstractChannel
) -> None:
    settings = await _service(env, "monitor")
    await migrate(settings, MIGRATIONS)

    intake_queue = topology.service_queue("intake", prefix=env.prefix)
    async with running(settings.model_copy(update={"relay_enabled": False})) as runtime:
        assert [r.requested_by for r in await _requests(runtime)] == ["monitor"]
    async with running(settings) as runtime:
        await wait_connected(runtime)

        async def waits_for_intake() -> bool:
            queue = await channel.declare_queue(intake_queue, passive=True)
            return (queue.declaration_result.message_count or 0) >= 1

        await eventually(waits_for_intake)
        message = await (await channel.declare_queue(intake_queue, passive=True)).get(no_ack=True)
        request = parse_payload(Envelope.from_json(message.body))
        assert isinstance(request, CatalogueRequested)
        assert request.requested_by == "monitor"

        await _apply(runtime, _change("Canvas", minutes=0))
    await migrate(settings, MIGRATIONS)
    async with running(settings.model_copy(update={"relay_enabled": False})) as runtime:
        assert await _requests(runtime) == []


async def test_a_service_that_keeps_no_catalogue_does_not_ask(env: Throwaway) -> None:
    settings = await _service(env, "intake")
    await migrate(settings, MIGRATIONS)
    async with running(settings.model_copy(update={"relay_enabled": False})) as runtime:
        assert await _requests(runtime) == []

"""A service deployed after intake's products were made gets the whole catalogue: its
migrate asks, the real intake answers, and the read model fills."""

from sqlalchemy import select

from servicekit import catalogue, outbox
from servicekit.catalogue import list_products
from servicekit.cli import migrate
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from servicekit.tables import catalogue_product
from tests.harness import Throwaway, eventually, wait_connected
from tests.intake.helpers import running_intake
from tests.servicekit.helpers import MIGRATIONS, running


async def _slugs(runtime: Runtime) -> set[str]:
    async with runtime.sessions() as session:
        return set((await session.scalars(select(catalogue_product.c.slug))).all())


async def test_a_service_deployed_later_gets_intakes_catalogue(env: Throwaway) -> None:
    async with running_intake(env) as intake:
        admin = intake.auth(intake.admin_key)
        created = await intake.client.post(
            "/v1/products", json={"slug": "mail-relay", "name": "Mail Relay"}, headers=admin
        )
        assert created.status_code == 201
        listed = await intake.client.get("/v1/products", headers=admin)
        assert listed.status_code == 200
        expected = {product["slug"] for product in listed.json() if product["active"]}
        assert "mail-relay" in expected
        # mail-relay's own product.changed went out before the service's queue existed:
        # only the catalogue request can bring it.
        await wait_connected(intake.runtime)
        await eventually(lambda: _published(intake.runtime))

        settings = env.settings(ServiceSettings, schema="svc", service_name="monitor")
        await env.provision(settings, MIGRATIONS)
        await migrate(settings, MIGRATIONS)
        async with running(settings, handlers=catalogue.HANDLERS) as monitor:
            await eventually(lambda: _has(monitor, expected), timeout_s=20)
            async with monitor.sessions() as session:
                products = await list_products(session)
            assert {p.slug for p in products} == expected
            assert {p.name for p in products if p.slug == "mail-relay"} == {"Mail Relay"}


async def _published(runtime: Runtime) -> bool:
    async with runtime.sessions() as session:
        unsent, _ = await outbox.backlog(session)
    return unsent == 0


async def _has(runtime: Runtime, expected: set[str]) -> bool:
    return await _slugs(runtime) == expected

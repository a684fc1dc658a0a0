"""The product catalogue's read model, kept by every service that consumes ``product.changed``.

The catalogue is intake's. A service whose monitors, policies or pages belong to products
keeps a copy in its ``catalogue_product`` table: merge `HANDLERS` into its handlers (and
list ``product.changed`` in its row of `contracts.topology.CONSUMES`), and check a
product with `product_exists` or `get_product` (a 422 for an unknown slug).

Guarantee: a change is applied only if its ``changed_at`` is newer than the row's, so
duplicates, replays and out-of-order deliveries leave the newest state, whatever order
the events arrive in. A change as old as the row is ignored: intake stamps every change
of a product with a new time.

A service deployed after the products were made, or whose copy was lost, starts empty:
`migrate` (see `servicekit.cli`) runs `request_if_empty`, which puts a
``product.catalogue_requested`` in the outbox when the table is empty; the relay
publishes it once the service runs, and intake answers by republishing every product as
``product.changed``. Intake's queue exists from the first migrate of any service, so the
request waits there if intake is not running yet. Asking again is harmless.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, topology
from contracts.products import CatalogueRequested, ProductChanged
from servicekit import outbox
from servicekit.consumer import Handler
from servicekit.tables import catalogue_product


@dataclass(frozen=True)
class CatalogueProduct:
    """A product as the read model holds it."""

    slug: str
    name: str
    active: bool
    changed_at: datetime


async def on_product_changed(
    session: AsyncSession, payload: ProductChanged, envelope: Envelope
) -> None:
    """Upsert the product unless the row already holds a change at least as new."""
    values = {
        "slug": payload.slug,
        "name": payload.name,
        "active": payload.active,
        "changed_at": payload.changed_at,
    }
    statement = insert(catalogue_product).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[catalogue_product.c.slug],
            set_={
                "name": statement.excluded.name,
                "active": statement.excluded.active,
                "changed_at": statement.excluded.changed_at,
            },
            where=catalogue_product.c.changed_at < statement.excluded.changed_at,
        )
    )


HANDLERS: dict[str, Handler] = {ProductChanged.event_type: on_product_changed}
"""Merge into a service's handlers: ``handlers={**own, **catalogue.HANDLERS}``."""


async def get_product(session: AsyncSession, slug: str) -> CatalogueProduct | None:
    """The product `slug` as the read model holds it (retired ones too), or None."""
    row = (
        await session.execute(select(catalogue_product).where(catalogue_product.c.slug == slug))
    ).one_or_none()
    return None if row is None else CatalogueProduct(*row)


async def product_exists(session: AsyncSession, slug: str, *, retired_too: bool = False) -> bool:
    """True if the catalogue has `slug` (and it is active, unless `retired_too`)."""
    condition = catalogue_product.c.slug == slug
    if not retired_too:
        condition = condition & catalogue_product.c.active
    return bool(await session.scalar(select(exists().where(condition))))


async def list_products(
    session: AsyncSession, *, retired_too: bool = False
) -> list[CatalogueProduct]:
    """Every product in the read model, by slug (active ones unless `retired_too`)."""
    query = select(catalogue_product).order_by(catalogue_product.c.slug)
    if not retired_too:
        query = query.where(catalogue_product.c.active)
    return [CatalogueProduct(*row) for row in await session.execute(query)]


def keeps_catalogue(service: str) -> bool:
    """True if `service`'s row of the routing table has ``product.changed``."""
    return ProductChanged.event_type in topology.CONSUMES.get(service, frozenset())


async def request_catalogue(session: AsyncSession, *, service: str) -> Envelope:
    """Ask intake (through the outbox, in the caller's transaction) to republish every
    product."""
    request = CatalogueRequested(request_id=uuid.uuid4(), requested_by=service)
    return await outbox.publish(session, request, producer=service)


async def request_if_empty(session: AsyncSession, *, service: str) -> Envelope | None:
    """`request_catalogue` if `service` keeps the catalogue and its read model is empty;
    returns the request, or None."""
    if not keeps_catalogue(service):
        return None
    if await session.scalar(select(exists().select_from(catalogue_product))):
        return None
    return await request_catalogue(session, service=service)

"""Product catalogue use cases (the admin manages it; tickets name a product by slug).

Intake owns the catalogue; every other service keeps a read model of it from
``product.changed`` events. Each change (registered, renamed, retired, restored)
is published through the outbox in the transaction that makes it, with the row's
``updated_at`` as ``changed_at``, so a read model can keep the newest; a
``product.catalogue_requested`` republishes every product as it is now.
"""

from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.products import ProductChanged
from intake.models import product
from intake.schemas import ProductCreate, ProductRead, ProductUpdate
from servicekit.outbox import publish
from servicekit.problems import Conflict, NotFound

PRODUCER = "intake"
_COLUMNS = (product.c.slug, product.c.name, product.c.active)


async def _published(
    session: AsyncSession, row: Any, causation: Envelope | None = None
) -> ProductRead:
    """Publish `row` (slug, name, active, updated_at) as ``product.changed``."""
    await publish(
        session,
        ProductChanged(slug=row.slug, name=row.name, active=row.active, changed_at=row.updated_at),
        producer=PRODUCER,
        causation=causation,
    )
    return ProductRead(slug=row.slug, name=row.name, active=row.active)


async def list_products(*, session: AsyncSession, include_inactive: bool) -> list[ProductRead]:
    """The catalogue, by name."""
    query = select(*_COLUMNS).order_by(product.c.name)
    if not include_inactive:
        query = query.where(product.c.active)
    return [ProductRead(**row._mapping) for row in await session.execute(query)]


async def get_product(*, session: AsyncSession, slug: str) -> ProductRead:
    """One product by slug."""
    row = (await session.execute(select(*_COLUMNS).where(product.c.slug == slug))).first()
    if row is None:
        raise NotFound(f"no product {slug!r}")
    return ProductRead(**row._mapping)


async def create_product(*, session: AsyncSession, data: ProductCreate) -> ProductRead:
    """Add a product to the catalogue (409 if the slug is taken, retired or not)."""
    row = (
        await session.execute(
            insert(product)
            .values(slug=data.slug, name=data.name)
            .on_conflict_do_nothing()
            .returning(*_COLUMNS, product.c.updated_at)
        )
    ).first()
    if row is None:
        raise Conflict(f"product {data.slug!r} already exists")
    return await _published(session, row)


_LATER = func.greatest(
    func.clock_timestamp(), product.c.updated_at + text("interval '1 microsecond'")
)
"""A product's new ``updated_at``: the wall clock, and always later than the last one. Not
``now()``, the transaction's start: of two racing updates the one that started first may
commit last, and read models keep the change with the newest time, so they would keep the
older state for good."""


async def update_product(*, session: AsyncSession, slug: str, data: ProductUpdate) -> ProductRead:
    """Rename, retire or restore a product."""
    values = data.model_dump(exclude_none=True)
    row = (
        await session.execute(
            update(product)
            .where(product.c.slug == slug)
            .values(**values, updated_at=_LATER)
            .returning(*_COLUMNS, product.c.updated_at)
        )
    ).first()
    if row is None:
        raise NotFound(f"no product {slug!r}")
    return await _published(session, row)


async def retire_product(*, session: AsyncSession, slug: str) -> None:
    """Take a product out of the catalogue; its tickets keep it."""
    await update_product(session=session, slug=slug, data=ProductUpdate(active=False))


async def republish_catalogue(*, session: AsyncSession, causation: Envelope | None) -> int:
    """Publish every product, retired ones included, as ``product.changed``; returns how many."""
    rows = (
        await session.execute(select(*_COLUMNS, product.c.updated_at).order_by(product.c.slug))
    ).all()
    for row in rows:
        await _published(session, row, causation)
    return len(rows)

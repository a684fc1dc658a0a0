"""Product catalogue use cases (the admin manages it; tickets name a product by slug)."""

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intake.models import product
from intake.schemas import ProductCreate, ProductRead, ProductUpdate
from servicekit.problems import Conflict, NotFound

_COLUMNS = (product.c.slug, product.c.name, product.c.active)


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
    """Add a product to the catalogue."""
    try:
        async with session.begin_nested():
            await session.execute(insert(product).values(slug=data.slug, name=data.name))
    except IntegrityError:
        raise Conflict(f"product {data.slug!r} already exists") from None
    return ProductRead(slug=data.slug, name=data.name, active=True)


async def update_product(*, session: AsyncSession, slug: str, data: ProductUpdate) -> ProductRead:
    """Rename, retire or restore a product."""
    values = data.model_dump(exclude_none=True)
    row = (
        await session.execute(
            update(product)
            .where(product.c.slug == slug)
            .values(**values, updated_at=func.now())
            .returning(*_COLUMNS)
        )
    ).first()
    if row is None:
        raise NotFound(f"no product {slug!r}")
    return ProductRead(**row._mapping)


async def retire_product(*, session: AsyncSession, slug: str) -> None:
    """Take a product out of the catalogue; its tickets keep it."""
    await update_product(session=session, slug=slug, data=ProductUpdate(active=False))

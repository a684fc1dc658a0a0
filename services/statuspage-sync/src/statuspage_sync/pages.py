"""Status pages, component groups and components: create, change, and tell everyone.

Every transaction that changes what a page shows calls `touch`, which raises the
page's ``version`` and NOTIFYs it at commit, so every replica renders the page
again (`statuspage_sync.cache`). A page's address and products are published as
``statuspage.published`` whenever they change.
"""

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from contracts.common import ProductRef
from contracts.statuspage import StatusPagePublished
from servicekit import catalogue
from servicekit.outbox import publish
from servicekit.problems import Conflict, NotFound, Unprocessable
from statuspage_sync.models import component, component_group, component_status_span, status_page
from statuspage_sync.schemas import (
    SLUG_PATTERN,
    ComponentCreate,
    GroupCreate,
    PageCreate,
    PageUpdate,
)
from statuspage_sync.settings import Settings

PRODUCER = "statuspage"
VERSIONS_CHANNEL = "klaxon_statuspage_{schema}"
"""NOTIFY channel of page versions; the payload is ``<slug>:<version>``, or ``*`` to reload."""


SLUG = re.compile(SLUG_PATTERN)
"""What a page's slug looks like."""

TOUCHED = "statuspage_touched"
"""``session.info`` key: the pages (slug -> version) the session's transaction changed."""


class PageNotFound(NotFound):
    """No status page has that slug."""

    title = "Status page not found"


def page_url(settings: Settings, slug: str) -> str:
    """The public address of a status page."""
    return f"{settings.public_base_url.rstrip('/')}/status/{slug}/"


async def touch(session: AsyncSession, page_id: uuid.UUID, *, reload: bool = False) -> None:
    """Raise the page's version; replicas render it again once this transaction commits."""
    row = (
        await session.execute(
            update(status_page)
            .where(status_page.c.id == page_id)
            .values(version=status_page.c.version + 1, updated_at=func.clock_timestamp())
            .returning(status_page.c.slug, status_page.c.version)
        )
    ).one()
    session.info.setdefault(TOUCHED, {})[row.slug] = row.version
    channel = await _channel(session)
    payload = "*" if reload else f"{row.slug}:{row.version}"
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


async def lock_pages(session: AsyncSession, page_ids: list[uuid.UUID]) -> None:
    """Lock pages (in id order) before their components, incidents or deadlines.

    Every use case that changes a page takes the page's row lock first, so two of them
    (a monitor's verdict and an engineer's notice, say) wait for each other instead of
    deadlocking on the rows below it."""
    if page_ids:
        await session.execute(
            select(status_page.c.id)
            .where(status_page.c.id.in_(sorted(set(page_ids))))
            .order_by(status_page.c.id)
            .with_for_update()
        )


async def _channel(session: AsyncSession) -> str:
    schema = await session.scalar(text("SELECT current_schema()"))
    return VERSIONS_CHANNEL.format(schema=schema)


async def product_ref(session: AsyncSession, slug: str) -> ProductRef:
    """The product by slug, named as intake's catalogue names it (the slug if unknown)."""
    product = await catalogue.get_product(session, slug)
    return ProductRef(slug=slug, name=product.name if product else slug)


async def _check_products(session: AsyncSession, slugs: list[str], field: str) -> None:
    for index, slug in enumerate(slugs):
        if not await catalogue.product_exists(session, slug):
            raise Unprocessable(f"{field}[{index}]", f"no active product {slug!r} in the catalogue")


async def write_unique(session: AsyncSession, stmt: Executable, conflict: str) -> None:
    """Run an insert or update in a savepoint; a unique violation is a `Conflict`.

    The checks before a write answer the common case with a clear message; this
    answers the race they cannot see (two requests creating the same slug at once),
    which would otherwise reach the client as a 500."""
    try:
        async with session.begin_nested():
            await session.execute(stmt)
    except IntegrityError as exc:
        raise Conflict(conflict) from exc


async def get_page(session: AsyncSession, slug: str, *, lock: bool = False) -> Any:
    """The page row by slug; 404 if none (a string that cannot be a slug, with a NUL say,
    is not sent to the database)."""
    if not SLUG.fullmatch(slug):
        raise PageNotFound(f"no status page {slug!r}")
    query = select(status_page).where(status_page.c.slug == slug)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None:
        raise PageNotFound(f"no status page {slug!r}")
    return row


def _published(settings: Settings, row: Any, changed_at: datetime) -> StatusPagePublished:
    return StatusPagePublished(
        status_page_id=row.id,
        status_page=row.slug,
        title=row.title,
        status_page_url=page_url(settings, row.slug),
        products=tuple(row.products),
        changed_at=changed_at,
    )


async def _publish_page(session: AsyncSession, settings: Settings, page_id: uuid.UUID) -> None:
    row = (await session.execute(select(status_page).where(status_page.c.id == page_id))).one()
    await publish(session, _published(settings, row, row.updated_at), producer=PRODUCER)


async def republish_pages(session: AsyncSession, settings: Settings) -> int:
    """Publish every page's address and products again (at start-up), so a reader that
    lost its copy of a ``statuspage.published`` gets it back; how many were published.

    Every ``statuspage.published`` carries the page's ``updated_at`` as ``changed_at``,
    stamped by `touch` under the page's row lock: a copy sent again is no newer than the
    one its change sent, so a reader that keeps the strictly newest ignores a copy it
    has, and a copy read just before a concurrent change cannot overwrite that change."""
    rows = list(await session.execute(select(status_page).order_by(status_page.c.slug)))
    for row in rows:
        await publish(session, _published(settings, row, row.updated_at), producer=PRODUCER)
    return len(rows)


async def create_page(*, session: AsyncSession, settings: Settings, data: PageCreate) -> Any:
    """Create a status page and publish its address."""
    if await session.scalar(select(status_page.c.id).where(status_page.c.slug == data.slug)):
        raise Conflict(f"a status page {data.slug!r} exists")
    await _check_products(session, data.products, "products")
    page_id = uuid.uuid4()
    await write_unique(
        session,
        insert(status_page).values(
            id=page_id,
            slug=data.slug,
            title=data.title,
            time_zone=data.time_zone,
            products=list(data.products),
            auto_open_incidents=data.auto_open_incidents,
            auto_resolve_incidents=data.auto_resolve_incidents,
        ),
        f"a status page {data.slug!r} exists",
    )
    await touch(session, page_id, reload=True)
    await _publish_page(session, settings, page_id)
    return await get_page(session, data.slug)


async def update_page(
    *, session: AsyncSession, settings: Settings, slug: str, data: PageUpdate
) -> Any:
    """Change a page; its address and products are published again if they changed."""
    page = await get_page(session, slug, lock=True)
    values = data.model_dump(exclude_unset=True, exclude_none=True)
    if values.get("products") is not None:
        await _check_products(session, values["products"], "products")
        values["products"] = list(values["products"])
    if values.get("slug") and values["slug"] != slug:
        taken = await session.scalar(
            select(status_page.c.id).where(status_page.c.slug == values["slug"])
        )
        if taken:
            raise Conflict(f"a status page {values['slug']!r} exists")
    if values:
        await write_unique(
            session,
            update(status_page).where(status_page.c.id == page.id).values(values),
            f"a status page {values.get('slug')!r} exists",
        )
    await touch(session, page.id, reload=True)
    if {"slug", "title", "products"} & values.keys():
        await _publish_page(session, settings, page.id)
    return await get_page(session, values.get("slug") or slug)


async def create_group(*, session: AsyncSession, slug: str, data: GroupCreate) -> Any:
    """Add a component group to a page."""
    page = await get_page(session, slug, lock=True)
    group_id = uuid.uuid4()
    if await session.scalar(
        select(component_group.c.id).where(
            component_group.c.status_page_id == page.id, component_group.c.name == data.name
        )
    ):
        raise Conflict(f"the page has a group {data.name!r}")
    await write_unique(
        session,
        insert(component_group).values(
            id=group_id,
            status_page_id=page.id,
            name=data.name,
            description=data.description,
            position=data.position,
        ),
        f"the page has a group {data.name!r}",
    )
    await touch(session, page.id)
    return (
        await session.execute(select(component_group).where(component_group.c.id == group_id))
    ).one()


async def create_component(*, session: AsyncSession, slug: str, data: ComponentCreate) -> Any:
    """Add a component to a page (operational until a monitor or a person says otherwise)."""
    page = await get_page(session, slug, lock=True)
    if data.group_id is not None and not await session.scalar(
        select(component_group.c.id).where(
            component_group.c.id == data.group_id, component_group.c.status_page_id == page.id
        )
    ):
        raise Unprocessable("group_id", "is not a component group of this page")
    if await session.scalar(
        select(component.c.id).where(
            component.c.status_page_id == page.id, component.c.name == data.name
        )
    ):
        raise Conflict(f"the page has a component {data.name!r}")
    if data.product is not None and not await catalogue.product_exists(session, data.product):
        raise Unprocessable("product", f"no active product {data.product!r} in the catalogue")
    component_id = uuid.uuid4()
    now = datetime.now(UTC)
    await write_unique(
        session,
        insert(component).values(
            id=component_id,
            status_page_id=page.id,
            group_id=data.group_id,
            name=data.name,
            description=data.description,
            position=data.position,
            only_show_if_degraded=data.only_show_if_degraded,
            product_slug=data.product,
            monitor_ids=list(data.monitor_ids),
        ),
        f"the page has a component {data.name!r}",
    )
    await session.execute(
        insert(component_status_span).values(
            component_id=component_id, status="operational", started_at=now
        )
    )
    await touch(session, page.id)
    return (await session.execute(select(component).where(component.c.id == component_id))).one()


async def page_components(session: AsyncSession, page_id: uuid.UUID) -> list[Any]:
    """A page's components in display order."""
    rows = await session.execute(
        select(component)
        .where(component.c.status_page_id == page_id)
        .order_by(component.c.position, component.c.name)
    )
    return list(rows)


async def list_pages(*, session: AsyncSession) -> list[Any]:
    """Every status page by slug."""
    return list(await session.execute(select(status_page).order_by(status_page.c.slug)))

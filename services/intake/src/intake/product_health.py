"""Product-health read model: what monitoring and the status pages last said per product.

Each source (a monitor, an incident, a status-page component) keeps one row
per product with its latest state and the time it was observed; an event older
than the stored observation is ignored, so redelivered or reordered events
cannot roll the model back. A product is down if any source says down, up if
at least one source reported and none says down, unknown otherwise.
"""

from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import HealthState
from intake.models import product_signal


async def observe(
    session: AsyncSession,
    *,
    product_slug: str,
    source: str,
    state: HealthState,
    observed_at: datetime,
    detail: str = "",
) -> bool:
    """Record what `source` said about a product; False if a newer observation is kept."""
    stmt = insert(product_signal).values(
        product_slug=product_slug,
        source=source,
        state=state.value,
        observed_at=observed_at,
        detail=detail[:500],
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[product_signal.c.product_slug, product_signal.c.source],
        set_={
            "state": stmt.excluded.state,
            "observed_at": stmt.excluded.observed_at,
            "detail": stmt.excluded.detail,
        },
        where=product_signal.c.observed_at <= stmt.excluded.observed_at,
    ).returning(product_signal.c.source)
    return (await session.execute(upsert)).first() is not None


def state_of(product_slug: ColumnElement[str] | str) -> ColumnElement[str]:
    """A scalar SQL expression: the HealthState value of a product right now."""
    return (
        select(
            case(
                (func.bool_or(product_signal.c.state == HealthState.DOWN.value), "down"),
                (func.count() > 0, "up"),
                else_="unknown",
            )
        )
        .where(product_signal.c.product_slug == product_slug)
        .scalar_subquery()
    )


async def product_state(session: AsyncSession, product_slug: str) -> HealthState:
    """What monitoring says about a product right now."""
    value = await session.scalar(select(state_of(product_slug)))
    return HealthState(value or "unknown")

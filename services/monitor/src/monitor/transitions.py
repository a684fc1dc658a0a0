"""A monitor's state changes and the events they publish (through the outbox, in the
transaction that records the change: an event exactly when the state changes)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ProductRef
from contracts.envelope import EventPayload
from contracts.monitor import (
    MonitorCameUp,
    MonitorDegraded,
    MonitorWentDown,
    RegionView,
)
from monitor.confirmation import overall
from monitor.models import check_state, monitor
from monitor.windows import in_patch_window
from servicekit.outbox import publish
from servicekit.tables import catalogue_product

PRODUCER = "monitor"


async def live_regions(session: AsyncSession, ttl_s: float) -> set[str]:
    """Regions with a replica seen within `ttl_s`."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT region FROM replica"
            " WHERE seen_at > now() - make_interval(secs => :ttl)"
        ),
        {"ttl": ttl_s},
    )
    return {row[0] for row in rows}


async def product_ref(session: AsyncSession, slug: str) -> ProductRef:
    """The product as events name it (its catalogue name, or its slug if not known yet)."""
    name = await session.scalar(
        select(catalogue_product.c.name).where(catalogue_product.c.slug == slug)
    )
    return ProductRef(slug=slug, name=name or slug)


def target_label(row: Any) -> str | None:
    """What a monitor checks, as one string."""
    target = row.target
    if row.kind == "http":
        return str(target["url"])
    if row.kind == "tcp":
        return f"tcp://{target['host']}:{target['port']}"
    return None


async def evaluate(
    session: AsyncSession, monitor_id: uuid.UUID, live: set[str], now: datetime
) -> str | None:
    """Recompute a monitor's state from its regions; on a change, record it and publish.

    Returns the new state if it changed. Locks the monitor row, so regions reporting at
    once are judged one after the other.
    """
    row = (
        await session.execute(select(monitor).where(monitor.c.id == monitor_id).with_for_update())
    ).first()
    if row is None or row.paused:
        return None
    regions = (
        await session.execute(select(check_state).where(check_state.c.monitor_id == monitor_id))
    ).all()
    counted = [
        r
        for r in regions
        if r.region == "_" or (r.region in live and (not row.regions or r.region in row.regions))
    ]
    new = overall([r.state for r in counted])
    if new is None or new == row.state:
        return None
    views = tuple(
        RegionView(region=r.region, state=r.state, error=r.last_error, checked_at=r.last_checked_at)
        for r in counted
    )
    down = [r for r in counted if r.state == "down"]
    first_failure_at = min((r.first_failure_at or now for r in down), default=None)
    error = next((r.last_error for r in down if r.last_error), None) or next(
        (r.last_error for r in counted if r.last_error), None
    )
    await session.execute(
        update(monitor)
        .where(monitor.c.id == monitor_id)
        .values(
            state=new,
            state_changed_at=now,
            first_failure_at=first_failure_at if new == "down" else None,
            last_error=error if new in ("down", "degraded") else None,
        )
    )
    product = await product_ref(session, row.product)
    events: list[EventPayload] = []
    if new == "down":
        reason = next((r.last_reason for r in down if r.last_reason), None) or "unknown"
        events.append(
            MonitorWentDown(
                monitor_id=row.id,
                monitor_name=row.name,
                product=product,
                component=row.component,
                url=target_label(row),
                kind=row.kind,
                reason=reason,
                error=error or reason,
                down_since=first_failure_at or now,
                confirmed_at=now,
                regions=views,
                in_patch_window=await in_patch_window(session, row, first_failure_at or now),
            )
        )
    if row.state in ("down", "degraded") and new in ("up", "degraded"):
        since = row.first_failure_at if row.state == "down" else row.state_changed_at
        since = since or row.state_changed_at
        events.append(
            MonitorCameUp(
                monitor_id=row.id,
                monitor_name=row.name,
                product=product,
                component=row.component,
                down_since=since,
                up_at=now,
                downtime_s=round((now - since).total_seconds(), 3),
                previous_state=row.state,
                regions=views,
            )
        )
    if new == "degraded":
        events.append(
            MonitorDegraded(
                monitor_id=row.id,
                monitor_name=row.name,
                product=product,
                component=row.component,
                url=target_label(row),
                error=error or "slow",
                degraded_since=now,
                regions=views,
            )
        )
    for event in events:
        await publish(session, event, producer=PRODUCER)
    return new

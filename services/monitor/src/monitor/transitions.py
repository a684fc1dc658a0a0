"""A monitor's state changes and the events they publish (through the outbox, in the
transaction that records the change: an event exactly when the state changes)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
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
    """`evaluate_many` for one monitor; returns its new state if it changed."""
    return (await evaluate_many(session, [monitor_id], live, now)).get(monitor_id)


_SET_STATES = text(
    """
    UPDATE monitor m
    SET state = v.state, state_changed_at = :now, first_failure_at = v.first_failure_at,
        last_error = v.last_error
    FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]),
                CAST(:firsts AS timestamptz[]), CAST(:errors AS text[]))
        AS v(id, state, first_failure_at, last_error)
    WHERE m.id = v.id
    """
)


async def evaluate_many(
    session: AsyncSession, monitor_ids: list[uuid.UUID], live: set[str], now: datetime
) -> dict[uuid.UUID, str]:
    """Recompute monitors' states from their regions; record the changes and publish their
    events. Returns the monitors whose state changed, with the new state.

    Locks the monitor rows in id order (so regions reporting at once are judged one after
    the other, and two batches never deadlock) with a few statements for the whole batch.
    """
    ids = sorted(set(monitor_ids))
    if not ids:
        return {}
    rows = (
        await session.execute(
            select(monitor).where(monitor.c.id.in_(ids)).order_by(monitor.c.id).with_for_update()
        )
    ).all()
    by_monitor: dict[uuid.UUID, list[Any]] = {}
    for r in await session.execute(select(check_state).where(check_state.c.monitor_id.in_(ids))):
        by_monitor.setdefault(r.monitor_id, []).append(r)
    changes: list[tuple[Any, str, list[Any]]] = []
    for row in rows:
        if row.paused:
            continue
        counted = [
            r
            for r in by_monitor.get(row.id, [])
            if r.region == "_"
            or (r.region in live and (not row.regions or r.region in row.regions))
        ]
        new = overall([r.state for r in counted])
        if new is not None and new != row.state:
            changes.append((row, new, counted))
    if not changes:
        return {}
    firsts: list[datetime | None] = []
    errors: list[str | None] = []
    for _, new, counted in changes:
        down = [r for r in counted if r.state == "down"]
        first = min((r.first_failure_at or now for r in down), default=None)
        error = next((r.last_error for r in down if r.last_error), None) or next(
            (r.last_error for r in counted if r.last_error), None
        )
        firsts.append(first if new == "down" else None)
        errors.append(error if new in ("down", "degraded") else None)
    await session.execute(
        _SET_STATES,
        {
            "now": now,
            "ids": [row.id for row, _, _ in changes],
            "states": [new for _, new, _ in changes],
            "firsts": firsts,
            "errors": errors,
        },
    )
    products: dict[str, ProductRef] = {}
    for (row, new, counted), first, error in zip(changes, firsts, errors, strict=True):
        if new == "up" and row.state == "pending":
            continue  # a first good check is no news
        if row.product not in products:
            products[row.product] = await product_ref(session, row.product)
        for event in await _events(session, row, new, counted, first, error, now):
            await publish(
                session,
                event.model_copy(update={"product": products[row.product]}),
                producer=PRODUCER,
            )
    return {row.id: new for row, new, _ in changes}


async def _events(
    session: AsyncSession,
    row: Any,
    new: str,
    counted: list[Any],
    first_failure_at: datetime | None,
    error: str | None,
    now: datetime,
) -> list[EventPayload]:
    """The events of one monitor's change of state."""
    product = ProductRef(slug=row.product, name=row.product)
    views = tuple(
        RegionView(region=r.region, state=r.state, error=r.last_error, checked_at=r.last_checked_at)
        for r in counted
    )
    down = [r for r in counted if r.state == "down"]
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
    return events

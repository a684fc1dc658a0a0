"""Patch windows prove monitoring works: each window must see at least one failed check.

A window is one-off or recurring (a cron expression in a time zone, lasting
`duration_s`) and covers monitors by id, product or tag. A durable timer
(``patch_window.close``) fires `verification_settle_s` after each occurrence ends,
once the last results of the window are written; it judges every covered product
(`monitor.verification_passed` with the failed checks as evidence, or
`monitor.verification_failed`), records a `verification_run` (at most one per
window, product and occurrence, so a timer fired twice publishes once) and
schedules the next occurrence.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import and_, any_, delete, false, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ProductRef
from contracts.monitor import FailedCheck, MonitorVerificationFailed, MonitorVerificationPassed
from monitor.models import check_result, monitor, patch_window, region, verification_run
from monitor.schemas import PatchWindowSpec
from servicekit.outbox import publish
from servicekit.problems import Unprocessable
from servicekit.runtime import current_runtime
from servicekit.tables import catalogue_product, timer
from servicekit.timers import DueTimer, schedule

CLOSE_TIMER = "patch_window.close"
PRODUCER = "monitor"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Unprocessable("timezone", f"{name!r} is not a known time zone") from exc


def validate_window(spec: PatchWindowSpec) -> None:
    """Raise `Unprocessable` for a window that cannot be scheduled."""
    if spec.cron is not None:
        if not croniter.is_valid(spec.cron):
            raise Unprocessable("cron", f"{spec.cron!r} is not a valid cron expression")
        if spec.duration_s is None:
            raise Unprocessable("duration_s", "a recurring window needs duration_s")
        if spec.starts_at is not None or spec.ends_at is not None:
            raise Unprocessable(
                "starts_at", "give either cron and duration_s, or starts_at/ends_at"
            )
        _zone(spec.timezone)
    else:
        if spec.starts_at is None or spec.ends_at is None:
            raise Unprocessable("starts_at", "a window needs starts_at and ends_at, or a cron")
        if spec.starts_at.tzinfo is None or spec.ends_at.tzinfo is None:
            raise Unprocessable("starts_at", "times need a UTC offset")
        if spec.ends_at <= spec.starts_at:
            raise Unprocessable("ends_at", "the window ends before it starts")
    if not (spec.monitor_ids or spec.products or spec.tags):
        raise Unprocessable("monitor_ids", "a window covers monitors by id, product or tag")


def occurrence_at(window: Any, at: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of `window` that contains `at`, if any."""
    if window.cron is None:
        if window.starts_at <= at < window.ends_at:
            return window.starts_at, window.ends_at
        return None
    zone = _zone(window.timezone)
    start = croniter(window.cron, (at + timedelta(seconds=1)).astimezone(zone)).get_prev(datetime)
    end = start + timedelta(seconds=window.duration_s)
    return (start.astimezone(UTC), end.astimezone(UTC)) if start <= at < end else None


def next_occurrence(window: Any, after: datetime) -> tuple[datetime, datetime] | None:
    """The first occurrence of `window` that ends after `after`."""
    if window.cron is None:
        return (window.starts_at, window.ends_at) if window.ends_at > after else None
    current = occurrence_at(window, after)
    if current is not None:
        return current
    zone = _zone(window.timezone)
    start = croniter(window.cron, after.astimezone(zone)).get_next(datetime)
    return start.astimezone(UTC), (start + timedelta(seconds=window.duration_s)).astimezone(UTC)


def _covers(row: Any) -> Any:
    """Monitors a window covers (by id, product or tag)."""
    return or_(
        false(),
        monitor.c.id.in_(list(row.monitor_ids)),
        monitor.c.product.in_(list(row.products)),
        monitor.c.tags.overlap(list(row.tags)) if row.tags else false(),
    )


async def in_patch_window(session: AsyncSession, mon: Any, at: datetime) -> bool:
    """True if a window covering monitor `mon` is open at `at`."""
    windows = await session.execute(
        select(patch_window).where(
            or_(
                mon.id == any_(patch_window.c.monitor_ids),
                mon.product == any_(patch_window.c.products),
                patch_window.c.tags.overlap(list(mon.tags)) if mon.tags else false(),
            )
        )
    )
    return any(occurrence_at(w, at) is not None for w in windows)


async def schedule_close(session: AsyncSession, window: Any, settle_s: float) -> None:
    """Set the window's close timer to its next occurrence (none if it has no more)."""
    upcoming = next_occurrence(window, datetime.now(UTC))
    if upcoming is None:
        return
    starts_at, ends_at = upcoming
    await schedule(
        session,
        kind=CLOSE_TIMER,
        key=str(window.id),
        due_at=ends_at + timedelta(seconds=settle_s),
        payload={"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
    )


async def judge(session: AsyncSession, window: Any, starts_at: datetime, ends_at: datetime) -> int:
    """Record and publish each covered product's verdict for one occurrence; returns how many
    verdicts were new."""
    covered = (
        await session.execute(
            select(monitor.c.id, monitor.c.key, monitor.c.name, monitor.c.product).where(
                _covers(window)
            )
        )
    ).all()
    products = {m.product for m in covered} | set(window.products)
    names = dict(
        (
            await session.execute(
                select(catalogue_product.c.slug, catalogue_product.c.name).where(
                    catalogue_product.c.slug.in_(products)
                )
            )
        ).all()
    )
    decided = 0
    for slug in sorted(products):
        mons = [m for m in covered if m.product == slug]
        by_key = {m.key: m for m in mons}
        failed = (
            await session.execute(
                select(
                    check_result.c.monitor_key,
                    check_result.c.at_s,
                    check_result.c.error,
                    region.c.name,
                )
                .join(region, region.c.key == check_result.c.region_key)
                .where(
                    check_result.c.monitor_key.in_(list(by_key)),
                    check_result.c.at_s >= int(starts_at.timestamp()),
                    check_result.c.at_s <= int(ends_at.timestamp()),
                    check_result.c.outcome >= 2,
                )
                .order_by(check_result.c.at_s)
                .limit(100)
            )
        ).all()
        evidence = [
            FailedCheck(
                monitor_id=by_key[f.monitor_key].id,
                monitor_name=by_key[f.monitor_key].name,
                region=f.name,
                at=datetime.fromtimestamp(f.at_s, UTC),
                error=f.error,
            )
            for f in failed
        ]
        run_id = uuid.uuid4()
        inserted = await session.scalar(
            insert(verification_run)
            .values(
                id=run_id,
                patch_window_id=window.id,
                window_name=window.name,
                product=slug,
                starts_at=starts_at,
                ends_at=ends_at,
                outcome="passed" if evidence else "failed",
                monitor_ids=[m.id for m in mons],
                evidence=[e.model_dump(mode="json") for e in evidence],
            )
            .on_conflict_do_nothing()
            .returning(verification_run.c.id)
        )
        if inserted is None:
            continue
        decided += 1
        product = ProductRef(slug=slug, name=names.get(slug, slug))
        common: dict[str, Any] = {
            "patch_window_id": window.id,
            "product": product,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "monitor_ids": tuple(m.id for m in mons),
            "run_id": run_id,
            "window_name": window.name,
        }
        if evidence:
            event: MonitorVerificationPassed | MonitorVerificationFailed = (
                MonitorVerificationPassed(
                    **common, first_alert_at=evidence[0].at, evidence=tuple(evidence)
                )
            )
        else:
            reason = (
                "patching happened and monitoring saw nothing: check its configuration"
                if mons
                else "no monitor covers this product: monitoring cannot have seen the patching"
            )
            event = MonitorVerificationFailed(**common, reason=reason)
        await publish(session, event, producer=PRODUCER)
    return decided


async def close_window(session: AsyncSession, due: DueTimer) -> None:
    """Timer handler: judge the occurrence that just closed, then schedule the next."""
    window = (
        await session.execute(select(patch_window).where(patch_window.c.id == uuid.UUID(due.key)))
    ).first()
    if window is None:
        return
    starts_at = datetime.fromisoformat(due.payload["starts_at"])
    ends_at = datetime.fromisoformat(due.payload["ends_at"])
    await judge(session, window, starts_at, ends_at)
    settle_s = float(getattr(current_runtime().settings, "verification_settle_s", 0.0))
    upcoming = next_occurrence(window, ends_at + timedelta(microseconds=1))
    if upcoming is not None:
        await schedule(
            session,
            kind=CLOSE_TIMER,
            key=str(window.id),
            due_at=upcoming[1] + timedelta(seconds=settle_s),
            payload={"starts_at": upcoming[0].isoformat(), "ends_at": upcoming[1].isoformat()},
        )


async def forget_window(session: AsyncSession, window_id: uuid.UUID) -> None:
    """Drop a deleted window's close timer."""
    await session.execute(
        delete(timer).where(and_(timer.c.kind == CLOSE_TIMER, timer.c.key == str(window_id)))
    )

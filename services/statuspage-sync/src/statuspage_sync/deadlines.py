"""The 30-minute promises, watched with durable timers.

- A CRITICAL report starts a deadline on every status page covering its product:
  a notice posted by a person on that page after the report clears it; otherwise a
  reminder goes out at ``report_reminder_s`` (``statuspage.update_due_soon``) and
  ``statuspage.update_overdue`` at ``report_update_deadline_s``.
- An incident starts a deadline for a notice with an ETA: without one after
  ``eta_reminder_s`` the same reminder goes out (reason ``no_eta_notice``).

Guarantee: the timers are rows (`servicekit.timers`), so they survive restarts; each
firing re-reads its deadline under a row lock and records that it fired in the same
transaction, so a reminder or an overdue event is published at most once per
deadline even if a timer fires twice; a deadline cleared first publishes nothing.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, any_, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import Person, ProductRef
from contracts.intake import TicketFiled
from contracts.statuspage import DueReason, StatusUpdateDueSoon, StatusUpdateOverdue
from servicekit import timers
from servicekit.outbox import publish
from servicekit.timers import DueTimer
from statuspage_sync import pages
from statuspage_sync.models import deadline, incident, notice, status_page
from statuspage_sync.settings import Settings

log = logging.getLogger(__name__)

REMIND = "deadline.remind"
EXPIRE = "deadline.expire"


async def _start(
    session: AsyncSession, *, key: str, values: dict[str, Any], with_expiry: bool
) -> uuid.UUID | None:
    """Insert the deadline unless `key` exists; schedule its timers. Its id, or None."""
    deadline_id = uuid.uuid4()
    created = (
        await session.execute(
            insert(deadline)
            .values(id=deadline_id, key=key, **values)
            .on_conflict_do_nothing(index_elements=[deadline.c.key])
            .returning(deadline.c.id)
        )
    ).first()
    if created is None:
        return None
    payload = {"deadline_id": str(deadline_id)}
    await timers.schedule(
        session, kind=REMIND, key=str(deadline_id), due_at=values["remind_at"], payload=payload
    )
    if with_expiry:
        await timers.schedule(
            session, kind=EXPIRE, key=str(deadline_id), due_at=values["due_at"], payload=payload
        )
    return deadline_id


async def watch_report(session: AsyncSession, settings: Settings, ticket: TicketFiled) -> int:
    """Start the deadline of a CRITICAL report on each page covering its product; how many."""
    started = 0
    rows = await session.execute(
        select(status_page.c.id).where(
            literal(ticket.product.slug, String) == any_(status_page.c.products)
        )
    )
    page_ids = [page_id for (page_id,) in rows]
    if not page_ids:
        log.warning(
            "CRITICAL report %s: no status page covers %s, so no update deadline is watched",
            ticket.ticket_id,
            ticket.product.slug,
        )
    # Locked, so a notice being posted on the page either committed before (and is seen
    # below) or waits, and then sees this deadline to clear.
    await pages.lock_pages(session, page_ids)
    for page_id in page_ids:
        deadline_id = await _start(
            session,
            key=f"report:{page_id}:{ticket.ticket_id}",
            values={
                "kind": DueReason.NO_UPDATE_AFTER_REPORT.value,
                "status_page_id": page_id,
                "ticket_id": ticket.ticket_id,
                "product_slug": ticket.product.slug,
                "product_name": ticket.product.name,
                "reporter_name": ticket.reporter.name,
                "reporter_email": ticket.reporter.email,
                "started_at": ticket.filed_at,
                "remind_at": ticket.filed_at + timedelta(seconds=settings.report_reminder_s),
                "due_at": ticket.filed_at + timedelta(seconds=settings.report_update_deadline_s),
            },
            with_expiry=True,
        )
        if deadline_id is None:
            continue
        started += 1
        # The report may arrive after a notice that already answers it.
        earliest = await session.execute(
            select(notice.c.id, notice.c.created_at)
            .join(incident, incident.c.id == notice.c.incident_id)
            .where(
                incident.c.status_page_id == page_id,
                notice.c.automatic.is_(False),
                notice.c.created_at >= ticket.filed_at,
            )
            .order_by(notice.c.created_at)
            .limit(1)
        )
        found = earliest.first()
        if found is not None:
            await _clear(session, [deadline_id], by=found.id, at=found.created_at)
    return started


async def watch_eta(
    session: AsyncSession,
    settings: Settings,
    *,
    page_id: uuid.UUID,
    incident_id: uuid.UUID,
    product: ProductRef,
    opened_at: datetime,
) -> None:
    """Start waiting for a notice with an ETA on a new incident."""
    due = opened_at + timedelta(seconds=settings.eta_reminder_s)
    await _start(
        session,
        key=f"eta:{incident_id}",
        values={
            "kind": DueReason.NO_ETA_NOTICE.value,
            "status_page_id": page_id,
            "incident_id": incident_id,
            "product_slug": product.slug,
            "product_name": product.name,
            "started_at": opened_at,
            "remind_at": due,
            "due_at": due,
        },
        with_expiry=False,
    )


async def _clear(
    session: AsyncSession, ids: list[uuid.UUID], *, by: uuid.UUID | None, at: datetime
) -> None:
    if not ids:
        return
    await session.execute(
        update(deadline).where(deadline.c.id.in_(ids)).values(cleared_at=at, cleared_by=by)
    )
    for deadline_id in ids:
        await timers.cancel(session, kind=REMIND, key=str(deadline_id))
        await timers.cancel(session, kind=EXPIRE, key=str(deadline_id))


_OPEN = (deadline.c.cleared_at.is_(None), deadline.c.expired_at.is_(None))


async def on_notice(
    session: AsyncSession,
    *,
    page_id: uuid.UUID,
    incident_id: uuid.UUID,
    notice_id: uuid.UUID,
    posted_at: datetime,
    has_eta: bool,
    resolved: bool,
) -> None:
    """A person posted a notice: it keeps the report promises made before it on this page
    (and the same reports' promises on other pages covering the product), and the
    incident's ETA promise if it carries an ETA or resolves the incident."""
    tickets = await session.scalars(
        select(deadline.c.ticket_id).where(
            deadline.c.status_page_id == page_id,
            deadline.c.kind == DueReason.NO_UPDATE_AFTER_REPORT.value,
            deadline.c.started_at <= posted_at,
            *_OPEN,
        )
    )
    ids = await _lock(session, deadline.c.ticket_id.in_(list(tickets)))
    if has_eta or resolved:
        ids.extend(await _lock(session, deadline.c.incident_id == incident_id))
    await _clear(session, ids, by=notice_id, at=posted_at)


async def _lock(session: AsyncSession, condition: Any) -> list[uuid.UUID]:
    """Lock the open deadlines matching `condition` in id order (as the timers do, so two
    lockers never wait for each other crosswise); their ids."""
    rows = await session.scalars(
        select(deadline.c.id).where(condition, *_OPEN).order_by(deadline.c.id).with_for_update()
    )
    return list(rows)


async def on_resolved(session: AsyncSession, *, incident_id: uuid.UUID, at: datetime) -> None:
    """An incident resolved (by a monitor or a maintenance's end) needs no ETA any more."""
    ids = await session.scalars(
        select(deadline.c.id).where(deadline.c.incident_id == incident_id, *_OPEN)
    )
    await _clear(session, list(ids), by=None, at=at)


async def link_page(
    session: AsyncSession, *, ticket_ids: tuple[uuid.UUID, ...], page_id: uuid.UUID
) -> None:
    """Note which notifier page the reports belong to (reminders name it)."""
    if ticket_ids:
        await session.execute(
            update(deadline)
            .where(deadline.c.ticket_id.in_(ticket_ids), deadline.c.page_id.is_(None))
            .values(page_id=page_id)
        )


async def acknowledged(
    session: AsyncSession, *, ticket_ids: tuple[uuid.UUID, ...], at: datetime
) -> None:
    """Note that an engineer acknowledged the page of these reports."""
    if ticket_ids:
        await session.execute(
            update(deadline)
            .where(deadline.c.ticket_id.in_(ticket_ids), deadline.c.acknowledged_at.is_(None))
            .values(acknowledged_at=at)
        )


async def _locked(session: AsyncSession, timer: DueTimer) -> Any:
    """The timer's deadline, if still open, with every deadline of the same report locked:
    a report watched on several pages is reminded and escalated once."""
    deadline_id = uuid.UUID(timer.payload["deadline_id"])
    ticket_id = await session.scalar(
        select(deadline.c.ticket_id).where(deadline.c.id == deadline_id)
    )
    if ticket_id is not None:
        await session.execute(
            select(deadline.c.id)
            .where(deadline.c.ticket_id == ticket_id)
            .order_by(deadline.c.id)
            .with_for_update()
        )
    return (
        await session.execute(
            select(deadline, status_page.c.slug)
            .join(status_page, status_page.c.id == deadline.c.status_page_id)
            .where(deadline.c.id == deadline_id, *_OPEN)
            .with_for_update(of=deadline)
        )
    ).first()


async def _sibling_did(session: AsyncSession, row: Any, column: Any) -> bool:
    """True if the same report's deadline on another page already fired this way."""
    if row.ticket_id is None:
        return False
    found = await session.scalar(
        select(deadline.c.id).where(
            deadline.c.ticket_id == row.ticket_id, deadline.c.id != row.id, column.is_not(None)
        )
    )
    return found is not None


def _message(row: Any) -> str:
    if row.kind == DueReason.NO_ETA_NOTICE.value:
        return (
            f"The incident on the {row.slug} status page has been open since "
            f"{row.started_at:%H:%M} UTC with no notice saying when it should be resolved. "
            "Post a notice with an expected resolution time."
        )
    return (
        f"{row.reporter_name} reported a CRITICAL problem with {row.product_name} at "
        f"{row.started_at:%H:%M} UTC. Post a notice on the {row.slug} status page before "
        f"{row.due_at:%H:%M} UTC: the reporter was promised one within 30 minutes."
    )


async def figure(session: AsyncSession) -> dict[str, Any]:
    """For ``/health``: promises being watched now, and how many were ever broken."""
    watching = await session.scalar(select(func.count()).where(*_OPEN).select_from(deadline))
    broken = await session.scalar(
        select(func.count()).where(deadline.c.expired_at.is_not(None)).select_from(deadline)
    )
    return {"watching": int(watching or 0), "overdue": int(broken or 0)}


def make_timer_handlers(settings: Settings) -> dict[str, timers.TimerHandler]:
    """The deadline timers' handlers."""

    async def remind(session: AsyncSession, timer: DueTimer) -> None:
        """Remind the on-call engineer of a promise about to be broken (once)."""
        row = await _locked(session, timer)
        if row is None or row.reminded_at is not None:
            return
        await session.execute(
            update(deadline).where(deadline.c.id == row.id).values(reminded_at=datetime.now(UTC))
        )
        if await _sibling_did(session, row, deadline.c.reminded_at):
            return
        reporter = (
            Person(name=row.reporter_name, email=row.reporter_email)
            if row.reporter_name and row.reporter_email
            else None
        )
        await publish(
            session,
            StatusUpdateDueSoon(
                deadline_id=row.id,
                reason=DueReason(row.kind),
                status_page=row.slug,
                status_page_url=pages.page_url(settings, row.slug),
                product=ProductRef(slug=row.product_slug, name=row.product_name),
                ticket_id=row.ticket_id,
                incident_id=row.incident_id,
                page_id=row.page_id,
                reporter=reporter,
                started_at=row.started_at,
                due_at=row.due_at,
                message=_message(row),
            ),
            producer=pages.PRODUCER,
        )

    async def expire(session: AsyncSession, timer: DueTimer) -> None:
        """The promise was broken: publish ``statuspage.update_overdue`` (once)."""
        row = await _locked(session, timer)
        if row is None or row.ticket_id is None:
            return
        await session.execute(
            update(deadline).where(deadline.c.id == row.id).values(expired_at=datetime.now(UTC))
        )
        await timers.cancel(session, kind=REMIND, key=str(row.id))
        if await _sibling_did(session, row, deadline.c.expired_at):
            return
        await publish(
            session,
            StatusUpdateOverdue(
                ticket_id=row.ticket_id,
                page_id=row.page_id,
                product=ProductRef(slug=row.product_slug, name=row.product_name),
                reporter=Person(name=row.reporter_name, email=row.reporter_email),
                reported_at=row.started_at,
                deadline_at=row.due_at,
                deadline_id=row.id,
                status_page=row.slug,
                status_page_url=pages.page_url(settings, row.slug),
            ),
            producer=pages.PRODUCER,
        )

    return {REMIND: remind, EXPIRE: expire}

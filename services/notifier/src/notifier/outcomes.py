"""What happens when an email is accepted or given up on, in the transaction recording it.

The first accepted on-call notification of a page marks it notified, publishes
``page.notified`` with its tickets and queues their reporters' acknowledgement emails;
an accepted acknowledgement publishes ``page.reporter_acknowledged``. Every outcome is
on the page's timeline, so a failing channel is visible while the ladder moves on.
"""

import uuid
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person
from contracts.notifier import Channel, PageNotified, ReporterAcknowledged
from notifier import reporters, timeline
from notifier.models import page, page_ticket
from notifier.settings import Settings
from servicekit.deliveries import Delivery, Outcome, OutcomeHandler
from servicekit.outbox import publish


async def publish_notified(
    session: AsyncSession,
    row: Row[Any],
    ticket_ids: tuple[uuid.UUID, ...],
    causation: Envelope | None = None,
) -> None:
    """Publish ``page.notified`` for `ticket_ids` of a page already notified."""
    await publish(
        session,
        PageNotified(
            page_id=row.id,
            product=timeline.product_of(row),
            level=max(row.level, 1),
            oncall=Person(name=row.oncall_name or "on-call", email=row.oncall_email),
            channels=(Channel.EMAIL,),
            ticket_ids=ticket_ids,
            notified_at=row.notified_at,
        ),
        producer=timeline.PRODUCER,
        causation=causation,
    )


def make_outcome_handler(settings: Settings) -> OutcomeHandler:
    """The email channel's outcome handler."""

    async def on_email_outcome(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        """Record an email's outcome on its page and act on the ones that matter."""
        payload = item.payload
        page_id = uuid.UUID(payload["page_id"]) if payload.get("page_id") else None
        purpose = payload.get("purpose", "")
        if page_id is None:
            return
        if outcome.state == "failed":
            await timeline.note(
                session,
                page_id,
                "delivery_failed",
                f"{purpose} email to {payload['to']} failed after {outcome.attempts} attempts: "
                f"{outcome.error}",
            )
            return
        if outcome.result and outcome.result.get("skipped"):
            await timeline.note(
                session,
                page_id,
                "not_sent",
                f"{purpose} email to {payload['to']}: {outcome.result['skipped']}",
            )
            return
        await timeline.note(
            session, page_id, "delivered", f"{purpose} email accepted for {payload['to']}"
        )
        if purpose == "page":
            await _first_notification(session, settings, page_id, payload)
        elif purpose == "reporter_ack":
            await _reporter_acknowledged(session, page_id, payload)

    return on_email_outcome


async def _first_notification(
    session: AsyncSession, settings: Settings, page_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    """The page's first accepted on-call email: notified, and the reporters are told."""
    row = (
        await session.execute(
            update(page)
            .where(page.c.id == page_id, page.c.notified_at.is_(None))
            .values(
                notified_at=timeline.now(),
                oncall_name=payload.get("person_name", "")[:200],
                oncall_email=payload["to"],
            )
            .returning(*page.c)
        )
    ).first()
    if row is None:
        return  # notified before: this was a later level, or the same level again
    await publish_notified(session, row, await timeline.ticket_ids(session, page_id))
    await reporters.acknowledge_reporters(session, settings, row)


async def _reporter_acknowledged(
    session: AsyncSession, page_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    ticket_id = uuid.UUID(payload["ticket_id"])
    at = timeline.now()
    done = (
        await session.execute(
            update(page_ticket)
            .where(
                page_ticket.c.ticket_id == ticket_id,
                page_ticket.c.reporter_acknowledged_at.is_(None),
            )
            .values(reporter_acknowledged_at=at)
            .returning(page_ticket.c.reporter_name)
        )
    ).first()
    if done is None:
        return
    await publish(
        session,
        ReporterAcknowledged(
            page_id=page_id,
            ticket_id=ticket_id,
            reporter=Person(name=done.reporter_name, email=payload["to"]),
            sent_at=at,
        ),
        producer=timeline.PRODUCER,
    )

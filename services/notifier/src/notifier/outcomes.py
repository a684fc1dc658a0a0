"""What happens when an email is accepted or given up on, in the transaction recording it.

The first accepted on-call notification of a page marks it notified, publishes
``page.notified`` with its tickets and queues their reporters' acknowledgement emails;
an accepted acknowledgement publishes ``page.reporter_acknowledged``. Every outcome is
on the page's timeline, so a failing channel is visible while the ladder moves on.
"""

import uuid
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.common import Person
from contracts.notifier import Channel, PageNotified, ReporterAcknowledged
from notifier import reporters, timeline
from notifier.models import page, page_event, page_ticket
from notifier.settings import Settings
from servicekit.deliveries import Delivery, Outcome, OutcomeHandler
from servicekit.logging import current_correlation
from servicekit.outbox import OUTBOX_VALUES, outbox_params, publish
from servicekit.tables import outbox_event


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
        delivered: dict[str, Any] = {
            "v_page_id": page_id,
            "v_kind": "delivered",
            "v_detail": f"{purpose} email accepted for {payload['to']}"[:4000],
        }
        if purpose == "page":
            await _first_notification(session, settings, payload, delivered)
        elif purpose == "reporter_ack":
            await _reporter_acknowledged(session, page_id, payload, delivered)
        else:
            await timeline.note(session, page_id, "delivered", delivered["v_detail"])

    return on_email_outcome


# Built once, with bound parameters (named unlike any column: an UPDATE takes a parameter
# named like a column as a value to SET); each writes the timeline's `delivered` step too.
_DELIVERED = (
    insert(page_event)
    .values(page_id=bindparam("v_page_id"), kind=bindparam("v_kind"), detail=bindparam("v_detail"))
    .cte("delivered")
)
_NOTIFIED = select(
    update(page)
    .where(page.c.id == bindparam("v_page_id"), page.c.notified_at.is_(None))
    .values(
        notified_at=bindparam("v_notified_at"),
        oncall_name=bindparam("v_oncall_name"),
        oncall_email=bindparam("v_oncall_email"),
    )
    .returning(*page.c)
    .cte("notified")
).add_cte(_DELIVERED)
_ACKNOWLEDGED = (
    update(page_ticket)
    .where(
        page_ticket.c.ticket_id == bindparam("v_ticket_id"),
        page_ticket.c.reporter_acknowledged_at.is_(None),
    )
    .values(reporter_acknowledged_at=bindparam("v_acknowledged_at"))
    .returning(page_ticket.c.reporter_name)
    .cte("done")
)
_REPORTER_ACKNOWLEDGED = select(_ACKNOWLEDGED).add_cte(_DELIVERED)
_REPORTER_ACKNOWLEDGED_PUBLISHED = _REPORTER_ACKNOWLEDGED.add_cte(
    insert(outbox_event)
    .from_select(
        list(OUTBOX_VALUES),
        select(
            *(
                bindparam(param.key, type_=outbox_event.c[column].type)
                for column, param in OUTBOX_VALUES.items()
            )
        ).select_from(_ACKNOWLEDGED),
    )
    .cte("event")
)
"""The same, queuing ``page.reporter_acknowledged`` if the ticket was marked now."""


async def _first_notification(
    session: AsyncSession,
    settings: Settings,
    payload: dict[str, Any],
    delivered: dict[str, Any],
) -> None:
    """The page's first accepted on-call email: notified, and the reporters are told."""
    params = {
        **delivered,
        "v_notified_at": timeline.now(),
        "v_oncall_name": payload.get("person_name", "")[:200],
        "v_oncall_email": payload["to"],
    }
    row = (await session.execute(_NOTIFIED, params)).first()
    if row is None:
        return  # notified before: this was a later level, or the same level again
    # A statement of its own: it must see the tickets that joined while the update above
    # waited for the page's lock (a joining ticket saw the page not yet notified), which
    # a query inside that statement, on its snapshot, would miss.
    loaded = await reporters.tickets_and_links(session, settings, row)
    await publish_notified(session, row, tuple(t.ticket_id for t in loaded[0]))
    await reporters.acknowledge_reporters(session, settings, row, loaded=loaded)


async def _reporter_acknowledged(
    session: AsyncSession, page_id: uuid.UUID, payload: dict[str, Any], delivered: dict[str, Any]
) -> None:
    ticket_id = uuid.UUID(payload["ticket_id"])
    at = timeline.now()
    params = {**delivered, "v_ticket_id": ticket_id, "v_acknowledged_at": at}
    if payload.get("reporter_name"):  # the event is known beforehand: one statement
        event = Envelope.wrap(
            ReporterAcknowledged(
                page_id=page_id,
                ticket_id=ticket_id,
                reporter=Person(name=payload["reporter_name"], email=payload["to"]),
                sent_at=at,
            ),
            producer=timeline.PRODUCER,
            correlation_id=current_correlation(),
        )
        await session.execute(_REPORTER_ACKNOWLEDGED_PUBLISHED, {**params, **outbox_params(event)})
        return
    done = (await session.execute(_REPORTER_ACKNOWLEDGED, params)).first()
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

"""Opening or joining a page: the statements of a trigger, built once with bound
parameters (building them per call, with their subqueries' column proxies, cost more
CPU than running them).

Guarantee: one open page per dedup key, enforced by the partial unique index
``uq_page_dedup_key_open``: a trigger is an ``INSERT ... ON CONFLICT`` on it, never a
read then a write, so concurrent triggers for one outage make one page. The escalation
policy is copied onto the page by the statement that opens it. Nothing here commits.
"""

import uuid
from typing import Any

from sqlalchemy import Row, Text, bindparam, cast, func, literal_column, select, text, true
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.common import ProductRef
from contracts.intake import TicketFiled
from contracts.notifier import PageSource, Urgency
from notifier.models import escalation_policy, page, page_ticket

_NO_POLICY: dict[str, Any] = {"id": None, "name": None, "repeat": 0, "levels": []}

_SLUG = bindparam("product_slug", type_=page.c.product_slug.type)
_TICKET = bindparam("ticket_id", type_=page_ticket.c.ticket_id.type)

_POLICY = func.coalesce(
    select(
        func.jsonb_build_object(
            "id",
            cast(escalation_policy.c.id, Text),
            "name",
            escalation_policy.c.name,
            "repeat",
            escalation_policy.c.repeat,
            "levels",
            escalation_policy.c.levels,
        )
    )
    .where((escalation_policy.c.product_slug == _SLUG) | escalation_policy.c.is_default)
    .order_by(escalation_policy.c.is_default)
    .limit(1)
    .scalar_subquery(),
    cast(_NO_POLICY, JSONB),
)
"""The product's escalation policy, else the default one, as a page keeps it."""

_OPEN = insert(page).values(
    id=bindparam("id"),
    dedup_key=bindparam("dedup_key"),
    product_slug=_SLUG,
    product_name=bindparam("product_name"),
    source=bindparam("source"),
    summary=bindparam("summary"),
    urgency=bindparam("urgency"),
    policy=_POLICY,
)
_TRIGGER = _OPEN.on_conflict_do_update(
    index_elements=[page.c.dedup_key],
    # Written out, not bound: Postgres must see that it implies the index's predicate,
    # which it cannot prove of a parameter once a generic plan is used.
    index_where=text("state <> 'resolved'"),
    set_={"dedup_key": _OPEN.excluded.dedup_key},
).returning(*page.c, literal_column("(xmax = 0)").label("opened"))


async def trigger(
    session: AsyncSession,
    *,
    dedup_key: str,
    product: ProductRef,
    source: PageSource,
    summary: str,
    urgency: Urgency,
) -> tuple[Row[Any], bool]:
    """Open a page for `dedup_key`, or join the open one; returns it (locked for this
    transaction) and whether it was opened now. The escalation policy is copied by the
    same statement."""
    params = _page_params(dedup_key, product, source, summary, urgency)
    row = (await session.execute(_TRIGGER, params)).one()
    return row, bool(row.opened)


def _page_params(
    dedup_key: str, product: ProductRef, source: PageSource, summary: str, urgency: Urgency
) -> dict[str, Any]:
    """The parameters of `_TRIGGER` for a page that may be opened now."""
    return {
        "id": uuid.uuid4(),
        "dedup_key": dedup_key,
        "product_slug": product.slug,
        "product_name": product.name,
        "source": source.value,
        "summary": summary[:2000],
        "urgency": urgency.value,
    }


_TRIGGERED = _TRIGGER.cte("triggered")
_GROUP_TICKET = (
    insert(page_ticket)
    .from_select(
        [
            "ticket_id",
            "page_id",
            "number",
            "reporter_name",
            "reporter_email",
            "subject",
            "filed_at",
        ],
        select(
            _TICKET,
            _TRIGGERED.c.id,
            bindparam("number", type_=page_ticket.c.number.type),
            bindparam("reporter_name", type_=page_ticket.c.reporter_name.type),
            bindparam("reporter_email", type_=page_ticket.c.reporter_email.type),
            bindparam("subject", type_=page_ticket.c.subject.type),
            bindparam("filed_at", type_=page_ticket.c.filed_at.type),
        ),
    )
    .on_conflict_do_nothing()
    .returning(page_ticket.c.ticket_id)
    .cte("grouped")
)
_TRIGGER_WITH_TICKET = select(
    _TRIGGERED, select(_GROUP_TICKET.c.ticket_id).exists().label("added")
).add_cte(_GROUP_TICKET)


async def trigger_for_ticket(
    session: AsyncSession,
    *,
    dedup_key: str,
    product: ProductRef,
    source: PageSource,
    summary: str,
    urgency: Urgency,
    ticket: TicketFiled,
) -> tuple[Row[Any], bool, bool]:
    """`trigger`, grouping `ticket` into the page by the same statement; returns the page,
    whether it was opened now and whether the ticket was added (False: it already is in
    a page)."""
    params = {
        **_page_params(dedup_key, product, source, summary, urgency),
        "ticket_id": ticket.ticket_id,
        "number": ticket.number,
        "reporter_name": ticket.reporter.name,
        "reporter_email": ticket.reporter.email,
        "subject": ticket.subject[:300],
        "filed_at": ticket.filed_at,
    }
    row = (await session.execute(_TRIGGER_WITH_TICKET, params)).one()
    return row, bool(row.opened), bool(row.added)


_GROUPED = select(page_ticket.c.page_id).where(page_ticket.c.ticket_id == _TICKET)
_MONITOR_PAGE = (
    select(page)
    .where(
        page.c.product_slug == _SLUG,
        page.c.state != "resolved",
        page.c.source == PageSource.MONITOR.value,
        ~_GROUPED.exists(),
    )
    .order_by(page.c.opened_at)
    .limit(1)
    .with_for_update()
    .subquery("monitor_page")
    .lateral()
)
_GROUPED_OR_MONITOR_PAGE = select(
    _GROUPED.scalar_subquery().label("grouped_page_id"), *_MONITOR_PAGE.c
).select_from(
    select(literal_column("1").label("one")).subquery("one").outerjoin(_MONITOR_PAGE, true())
)


async def grouped_or_monitor_page(
    session: AsyncSession, ticket_id: uuid.UUID, product_slug: str
) -> tuple[uuid.UUID | None, Row[Any] | None]:
    """In one query: the page a ticket is already grouped into, if any; else the oldest
    open page a monitor opened for its product (locked), if any: a CRITICAL ticket about
    the same outage joins it rather than paging again."""
    params = {"ticket_id": ticket_id, "product_slug": product_slug}
    row = (await session.execute(_GROUPED_OR_MONITOR_PAGE, params)).one()
    return row.grouped_page_id, (row if row.id is not None else None)

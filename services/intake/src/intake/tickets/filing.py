"""Filing a ticket: the hot path of the support portal.

In the caller's transaction (the route commits): look up the product, its
health and the next ticket number; claim the Idempotency-Key with the response
to replay (or replay the first filing with that key); insert the ticket, its
first timeline entry, the ``ticket.filed`` outbox row and the attachments. A
committed ticket therefore always has its event delivered, and a refused one
leaves nothing behind; a replay leaves its ticket number unused, as a rolled
back filing does.

Filing runs on the driver (`servicekit.driver`), on a connection and in a transaction the
route takes from the engine: on SQLAlchemy's execution path it kept 0.22-0.26 of
``bench/intake.py``'s floor, against a target of 0.3 (docs/benchmarks.md). The ticket,
its timeline entry and its outbox row go in one statement (`_FILE`).
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import bindparam, func, insert, select

from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef
from contracts.intake import TicketFiled
from intake import product_health
from intake.errors import Unprocessable
from intake.models import attachment, product, ticket, ticket_event, ticket_number_seq
from intake.schemas import ProductBrief, TicketCreate, TicketRead, TimelineEntry
from intake.settings import Settings
from intake.tickets import idempotency
from intake.tickets.files import (
    Upload,
    attachment_read,
    attachment_rows,
    check_room,
    check_uploads,
    file_digests,
)
from intake.tickets.queries import ticket_url
from intake.tickets.wording import next_steps
from servicekit.driver import Statement
from servicekit.outbox import OUTBOX_VALUES, outbox_params
from servicekit.tables import outbox_event

PRODUCER = "intake"

# Built and compiled once (`servicekit.driver.Statement`): each filing runs them with its
# own parameters.
_TICKET_COLUMNS = [
    ticket.c[name]
    for name in (
        "id",
        "number",
        "organization",
        "reporter_name",
        "reporter_email",
        "product_slug",
        "severity",
        "subject",
        "description",
        "urls",
        "error_text",
        "monitoring_state",
        "api_key_id",
        "created_at",
        "updated_at",
    )
]
_LOOKUP = Statement(
    select(
        product.c.name,
        product_health.state_of(product.c.slug).label("state"),
        func.nextval(ticket_number_seq.name).label("seq"),
        func.now().label("now"),
    ).where(product.c.slug == bindparam("slug"), product.c.active)
)
"""The product's name and health, the next ticket number, and the filing time."""
_FILE = Statement(
    insert(ticket)
    .values({column.name: bindparam(f"p_{column.name}") for column in _TICKET_COLUMNS})
    .add_cte(
        insert(ticket_event)
        .values(
            ticket_id=bindparam("p_id"),
            kind="filed",
            status="new",
            detail=bindparam("p_detail"),
            at=bindparam("p_created_at"),
        )
        .cte("first_entry"),
        insert(outbox_event).values(OUTBOX_VALUES).cte("filed_event"),
    )
)
"""The ticket, its first timeline entry and its ``ticket.filed`` outbox row (through the
outbox's own bound values, `OUTBOX_VALUES`), in one statement."""
_INSERT_ATTACHMENT = Statement(
    insert(attachment).values(
        {column.name: bindparam(column.name) for column in attachment.c if column.identity is None}
    )
)
"""An attachment row, as `attachment_rows` makes it (every column but the identity)."""


@dataclass(frozen=True)
class Filed:
    """The response to a POST: fresh, or replayed for a repeated Idempotency-Key."""

    status_code: int
    content: bytes
    """The JSON body. A fresh one is serialized once, and the same JSON is stored for replays
    (as JSONB: a replay has the same content, its keys possibly in another order)."""
    replayed: bool
    location: str | None = None


def replayed(earlier: idempotency.Earlier, *, location: str | None) -> Filed:
    """The first use's response, replayed."""
    status, response = earlier
    content = json.dumps(response, ensure_ascii=False, separators=(",", ":")).encode()
    return Filed(status, content, replayed=True, location=location)


def _replayed_filing(earlier: idempotency.Earlier) -> Filed:
    return replayed(earlier, location=ticket_url(earlier[1]["id"]))


def request_hash(data: TicketCreate, uploads: Sequence[Upload]) -> str:
    """A fingerprint of a filing request, independent of JSON spacing or multipart boundaries."""
    return idempotency.fingerprint(
        {"ticket": data.model_dump(mode="json"), "attachments": file_digests(uploads)}
    )


async def file_ticket(
    *,
    conn: asyncpg.Connection,
    data: TicketCreate,
    uploads: Sequence[Upload] = (),
    api_key_id: uuid.UUID,
    idempotency_key: str | None,
    settings: Settings,
) -> Filed:
    """File a ticket (or replay the first filing with the same Idempotency-Key)."""
    check_room(existing=0, adding=len(uploads), settings=settings)
    checked = check_uploads(uploads, settings=settings)
    fingerprint = request_hash(data, uploads) if idempotency_key is not None else ""
    found = await conn.fetchrow(_LOOKUP.sql, *_LOOKUP.args({"slug": data.product}))
    if found is None:
        if idempotency_key is not None:
            earlier = await idempotency.first_use(
                conn, api_key_id=api_key_id, key=idempotency_key, request_hash=fingerprint
            )
            if earlier is not None:  # filed before its product was retired
                return _replayed_filing(earlier)
        raise Unprocessable("product", f"unknown product {data.product!r}; see GET /v1/products")
    ticket_id = uuid.uuid4()
    row = _ticket_row(data, ticket_id, f"KLX-{found['seq']}", found, api_key_id)
    attachments = attachment_rows(ticket_id, checked, found["now"])
    detail = f"Filed as {data.severity.value}; monitoring saw {data.product} {found['state']}."
    read = _ticket_read(data, row, found["name"], attachments, detail, settings)
    content = read.model_dump_json()
    if idempotency_key is not None:
        earlier = await idempotency.claim(
            conn,
            api_key_id=api_key_id,
            key=idempotency_key,
            request_hash=fingerprint,
            status_code=201,
            response=content,
        )
        if earlier is not None:
            return _replayed_filing(earlier)
    envelope = _filed_event(data, row, found["name"], attachments)
    params = {
        **{f"p_{name}": value for name, value in row.items()},
        "p_detail": detail,
        **outbox_params(envelope),
    }
    await conn.execute(_FILE.sql, *_FILE.args(params))
    if attachments:
        await conn.executemany(
            _INSERT_ATTACHMENT.sql, [_INSERT_ATTACHMENT.args(a) for a in attachments]
        )
    return Filed(201, content.encode(), replayed=False, location=ticket_url(ticket_id))


def _ticket_row(
    data: TicketCreate,
    ticket_id: uuid.UUID,
    number: str,
    found: asyncpg.Record,
    api_key_id: uuid.UUID,
) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "number": number,
        "organization": data.organization,
        "reporter_name": data.reporter.name,
        "reporter_email": data.reporter.email,
        "product_slug": data.product,
        "severity": data.severity.value,
        "subject": data.subject,
        "description": data.description,
        "urls": data.urls,
        "error_text": data.error_text,
        "monitoring_state": HealthState(found["state"]).value,
        "api_key_id": api_key_id,
        "created_at": found["now"],
        "updated_at": found["now"],
    }


def _filed_event(
    data: TicketCreate, row: dict[str, Any], product_name: str, attachments: list[dict[str, Any]]
) -> Envelope:
    return Envelope.wrap(
        TicketFiled(
            ticket_id=row["id"],
            number=row["number"],
            organization=data.organization,
            reporter=Person(name=data.reporter.name, email=data.reporter.email),
            product=ProductRef(slug=data.product, name=product_name),
            severity=data.severity,
            subject=data.subject,
            description=data.description,
            urls=tuple(data.urls),
            error_text=data.error_text,
            attachment_ids=tuple(a["id"] for a in attachments),
            monitoring_state=HealthState(row["monitoring_state"]),
            filed_at=row["created_at"],
        ),
        producer=PRODUCER,
    )


def _ticket_read(
    data: TicketCreate,
    row: dict[str, Any],
    product_name: str,
    attachments: list[dict[str, Any]],
    detail: str,
    settings: Settings,
) -> TicketRead:
    filed_at = row["created_at"]
    return TicketRead(
        id=row["id"],
        number=row["number"],
        organization=data.organization,
        reporter=data.reporter,
        product=ProductBrief(slug=data.product, name=product_name),
        severity=data.severity,
        subject=data.subject,
        status="new",
        monitoring_state=HealthState(row["monitoring_state"]),
        created_at=filed_at,
        updated_at=filed_at,
        description=data.description,
        urls=data.urls,
        error_text=data.error_text,
        attachments=[attachment_read(a) for a in attachments],
        timeline=[TimelineEntry(at=filed_at, kind="filed", status="new", detail=detail)],
        next_steps=next_steps(data.severity, product_name, settings.status_page_update_promise_min),
    )

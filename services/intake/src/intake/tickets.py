"""Ticket use cases. Each takes a session and never commits: the caller owns the
transaction. Filing, the hot path, is the exception: it runs on a driver connection
(see `servicekit.sql`) and owns its transaction.

Filing a ticket inserts it, its first timeline entry, its idempotency record and
the ``ticket.filed`` outbox row in one statement, and its attachments in the same
transaction, so a committed ticket always has its event delivered and a refused
one leaves nothing behind.
"""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from contracts import Envelope
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled, TicketStatusChanged
from intake import health
from intake.content import accepted_type
from intake.errors import (
    AttachmentTooLarge,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    TicketNotFound,
    Unprocessable,
)
from intake.models import (
    attachment,
    idempotency_key,
    product,
    ticket,
    ticket_event,
    ticket_number_seq,
)
from intake.schemas import (
    STATUS_ORDER,
    AttachmentRead,
    ProductBrief,
    Reporter,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketSummary,
    TimelineEntry,
)
from intake.settings import Settings
from servicekit.outbox import OUTBOX_VALUES, outbox_params, publish
from servicekit.sql import Query, transaction
from servicekit.tables import outbox_event

PRODUCER = "intake"


@dataclass(frozen=True)
class Upload:
    """One uploaded file, read in full (its size was capped while reading)."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Filed:
    """The response to a POST: fresh, or replayed for a repeated Idempotency-Key."""

    status_code: int
    content: bytes
    """The JSON body. A fresh one is serialized once, and the same JSON is stored for replays
    (as JSONB: a replay has the same content, its keys possibly in another order)."""
    replayed: bool
    location: str | None = None


def next_steps(severity: str, product_name: str, promise_min: int, status: str = "new") -> str:
    """What happens next, in words for the reporter, for a ticket in `status`."""
    if status == "closed":
        return "This ticket is closed. If the problem comes back, file a new ticket."
    if status == "resolved":
        return (
            f"The outage of {product_name} has been marked resolved. If it is still down for "
            "you, file a new CRITICAL ticket so the on-call engineer is paged again."
        )
    if severity != Severity.CRITICAL:
        return (
            f"Your {severity} ticket for {product_name} is in the support queue and will be "
            "answered by email. If the service is down for you, file it as CRITICAL so the "
            "on-call engineer is paged."
        )
    escalation = (
        f"If the status page shows no update within {promise_min} minutes of this report, "
        "call that number; we also escalate automatically."
    )
    if status == "acknowledged":
        return (
            f"The on-call engineer for {product_name} is working on it. Updates go to the "
            "status page linked in your confirmation email, which also has an after-hours "
            f"phone number. {escalation}"
        )
    if status == "oncall_notified":
        return (
            f"The on-call engineer for {product_name} has been paged. You will get (or have "
            "had) an email confirming it, with the status-page links and an after-hours "
            f"phone number. {escalation}"
        )
    return (
        f"This CRITICAL ticket is paging the on-call engineer for {product_name} now. "
        "As soon as they have been notified you will get an email confirming it, with "
        f"the status-page links for {product_name} and an after-hours phone number. {escalation}"
    )


def _parse_ref(ref: str) -> tuple[str, Any]:
    """A ticket reference as ("number", "KLX-1042") or ("id", UUID)."""
    upper = ref.strip().upper()
    if upper.startswith("KLX-") and upper[4:].isdigit() and len(upper) <= 20:
        return "number", upper
    try:
        return "id", uuid.UUID(ref)
    except ValueError:
        raise Unprocessable("ticket", "must be a ticket UUID or a number like KLX-1042") from None


def _ticket_ref(ref: str) -> Any:
    """A WHERE clause for a ticket id (UUID) or number (KLX-1042)."""
    column, value = _parse_ref(ref)
    return ticket.c[column] == value


def _check_uploads(
    uploads: Sequence[Upload], *, existing: int, settings: Settings
) -> list[tuple[Upload, str]]:
    if existing + len(uploads) > settings.attachments_per_ticket:
        raise AttachmentTooLarge(
            f"a ticket holds at most {settings.attachments_per_ticket} attachments",
            limit=settings.attachments_per_ticket,
        )
    checked = []
    for upload in uploads:
        if len(upload.data) > settings.attachment_max_bytes:
            raise AttachmentTooLarge(
                f"attachment {upload.filename!r} is over {settings.attachment_max_bytes} bytes",
                limit_bytes=settings.attachment_max_bytes,
            )
        checked.append((upload, accepted_type(upload.data, upload.filename)))
    return checked


def _file_digests(uploads: Sequence[Upload]) -> list[list[str]]:
    return [[u.filename, hashlib.sha256(u.data).hexdigest()] for u in uploads]


def _fingerprint(canonical: Any) -> str:
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def request_hash(data: TicketCreate, uploads: Sequence[Upload]) -> str:
    """A fingerprint of a filing request, independent of JSON spacing or multipart boundaries."""
    return _fingerprint(
        {"ticket": data.model_dump(mode="json"), "attachments": _file_digests(uploads)}
    )


# The hot path's statements are compiled once and run on the driver (servicekit.sql):
# filing is the one path every request of the portal takes.

_CLAIM = Query.of(
    pg_insert(idempotency_key)
    .values(
        api_key_id=bindparam("p_api_key_id"),
        key=bindparam("p_key"),
        request_hash=bindparam("p_request_hash"),
    )
    .on_conflict_do_nothing()
    .returning(idempotency_key.c.key)
)

_EARLIER = Query.of(
    select(
        idempotency_key.c.request_hash, idempotency_key.c.status_code, idempotency_key.c.response
    ).where(
        idempotency_key.c.api_key_id == bindparam("p_api_key_id"),
        idempotency_key.c.key == bindparam("p_key"),
    )
)

_LOOKUP = Query.of(
    select(
        product.c.name,
        health.state_of(product.c.slug).label("state"),
        func.nextval(ticket_number_seq.name).label("seq"),
        func.now().label("now"),
    ).where(product.c.slug == bindparam("p_slug"), product.c.active)
)
"""Product, its health, and the next ticket number."""


def _if_claimed(table: Table, **values: Any) -> Insert:
    """INSERT INTO `table` one row of `values` (bind parameters and constants), provided
    the filing's Idempotency-Key was claimed by the `claim` CTE below, or none was sent."""
    row = select(*(type_coerce(value, table.c[name].type) for name, value in values.items()))
    return insert(table).from_select(list(values), row.where(_CLAIMED))


_KEY = bindparam("p_idempotency_key", type_=idempotency_key.c.key.type)

_CLAIM_AND_REMEMBER = (
    pg_insert(idempotency_key)
    .from_select(
        ["api_key_id", "key", "request_hash", "status_code", "response"],
        select(
            type_coerce(bindparam("p_api_key_id"), idempotency_key.c.api_key_id.type),
            _KEY,
            type_coerce(bindparam("p_request_hash"), idempotency_key.c.request_hash.type),
            literal(201, idempotency_key.c.status_code.type),
            type_coerce(bindparam("p_response"), idempotency_key.c.response.type),
        ).where(_KEY.is_not(None)),
    )
    .on_conflict_do_nothing()
    .returning(idempotency_key.c.key)
    .cte("claim")
)
_CLAIMED = or_(_KEY.is_(None), exists(select(_CLAIM_AND_REMEMBER.c.key)))

_FILE = Query.of(
    _if_claimed(outbox_event, **OUTBOX_VALUES)
    .returning(outbox_event.c.event_id)
    .add_cte(
        _CLAIM_AND_REMEMBER,
        _if_claimed(
            ticket,
            id=bindparam("p_ticket_id"),
            number=bindparam("p_number"),
            organization=bindparam("p_organization"),
            reporter_name=bindparam("p_reporter_name"),
            reporter_email=bindparam("p_reporter_email"),
            product_slug=bindparam("p_product_slug"),
            severity=bindparam("p_severity"),
            subject=bindparam("p_subject"),
            description=bindparam("p_description"),
            urls=bindparam("p_urls"),
            error_text=bindparam("p_error_text"),
            monitoring_state=bindparam("p_monitoring_state"),
            api_key_id=bindparam("p_api_key_id"),
            created_at=bindparam("p_filed_at"),
            updated_at=bindparam("p_filed_at"),
        ).cte("new_ticket"),
        _if_claimed(
            ticket_event,
            ticket_id=bindparam("p_ticket_id"),
            kind=literal("filed"),
            status=literal("new"),
            detail=bindparam("p_detail"),
            at=bindparam("p_filed_at"),
        ).cte("first_entry"),
    )
)
"""A filing in one statement: it claims the Idempotency-Key with the response to replay
and, only if it got the key (or none was sent), inserts the ticket, its first timeline
entry and the outbox event. It returns the event's id, or no row when an earlier request
holds the key. A concurrent request with the same key waits on the key's primary key
until this one's transaction ends, then finds the key taken (or free, if it rolled back)."""


_ATTACH = Query.of(
    insert(attachment).values(
        {
            name: bindparam(name)
            for name in (
                "id",
                "ticket_id",
                "filename",
                "content_type",
                "size_bytes",
                "sha256",
                "content",
                "created_at",
            )
        }
    )
)


def _json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, as pydantic writes a fresh response."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def _claim_idempotency_key(
    conn: asyncpg.Connection, *, api_key_id: uuid.UUID, key: str, fingerprint: str
) -> tuple[int, Any] | None:
    """Claim `key` for this request, or return the status and response of its first use.

    A concurrent request with the same key waits on the primary key until the
    first transaction ends, then sees its committed row and replays it.
    """
    params = {"p_api_key_id": api_key_id, "p_key": key, "p_request_hash": fingerprint}
    if await conn.fetchrow(_CLAIM.sql, *_CLAIM.args(params)) is not None:
        return None
    earlier = await _first_use(conn, api_key_id=api_key_id, key=key, fingerprint=fingerprint)
    if earlier is None:
        raise _in_flight(key)
    return earlier


async def _first_use(
    conn: asyncpg.Connection, *, api_key_id: uuid.UUID, key: str, fingerprint: str
) -> tuple[int, Any] | None:
    """The status and response of the committed request that took `key`, or None if no
    request holds it (its first use just rolled back, or the key was forgotten); 422 if it
    was another request."""
    params = {"p_api_key_id": api_key_id, "p_key": key}
    row = await conn.fetchrow(_EARLIER.sql, *_EARLIER.args(params))
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise IdempotencyKeyReused(key)
    if row["status_code"] is None:  # defensive: a claim commits together with its response
        raise _in_flight(key)
    return row["status_code"], row["response"]


def _in_flight(key: str) -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(f"the request with Idempotency-Key {key!r} is in progress")


def _replayed(earlier: tuple[int, Any]) -> Filed:
    status, response = earlier
    return Filed(status, _json(response), replayed=True, location=_ticket_url(response["id"]))


async def file_ticket(
    *,
    conn: asyncpg.Connection,
    data: TicketCreate,
    uploads: Sequence[Upload] = (),
    api_key_id: uuid.UUID,
    idempotency: str | None,
    settings: Settings,
) -> Filed:
    """File a ticket (or replay the first filing with the same Idempotency-Key).

    Runs on a driver connection (see `servicekit.sql`): one SELECT for the
    product, its health and the ticket number; then, in a transaction, one
    statement (`_FILE`) that claims the Idempotency-Key with the response and
    inserts the ticket, its timeline entry and the outbox event (whose trigger
    wakes the relay on commit), and the attachments, if any. The transaction is
    explicit, though `_FILE` alone would be atomic: a connection lost before
    COMMIT then leaves nothing written, so the 503 that follows is true, while
    a lost autocommit statement may have committed. One lost during COMMIT
    answers that the ticket may have been saved (`SaveUncertain`): a retry with
    the same key finds out. A replay reads the first response once `_FILE` finds
    the key taken; the number it drew is left unused, as a rolled-back filing
    leaves its number.
    """
    checked = _check_uploads(uploads, existing=0, settings=settings)
    fingerprint = request_hash(data, uploads) if idempotency is not None else ""
    found = await conn.fetchrow(_LOOKUP.sql, *_LOOKUP.args({"p_slug": data.product}))
    if found is None:
        if idempotency is not None:
            earlier = await _first_use(
                conn, api_key_id=api_key_id, key=idempotency, fingerprint=fingerprint
            )
            if earlier is not None:  # filed before its product was withdrawn
                return _replayed(earlier)
        raise Unprocessable("product", f"unknown product {data.product!r}; see GET /v1/products")
    product_name: str = found["name"]
    monitoring_state = HealthState(found["state"])
    filed_at: datetime = found["now"]
    ticket_id = uuid.uuid4()
    number = f"KLX-{found['seq']}"
    attachments = _attachment_rows(ticket_id, checked, filed_at)
    detail = f"Filed as {data.severity.value}; monitoring saw {data.product} {monitoring_state}."

    envelope = Envelope.wrap(
        TicketFiled(
            ticket_id=ticket_id,
            number=number,
            organization=data.organization,
            reporter=Person(name=data.reporter.name, email=data.reporter.email),
            product=ProductRef(slug=data.product, name=product_name),
            severity=data.severity,
            subject=data.subject,
            description=data.description,
            urls=tuple(data.urls),
            error_text=data.error_text,
            attachment_ids=tuple(a["id"] for a in attachments),
            monitoring_state=monitoring_state,
            filed_at=filed_at,
        ),
        producer=PRODUCER,
    )
    read = TicketRead(
        id=ticket_id,
        number=number,
        organization=data.organization,
        reporter=data.reporter,
        product=ProductBrief(slug=data.product, name=product_name),
        severity=data.severity,
        subject=data.subject,
        status="new",
        monitoring_state=monitoring_state,
        created_at=filed_at,
        updated_at=filed_at,
        description=data.description,
        urls=data.urls,
        error_text=data.error_text,
        attachments=[_attachment_read(row) for row in attachments],
        timeline=[TimelineEntry(at=filed_at, kind="filed", status="new", detail=detail)],
        next_steps=next_steps(data.severity, product_name, settings.status_page_update_promise_min),
    )
    content = read.model_dump_json()

    params = {
        "p_ticket_id": ticket_id,
        "p_number": number,
        "p_organization": data.organization,
        "p_reporter_name": data.reporter.name,
        "p_reporter_email": data.reporter.email,
        "p_product_slug": data.product,
        "p_severity": data.severity.value,
        "p_subject": data.subject,
        "p_description": data.description,
        "p_urls": data.urls,
        "p_error_text": data.error_text,
        "p_monitoring_state": monitoring_state.value,
        "p_api_key_id": api_key_id,
        "p_filed_at": filed_at,
        "p_detail": detail,
        "p_idempotency_key": idempotency,
        "p_request_hash": fingerprint,
        "p_response": content,
        **outbox_params(envelope),
    }
    async with transaction(conn):
        # A second try only if the key was taken and then gone (forgotten in between).
        for attempt in (1, 2):
            if await conn.fetchval(_FILE.sql, *_FILE.args(params)) is not None:
                break
            assert idempotency is not None  # only a key, taken before, stops the statement
            earlier = await _first_use(
                conn, api_key_id=api_key_id, key=idempotency, fingerprint=fingerprint
            )
            if earlier is not None:
                return _replayed(earlier)
            if attempt == 2:
                raise _in_flight(idempotency)
        if attachments:
            await conn.executemany(_ATTACH.sql, [_ATTACH.args(row) for row in attachments])
    return Filed(201, content.encode(), replayed=False, location=_ticket_url(ticket_id))


async def prune_idempotency_keys(session: AsyncSession, limit: int, *, older_than_s: float) -> int:
    """Forget up to `limit` Idempotency-Keys older than `older_than_s`; returns how many.
    A request with a forgotten key again is a new request."""
    key = tuple_(idempotency_key.c.api_key_id, idempotency_key.c.key)
    old = select(*key.clauses).where(
        idempotency_key.c.created_at < func.now() - timedelta(seconds=older_than_s)
    )
    result = await session.execute(delete(idempotency_key).where(key.in_(old.limit(limit))))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _ticket_url(ticket_id: uuid.UUID | str) -> str:
    return f"/v1/tickets/{ticket_id}"


def _attachment_url(ticket_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
    return f"/v1/tickets/{ticket_id}/attachments/{attachment_id}"


def _attachment_rows(
    ticket_id: uuid.UUID, checked: Sequence[tuple[Upload, str]], at: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "ticket_id": ticket_id,
            "filename": upload.filename,
            "content_type": media_type,
            "size_bytes": len(upload.data),
            "sha256": hashlib.sha256(upload.data).hexdigest(),
            "content": upload.data,
            "created_at": at,
        }
        for upload, media_type in checked
    ]


def _attachment_read(row: dict[str, Any]) -> AttachmentRead:
    return AttachmentRead(
        id=row["id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        url=_attachment_url(row["ticket_id"], row["id"]),
        created_at=row["created_at"],
    )


_SUMMARY_COLUMNS = (
    ticket.c.id,
    ticket.c.number,
    ticket.c.organization,
    ticket.c.reporter_name,
    ticket.c.reporter_email,
    ticket.c.product_slug,
    product.c.name.label("product_name"),
    ticket.c.severity,
    ticket.c.subject,
    ticket.c.status,
    ticket.c.monitoring_state,
    ticket.c.created_at,
    ticket.c.updated_at,
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "organization": row.organization,
        "reporter": Reporter.model_construct(name=row.reporter_name, email=row.reporter_email),
        "product": ProductBrief(slug=row.product_slug, name=row.product_name),
        "severity": row.severity,
        "subject": row.subject,
        "status": row.status,
        "monitoring_state": row.monitoring_state,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def get_ticket(
    *, session: AsyncSession, ref: str, settings: Settings, for_update: bool = False
) -> TicketRead:
    """The ticket with that id or number, with its attachments and timeline."""
    query = (
        select(*_SUMMARY_COLUMNS, ticket.c.description, ticket.c.urls, ticket.c.error_text)
        .join(product, product.c.slug == ticket.c.product_slug)
        .where(_ticket_ref(ref))
    )
    if for_update:
        query = query.with_for_update(of=ticket)
    row = (await session.execute(query)).first()
    if row is None:
        raise TicketNotFound(f"no ticket {ref!r}")
    files = (
        await session.execute(
            select(
                attachment.c.id,
                attachment.c.filename,
                attachment.c.content_type,
                attachment.c.size_bytes,
                attachment.c.sha256,
                attachment.c.created_at,
            )
            .where(attachment.c.ticket_id == row.id)
            .order_by(attachment.c.seq)
        )
    ).all()
    events = (
        await session.execute(
            select(
                ticket_event.c.at, ticket_event.c.kind, ticket_event.c.status, ticket_event.c.detail
            )
            .where(ticket_event.c.ticket_id == row.id)
            .order_by(ticket_event.c.id)
        )
    ).all()
    return TicketRead(
        **_summary(row),
        description=row.description,
        urls=list(row.urls),
        error_text=row.error_text,
        attachments=[
            AttachmentRead(**f._mapping, url=_attachment_url(row.id, f.id)) for f in files
        ],
        timeline=[TimelineEntry(**e._mapping) for e in events],
        next_steps=next_steps(
            row.severity, row.product_name, settings.status_page_update_promise_min, row.status
        ),
    )


def _encode_cursor(created_at: datetime, ticket_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(ticket_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, ticket_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(ticket_id, str):
            raise TypeError("not two strings")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), uuid.UUID(ticket_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor", "is not a cursor this API returned") from None


@dataclass(frozen=True)
class TicketFilter:
    """Filters of the ticket list."""

    status: str | None = None
    severity: str | None = None
    product: str | None = None
    organization: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


async def list_tickets(
    *, session: AsyncSession, filters: TicketFilter, cursor: str | None, limit: int
) -> TicketPage:
    """Tickets newest first, filtered, one page at a time (keyset on created_at, id)."""
    conditions = []
    if filters.status:
        conditions.append(ticket.c.status == filters.status)
    if filters.severity:
        conditions.append(ticket.c.severity == filters.severity)
    if filters.product:
        conditions.append(ticket.c.product_slug == filters.product)
    if filters.organization:
        conditions.append(ticket.c.organization == filters.organization)
    if filters.created_from:
        conditions.append(ticket.c.created_at >= filters.created_from)
    if filters.created_to:
        conditions.append(ticket.c.created_at < filters.created_to)
    if cursor:
        at, last_id = _decode_cursor(cursor)
        conditions.append(
            or_(ticket.c.created_at < at, and_(ticket.c.created_at == at, ticket.c.id < last_id))
        )
    rows = (
        await session.execute(
            select(*_SUMMARY_COLUMNS)
            .join(product, product.c.slug == ticket.c.product_slug)
            .where(*conditions)
            .order_by(ticket.c.created_at.desc(), ticket.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    items = [TicketSummary(**_summary(row)) for row in rows[:limit]]
    next_cursor = (
        _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id)
        if len(rows) > limit
        else None
    )
    return TicketPage(items=items, next_cursor=next_cursor)


async def add_attachments(
    *,
    conn: asyncpg.Connection,
    ref: str,
    uploads: Sequence[Upload],
    api_key_id: uuid.UUID,
    idempotency: str | None,
    settings: Settings,
) -> Filed:
    """Attach files to an existing ticket, within the per-ticket limit (or replay the first
    request with the same Idempotency-Key). Runs inside the caller's transaction."""
    if not uploads:
        raise Unprocessable("file", "send at least one file part")
    column, value = _parse_ref(ref)
    if idempotency is not None:
        earlier = await _claim_idempotency_key(
            conn,
            api_key_id=api_key_id,
            key=idempotency,
            fingerprint=_fingerprint(
                {"attach_to": [column, str(value)], "attachments": _file_digests(uploads)}
            ),
        )
        if earlier is not None:
            status, response = earlier
            return Filed(status, _json(response), replayed=True)
    lock = _LOCK_BY_NUMBER if column == "number" else _LOCK_BY_ID
    ticket_id = await conn.fetchval(lock.sql, *lock.args({"p_ref": value}))
    if ticket_id is None:
        raise TicketNotFound(f"no ticket {ref!r}")
    existing = await conn.fetchval(_COUNT_ATTACHED.sql, *_COUNT_ATTACHED.args({"id": ticket_id}))
    checked = _check_uploads(uploads, existing=existing, settings=settings)
    rows = _attachment_rows(ticket_id, checked, datetime.now(UTC))
    await conn.executemany(_ATTACH.sql, [_ATTACH.args(row) for row in rows])
    added = [_attachment_read(r) for r in rows]
    content = _ATTACHMENTS.dump_json(added)
    params = {
        "p_ticket_id": ticket_id,
        "p_detail": f"Attached {', '.join(a.filename for a in added)}.",
        "p_api_key_id": api_key_id,
        "p_idempotency_key": idempotency,
        "p_response": content.decode(),
    }
    await conn.execute(_ATTACHED.sql, *_ATTACHED.args(params))
    return Filed(201, content, replayed=False)


_ATTACHMENTS = TypeAdapter(list[AttachmentRead])

_LOCK_BY_NUMBER = Query.of(
    select(ticket.c.id).where(ticket.c.number == bindparam("p_ref")).with_for_update()
)
_LOCK_BY_ID = Query.of(
    select(ticket.c.id).where(ticket.c.id == bindparam("p_ref")).with_for_update()
)
_COUNT_ATTACHED = Query.of(
    select(func.count()).select_from(attachment).where(attachment.c.ticket_id == bindparam("id"))
)
_ATTACHED = Query.of(
    update(ticket)
    .where(ticket.c.id == bindparam("p_ticket_id"))
    .values(updated_at=func.now())
    .add_cte(
        insert(ticket_event)
        .values(
            ticket_id=bindparam("p_ticket_id"),
            kind="attachment_added",
            detail=bindparam("p_detail"),
        )
        .cte("entry"),
        update(idempotency_key)
        .where(
            idempotency_key.c.api_key_id == bindparam("p_api_key_id"),
            idempotency_key.c.key == bindparam("p_idempotency_key"),
        )
        .values(status_code=201, response=bindparam("p_response"))
        .cte("remembered"),
    )
)
"""The timeline entry, the ticket's updated_at and the response recorded under the upload's
Idempotency-Key (when none was sent, the UPDATE matches no row), in one statement."""


@dataclass(frozen=True)
class StoredFile:
    """An attachment's bytes and how to serve them."""

    filename: str
    content_type: str
    content: bytes


async def get_attachment(
    *, session: AsyncSession, ref: str, attachment_id: uuid.UUID
) -> StoredFile:
    """The bytes of one attachment of a ticket."""
    row = (
        await session.execute(
            select(attachment.c.filename, attachment.c.content_type, attachment.c.content)
            .join(ticket, ticket.c.id == attachment.c.ticket_id)
            .where(_ticket_ref(ref), attachment.c.id == attachment_id)
        )
    ).first()
    if row is None:
        raise TicketNotFound(f"ticket {ref!r} has no attachment {attachment_id}")
    return StoredFile(row.filename, row.content_type, row.content)


async def advance(
    *,
    session: AsyncSession,
    ticket_ids: Sequence[uuid.UUID],
    to_status: str,
    at: datetime,
    detail: str,
    causation: Envelope | None = None,
) -> list[uuid.UUID]:
    """Move tickets forward to `to_status` (never back), log it, publish ticket.status_changed.

    Returns the ids of the tickets that moved; unknown ids and tickets already
    at or past `to_status` are left alone.
    """
    if not ticket_ids:
        return []
    rank = STATUS_ORDER.index(to_status)
    rows = (
        await session.execute(
            select(
                ticket.c.id, ticket.c.number, ticket.c.status, ticket.c.product_slug, product.c.name
            )
            .join(product, product.c.slug == ticket.c.product_slug)
            .where(ticket.c.id.in_(sorted(set(ticket_ids))))
            .order_by(ticket.c.id)
            .with_for_update(of=ticket)
        )
    ).all()
    moved = []
    for row in rows:
        if STATUS_ORDER.index(row.status) >= rank:
            continue
        await session.execute(
            update(ticket)
            .where(ticket.c.id == row.id)
            .values(status=to_status, updated_at=func.now())
        )
        await session.execute(
            insert(ticket_event).values(
                ticket_id=row.id,
                kind="status_changed",
                status=to_status,
                detail=detail,
                event_id=causation.id if causation else None,
                at=at,
            )
        )
        await publish(
            session,
            TicketStatusChanged(
                ticket_id=row.id,
                number=row.number,
                product=ProductRef(slug=row.product_slug, name=row.name),
                old_status=row.status,
                new_status=to_status,
                changed_at=at,
            ),
            producer=PRODUCER,
            causation=causation,
        )
        moved.append(row.id)
    return moved


async def note(
    *,
    session: AsyncSession,
    ticket_ids: Sequence[uuid.UUID],
    kind: str,
    at: datetime,
    detail: str,
    causation: Envelope | None = None,
) -> None:
    """Add a timeline entry (no status change) to each of our tickets among `ticket_ids`."""
    if not ticket_ids:
        return
    known = (
        await session.scalars(select(ticket.c.id).where(ticket.c.id.in_(set(ticket_ids))))
    ).all()
    if known:
        await session.execute(
            insert(ticket_event),
            [
                {
                    "ticket_id": ticket_id,
                    "kind": kind,
                    "detail": detail,
                    "event_id": causation.id if causation else None,
                    "at": at,
                }
                for ticket_id in known
            ],
        )


async def close_ticket(*, session: AsyncSession, ref: str, settings: Settings) -> TicketRead:
    """Close a ticket: the last step; closing a closed ticket changes nothing."""
    found = await get_ticket(session=session, ref=ref, settings=settings, for_update=True)
    await advance(
        session=session,
        ticket_ids=[found.id],
        to_status="closed",
        at=datetime.now(UTC),
        detail="Closed by support.",
    )
    return await get_ticket(session=session, ref=ref, settings=settings)

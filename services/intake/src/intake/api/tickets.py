"""Ticket routes: parse, call one use case, commit, respond.

Filing runs on the driver, in a transaction of its own (see `intake.tickets.filing`);
every other route on its session."""

import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from contracts.common import Severity
from intake import tickets
from intake.api.bodies import FILES_BODY, TICKET_BODY
from intake.api.deps import (
    ATTACH,
    READ_ONE,
    READ_QUERY,
    UPLOAD,
    WRITE_ONE,
    IdempotencyKey,
    Reader,
    SettingsDep,
    TicketRef,
    Writer,
    upload_budget,
    upload_reservation,
)
from intake.errors import Unprocessable
from intake.schemas import (
    AttachmentRead,
    SingleLine,
    Slug,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketStatus,
)
from intake.uploads import read_multipart
from servicekit import driver
from servicekit.api import UtcDatetime, media_type, parse_json, read_capped
from servicekit.deps import RuntimeDep, SessionDep, commit
from servicekit.problems import UnsupportedMediaType

router = APIRouter(prefix="/v1", tags=["tickets"])


def _reply(filed: tickets.Filed) -> Response:
    headers = {"Location": filed.location} if filed.location else {}
    if filed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        filed.content, status_code=filed.status_code, headers=headers, media_type="application/json"
    )


@router.post(
    "/tickets",
    status_code=201,
    response_model=TicketRead,
    responses=UPLOAD,
    openapi_extra=TICKET_BODY,
    summary="File a ticket (JSON, or multipart with attachments)",
)
async def file_ticket(
    request: Request,
    runtime: RuntimeDep,
    principal: Writer,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """File a ticket; a CRITICAL one pages the on-call engineer. 201 means it will be delivered."""
    media = media_type(request)
    if media == "application/json":
        data = parse_json(TicketCreate, await read_capped(request, settings.json_body_max_bytes))
        async with driver.connection(runtime.engine) as conn, driver.transaction(conn):
            filed = await tickets.file_ticket(
                conn=conn,
                data=data,
                api_key_id=principal.key_id,
                idempotency_key=idempotency_key,
                settings=settings,
            )
        return _reply(filed)
    if media != "multipart/form-data":
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    async with upload_budget(request).take(upload_reservation(request, settings)):
        body = await read_multipart(request, settings)
        if "ticket" not in body.fields:
            raise Unprocessable("ticket", "send the ticket as JSON in a form field named 'ticket'")
        data = parse_json(TicketCreate, body.fields["ticket"])
        async with driver.connection(runtime.engine) as conn, driver.transaction(conn):
            filed = await tickets.file_ticket(
                conn=conn,
                data=data,
                uploads=[upload for _, upload in body.files],
                api_key_id=principal.key_id,
                idempotency_key=idempotency_key,
                settings=settings,
            )
    return _reply(filed)


@router.get("/tickets", response_model=TicketPage, responses=READ_QUERY)
async def list_tickets(
    session: SessionDep,
    _: Reader,
    status: TicketStatus | None = None,
    severity: Severity | None = None,
    product: Annotated[Slug | None, Query()] = None,
    organization: Annotated[SingleLine | None, Query(max_length=200)] = None,
    created_from: Annotated[UtcDatetime | None, Query()] = None,
    created_to: Annotated[UtcDatetime | None, Query()] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=500,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="The `next_cursor` of the previous page.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TicketPage:
    """Tickets newest first; pass `next_cursor` back as `cursor` for the next page."""
    filters = tickets.TicketFilter(
        status=status,
        severity=severity.value if severity else None,
        product=product,
        organization=organization,
        created_from=created_from,
        created_to=created_to,
    )
    return await tickets.list_tickets(session=session, filters=filters, cursor=cursor, limit=limit)


@router.get("/tickets/{ref}", response_model=TicketRead, responses=READ_ONE)
async def get_ticket(
    ref: TicketRef, session: SessionDep, _: Reader, settings: SettingsDep
) -> TicketRead:
    """A ticket by UUID or number (KLX-1042), with attachments and timeline."""
    return await tickets.get_ticket(session=session, ref=ref, settings=settings)


@router.post("/tickets/{ref}/close", response_model=TicketRead, responses=WRITE_ONE)
async def close_ticket(
    ref: TicketRef, session: SessionDep, _: Writer, settings: SettingsDep
) -> TicketRead:
    """Close a ticket (its last status)."""
    closed = await tickets.close_ticket(session=session, ref=ref, settings=settings)
    await commit(session)
    return closed


@router.post(
    "/tickets/{ref}/attachments",
    status_code=201,
    response_model=list[AttachmentRead],
    responses=ATTACH,
    openapi_extra=FILES_BODY,
)
async def add_attachments(
    ref: TicketRef,
    request: Request,
    session: SessionDep,
    principal: Writer,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Attach screenshots, PDFs or logs to a ticket (multipart, any file part)."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType("send the files as multipart/form-data")
    async with upload_budget(request).take(upload_reservation(request, settings)):
        body = await read_multipart(request, settings)
        added = await tickets.add_attachments(
            session=session,
            ref=ref,
            uploads=[u for _, u in body.files],
            api_key_id=principal.key_id,
            idempotency_key=idempotency_key,
            settings=settings,
        )
        await commit(session)
    return _reply(added)


@router.get(
    "/tickets/{ref}/attachments/{attachment_id}",
    responses={
        200: {
            "description": "The attachment's bytes, typed by their content",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **READ_ONE,
    },
    response_class=Response,
)
async def get_attachment(
    ref: TicketRef, attachment_id: uuid.UUID, session: SessionDep, _: Reader
) -> Response:
    """The bytes of an attachment, with the type sniffed from its content."""
    stored = await tickets.get_attachment(session=session, ref=ref, attachment_id=attachment_id)
    ascii_name = stored.filename.encode("ascii", "replace").decode().replace("?", "_")
    disposition = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(stored.filename)}"
    )
    return Response(
        stored.content,
        media_type=stored.content_type,
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )

"""The /v1 REST API: thin routes that parse, call one use case, commit and respond."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from contracts.common import Severity
from intake import keys, products, reports, tickets
from intake.errors import Unprocessable
from intake.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    AttachmentRead,
    CriticalUsageReport,
    ProductCreate,
    ProductRead,
    ProductUpdate,
    SingleLine,
    Slug,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketStatus,
)
from intake.settings import Settings
from intake.uploads import read_capped, read_multipart
from servicekit.auth import Principal, require_scope
from servicekit.deps import RuntimeDep, SessionDep, commit
from servicekit.problems import PROBLEM_JSON, UnsupportedMediaType
from servicekit.sql import connection, transaction


async def get_settings(request: Request) -> Settings:
    """The intake settings of the running service (async: no threadpool hop per request)."""
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
SlugPath = Annotated[Slug, Path(description="The product's slug, e.g. canvas-hosting.")]
Writer = Annotated[Principal, Depends(require_scope("tickets:write"))]
Reader = Annotated[Principal, Depends(require_scope("tickets:read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]
CatalogueReader = Annotated[Principal, Depends(require_scope("tickets:read", "tickets:write"))]
"""The product catalogue is open to the portal's filing key: it lists the products to file for."""
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="Retries with the same key and body replay the first response.",
    ),
]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **_PROBLEM}
    for code, text in (
        (401, "No API key, or an unknown or revoked one"),
        (403, "The API key lacks the scope"),
        (404, "Not found"),
        (422, "Invalid field (errors name each field and reason)"),
        (
            503,
            "The database is unreachable and nothing was saved; or, with"
            ' `"saved": "unknown"`, the connection was lost while saving. Retry after'
            " Retry-After, with the same Idempotency-Key where the route takes one: it"
            " replays a saved request.",
        ),
    )
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    413: {"description": "Attachment or body over the limit", **_PROBLEM},
    415: {
        "description": "Not JSON/multipart, or an attachment that is not an image, PDF or text",
        **_PROBLEM,
    },
}
_TICKET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TicketCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["ticket"],
                    "properties": {
                        "ticket": {
                            "type": "string",
                            "description": "The ticket as JSON (TicketCreate).",
                        },
                        "attachments": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Screenshots (PNG, JPEG, GIF, WebP), PDFs, logs.",
                        },
                    },
                }
            },
        },
    }
}
_FILES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "attachments": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                }
            }
        },
    }
}

router = APIRouter(prefix="/v1")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


Model = TypeVar("Model", bound=BaseModel)


def _parse(model: type[Model], raw: bytes | str) -> Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def json_body(model: type[Model]) -> Callable[..., Awaitable[Model]]:
    """A dependency that reads the JSON body as `model`, capped at ``json_body_max_bytes``.

    FastAPI reads a body parameter before it runs any dependency, so a
    malformed body from a caller without a key would get 422 rather than 401.
    Declared after the route's scope dependency, this one runs after it.
    Publish the body's schema with `json_request_body`.
    """

    async def dependency(request: Request, settings: SettingsDep) -> Model:
        media_type = _media_type(request)
        if media_type not in ("", "application/json") and not media_type.endswith("+json"):
            raise UnsupportedMediaType("send application/json")
        return _parse(model, await read_capped(request, settings.json_body_max_bytes))

    return dependency


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that reads `model` with `json_body`."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _utc(value: datetime | None, field: str) -> datetime | None:
    """`value` in UTC (a naive one is taken as UTC); 422 if UTC cannot hold it."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Unprocessable(field, "is out of range once converted to UTC") from None


@router.post(
    "/tickets",
    tags=["tickets"],
    status_code=201,
    response_model=TicketRead,
    responses=_UPLOAD_ERRORS,
    openapi_extra=_TICKET_BODY,
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
    media_type = _media_type(request)
    if media_type == "application/json":
        data = _parse(TicketCreate, await read_capped(request, settings.json_body_max_bytes))
        uploads: list[tickets.Upload] = []
    elif media_type == "multipart/form-data":
        body = await read_multipart(request, settings)
        if "ticket" not in body.fields:
            raise Unprocessable("ticket", "send the ticket as JSON in a form field named 'ticket'")
        data = _parse(TicketCreate, body.fields["ticket"])
        uploads = [upload for _, upload in body.files]
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    async with connection(runtime.engine) as conn:
        filed = await tickets.file_ticket(
            conn=conn,
            data=data,
            uploads=uploads,
            api_key_id=principal.key_id,
            idempotency=idempotency_key,
            settings=settings,
        )
    return _reply(filed)


def _reply(filed: tickets.Filed) -> Response:
    headers = {"Location": filed.location} if filed.location else {}
    if filed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        filed.content, status_code=filed.status_code, headers=headers, media_type="application/json"
    )


@router.get("/tickets", tags=["tickets"], response_model=TicketPage, responses=_ERRORS)
async def list_tickets(
    session: SessionDep,
    _: Reader,
    status: TicketStatus | None = None,
    severity: Severity | None = None,
    product: Annotated[Slug | None, Query()] = None,
    organization: Annotated[SingleLine | None, Query(max_length=200)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TicketPage:
    """Tickets newest first; pass `next_cursor` back as `cursor` for the next page."""
    filters = tickets.TicketFilter(
        status=status,
        severity=severity.value if severity else None,
        product=product,
        organization=organization,
        created_from=_utc(created_from, "created_from"),
        created_to=_utc(created_to, "created_to"),
    )
    return await tickets.list_tickets(session=session, filters=filters, cursor=cursor, limit=limit)


@router.get("/tickets/{ref}", tags=["tickets"], response_model=TicketRead, responses=_ERRORS)
async def get_ticket(ref: str, session: SessionDep, _: Reader, settings: SettingsDep) -> TicketRead:
    """A ticket by UUID or number (KLX-1042), with attachments and timeline."""
    return await tickets.get_ticket(session=session, ref=ref, settings=settings)


@router.post("/tickets/{ref}/close", tags=["tickets"], response_model=TicketRead, responses=_ERRORS)
async def close_ticket(
    ref: str, session: SessionDep, _: Writer, settings: SettingsDep
) -> TicketRead:
    """Close a ticket (its last status)."""
    closed = await tickets.close_ticket(session=session, ref=ref, settings=settings)
    await commit(session)
    return closed


@router.post(
    "/tickets/{ref}/attachments",
    tags=["tickets"],
    status_code=201,
    response_model=list[AttachmentRead],
    responses=_UPLOAD_ERRORS,
    openapi_extra=_FILES_BODY,
)
async def add_attachments(
    ref: str,
    request: Request,
    runtime: RuntimeDep,
    principal: Writer,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Attach screenshots, PDFs or logs to a ticket (multipart, any file part)."""
    if _media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType("send the files as multipart/form-data")
    body = await read_multipart(request, settings)
    async with connection(runtime.engine) as conn, transaction(conn):
        added = await tickets.add_attachments(
            conn=conn,
            ref=ref,
            uploads=[u for _, u in body.files],
            api_key_id=principal.key_id,
            idempotency=idempotency_key,
            settings=settings,
        )
    return _reply(added)


@router.get(
    "/tickets/{ref}/attachments/{attachment_id}",
    tags=["tickets"],
    responses={200: {"content": {"application/octet-stream": {}}}, **_ERRORS},
    response_class=Response,
)
async def get_attachment(
    ref: str, attachment_id: uuid.UUID, session: SessionDep, _: Reader
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


@router.get("/products", tags=["products"], response_model=list[ProductRead], responses=_ERRORS)
async def list_products(
    session: SessionDep, _: CatalogueReader, include_inactive: bool = False
) -> list[ProductRead]:
    """The product catalogue."""
    return await products.list_products(session=session, include_inactive=include_inactive)


@router.get("/products/{slug}", tags=["products"], response_model=ProductRead, responses=_ERRORS)
async def get_product(slug: SlugPath, session: SessionDep, _: CatalogueReader) -> ProductRead:
    """One product."""
    return await products.get_product(session=session, slug=slug)


@router.post(
    "/products",
    tags=["products"],
    status_code=201,
    response_model=ProductRead,
    responses=_ERRORS,
    openapi_extra=json_request_body(ProductCreate),
)
async def create_product(
    _: Admin,
    data: Annotated[ProductCreate, Depends(json_body(ProductCreate))],
    session: SessionDep,
) -> ProductRead:
    """Add a product (admin)."""
    created = await products.create_product(session=session, data=data)
    await commit(session)
    return created


@router.patch(
    "/products/{slug}",
    tags=["products"],
    response_model=ProductRead,
    responses=_ERRORS,
    openapi_extra=json_request_body(ProductUpdate),
)
async def update_product(
    _: Admin,
    slug: SlugPath,
    data: Annotated[ProductUpdate, Depends(json_body(ProductUpdate))],
    session: SessionDep,
) -> ProductRead:
    """Rename, retire or restore a product (admin)."""
    updated = await products.update_product(session=session, slug=slug, data=data)
    await commit(session)
    return updated


@router.delete("/products/{slug}", tags=["products"], status_code=204, responses=_ERRORS)
async def retire_product(slug: SlugPath, session: SessionDep, _: Admin) -> Response:
    """Retire a product: new tickets can no longer name it (admin)."""
    await products.retire_product(session=session, slug=slug)
    await commit(session)
    return Response(status_code=204)


@router.post(
    "/api-keys",
    tags=["api keys"],
    status_code=201,
    response_model=ApiKeyCreated,
    responses=_ERRORS,
    openapi_extra=json_request_body(ApiKeyCreate),
)
async def create_api_key(
    _: Admin,
    data: Annotated[ApiKeyCreate, Depends(json_body(ApiKeyCreate))],
    session: SessionDep,
) -> ApiKeyCreated:
    """Create an API key (admin); the secret is shown once."""
    created = await keys.create_key(session=session, data=data)
    await commit(session)
    return created


@router.get("/api-keys", tags=["api keys"], response_model=list[ApiKeyRead], responses=_ERRORS)
async def list_api_keys(session: SessionDep, _: Admin) -> list[ApiKeyRead]:
    """Every API key, without secrets (admin)."""
    return await keys.list_keys(session=session)


@router.delete("/api-keys/{key_id}", tags=["api keys"], status_code=204, responses=_ERRORS)
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """Revoke an API key (admin)."""
    await keys.revoke_key(session=session, key_id=key_id)
    await commit(session)
    return Response(status_code=204)


@router.get(
    "/reports/critical-usage",
    tags=["reports"],
    response_model=CriticalUsageReport,
    responses=_ERRORS,
)
async def critical_usage(
    session: SessionDep,
    _: Reader,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> CriticalUsageReport:
    """Per organization, CRITICAL tickets filed while monitoring saw the product up."""
    return await reports.critical_usage(
        session=session,
        created_from=_utc(created_from, "created_from"),
        created_to=_utc(created_to, "created_to"),
    )

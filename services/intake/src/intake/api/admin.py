"""Catalogue, API-key and report routes: parse, call one use case, commit, respond."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from intake import keys, products, reports
from intake.api.deps import (
    READ,
    READ_ONE,
    READ_QUERY,
    WRITE_JSON,
    WRITE_ONE,
    Admin,
    CatalogueReader,
    Reader,
    SlugPath,
)
from intake.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    CriticalUsageReport,
    ProductCreate,
    ProductRead,
    ProductUpdate,
)
from servicekit.api import StrictBool, UtcDatetime, json_body, json_request_body
from servicekit.api_openapi import error_responses
from servicekit.deps import SessionDep, commit

router = APIRouter(prefix="/v1")

_SLUG_TAKEN = error_responses(
    409, overrides={409: "A product with this slug exists (retired ones too)"}
)


@router.get("/products", tags=["products"], response_model=list[ProductRead], responses=READ_QUERY)
async def list_products(
    session: SessionDep,
    _: CatalogueReader,
    include_inactive: Annotated[StrictBool, Query()] = False,
) -> list[ProductRead]:
    """The product catalogue."""
    return await products.list_products(session=session, include_inactive=include_inactive)


@router.get("/products/{slug}", tags=["products"], response_model=ProductRead, responses=READ_ONE)
async def get_product(slug: SlugPath, session: SessionDep, _: CatalogueReader) -> ProductRead:
    """One product."""
    return await products.get_product(session=session, slug=slug)


@router.post(
    "/products",
    tags=["products"],
    status_code=201,
    response_model=ProductRead,
    responses={**WRITE_JSON, **_SLUG_TAKEN},
    openapi_extra=json_request_body(ProductCreate),
)
async def create_product(
    _: Admin,
    data: Annotated[ProductCreate, Depends(json_body(ProductCreate))],
    session: SessionDep,
) -> ProductRead:
    """Add a product (admin); published as `product.changed`."""
    created = await products.create_product(session=session, data=data)
    await commit(session)
    return created


@router.patch(
    "/products/{slug}",
    tags=["products"],
    response_model=ProductRead,
    responses={**WRITE_JSON, **WRITE_ONE},
    openapi_extra=json_request_body(ProductUpdate),
)
async def update_product(
    _: Admin,
    slug: SlugPath,
    data: Annotated[ProductUpdate, Depends(json_body(ProductUpdate))],
    session: SessionDep,
) -> ProductRead:
    """Rename, retire or restore a product (admin); published as `product.changed`."""
    updated = await products.update_product(session=session, slug=slug, data=data)
    await commit(session)
    return updated


@router.delete("/products/{slug}", tags=["products"], status_code=204, responses=WRITE_ONE)
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
    responses=WRITE_JSON,
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


@router.get("/api-keys", tags=["api keys"], response_model=list[ApiKeyRead], responses=READ)
async def list_api_keys(session: SessionDep, _: Admin) -> list[ApiKeyRead]:
    """Every API key, without secrets (admin)."""
    return await keys.list_keys(session=session)


@router.delete("/api-keys/{key_id}", tags=["api keys"], status_code=204, responses=WRITE_ONE)
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, _: Admin) -> Response:
    """Revoke an API key (admin)."""
    await keys.revoke_key(session=session, key_id=key_id)
    await commit(session)
    return Response(status_code=204)


@router.get(
    "/reports/critical-usage",
    tags=["reports"],
    response_model=CriticalUsageReport,
    responses=READ_QUERY,
)
async def critical_usage(
    session: SessionDep,
    _: Reader,
    created_from: Annotated[UtcDatetime | None, Query()] = None,
    created_to: Annotated[UtcDatetime | None, Query()] = None,
) -> CriticalUsageReport:
    """Per organization, CRITICAL tickets filed while monitoring saw the product up."""
    return await reports.critical_usage(
        session=session, created_from=created_from, created_to=created_to
    )

"""What intake's routes share: settings, scopes, path and header parameters, documented
error responses."""

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from intake.schemas import TICKET_REF_PATTERN, Slug
from intake.settings import Settings
from servicekit.api_middleware import MemoryBudget
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope


async def get_settings(request: Request) -> Settings:
    """The intake settings of the running service (async: no threadpool hop per request)."""
    settings: Settings = request.app.state.runtime.settings
    return settings


def upload_budget(request: Request) -> MemoryBudget:
    """The bytes uploads in progress may hold at once (built in `intake.app.create_app`)."""
    budget: MemoryBudget = request.app.state.upload_budget
    return budget


def upload_reservation(request: Request, settings: Settings) -> int:
    """What a multipart request may hold: its Content-Length (the server reads no more),
    or the largest body allowed when it declares none."""
    declared = request.headers.get("content-length", "")
    largest = settings.request_body_max_bytes
    return min(int(declared), largest) if declared.isdigit() else largest


SettingsDep = Annotated[Settings, Depends(get_settings)]
SlugPath = Annotated[Slug, Path(description="The product's slug, e.g. canvas-hosting.")]
TicketRef = Annotated[
    str,
    Path(
        pattern=TICKET_REF_PATTERN,
        description="The ticket's id (a UUID) or number (KLX-1042, any case).",
    ),
]
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

_KEY_IN_FLIGHT = "A request with this Idempotency-Key is still being handled; retry shortly"
_ALWAYS = (401, 403, 431, 503)
"""Every /v1 route: no or bad key, missing scope, headers too large, database away."""

READ = error_responses(*_ALWAYS)
READ_QUERY = error_responses(*_ALWAYS, 422)
READ_ONE = error_responses(*_ALWAYS, 404, 422)
WRITE_ONE = error_responses(*_ALWAYS, 404, 422)
WRITE_JSON = error_responses(*_ALWAYS, 413, 415, 422)
UPLOAD = error_responses(*_ALWAYS, 409, 413, 415, 422, overrides={409: _KEY_IN_FLIGHT})
ATTACH = error_responses(*_ALWAYS, 404, 409, 413, 415, 422, overrides={409: _KEY_IN_FLIGHT})

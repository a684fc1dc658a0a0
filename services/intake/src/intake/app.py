"""The intake service's FastAPI app."""

from functools import partial

from fastapi import FastAPI

from intake.api import ROUTERS
from intake.handlers import HANDLERS
from intake.schemas import ApiKeyCreate, ProductCreate, ProductUpdate, TicketCreate
from intake.settings import Settings
from intake.tickets import prune_idempotency_keys
from servicekit.api_middleware import MemoryBudget, install_api_middleware
from servicekit.api_openapi import install_openapi
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings

DESCRIPTION = (
    "Ticket API for the support portal. A CRITICAL ticket pages the on-call engineer at "
    "once; every filed ticket is published as `ticket.filed`. Send `Authorization: Bearer "
    "<key>` on every /v1 call, and an `Idempotency-Key` on POST /v1/tickets so a retry "
    "never files twice (a key is remembered for 7 days by default). Errors are "
    "`application/problem+json`; a 503 carries Retry-After."
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database and broker connections open in the lifespan."""
    if not isinstance(settings, Settings):
        settings = Settings.model_validate(settings.model_dump()) if settings else Settings()
    retention_s = settings.idempotency_retention_s
    app = create_service_app(
        settings,
        title="Klaxon intake",
        routers=ROUTERS,
        handlers=HANDLERS,
        prunes={"idempotency keys": partial(prune_idempotency_keys, older_than_s=retention_s)},
        description=DESCRIPTION,
    )
    app.state.upload_budget = MemoryBudget(
        settings.upload_memory_bytes, wait_s=settings.upload_wait_s, what="uploads"
    )
    install_api_middleware(
        app, service=settings.service_name, max_header_bytes=settings.max_header_bytes
    )
    # These routes read their own bodies (after authenticating, or as JSON or multipart),
    # so FastAPI does not see the models: publish them for each route's requestBody.
    install_openapi(app, body_models=(TicketCreate, ProductCreate, ProductUpdate, ApiKeyCreate))
    return app

"""The intake service's FastAPI app."""

from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from intake.api import router
from intake.handlers import HANDLERS
from intake.schemas import ApiKeyCreate, ProductCreate, ProductUpdate, TicketCreate
from intake.settings import Settings
from intake.tickets import prune_idempotency_keys
from servicekit.runtime import create_service_app
from servicekit.settings import ServiceSettings

DESCRIPTION = (
    "Ticket API for the support portal. A CRITICAL ticket pages the on-call engineer at "
    "once; every filed ticket is published as `ticket.filed`. Send `Authorization: Bearer "
    "<key>` on every /v1 call, and an `Idempotency-Key` on POST /v1/tickets so a retry "
    "never files twice (a key is remembered for 7 days by default)."
)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; its database and broker connections open in the lifespan."""
    if not isinstance(settings, Settings):
        settings = Settings.model_validate(settings.model_dump()) if settings else Settings()
    retention_s = settings.idempotency_retention_s
    app = create_service_app(
        settings,
        title="Klaxon intake",
        routers=[router],
        handlers=HANDLERS,
        prunes={"idempotency keys": partial(prune_idempotency_keys, older_than_s=retention_s)},
        description=DESCRIPTION,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # These routes read their own bodies (after authenticating, or as JSON
            # or multipart), so FastAPI does not see the models; publish them for
            # the hand-written requestBody of each.
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for body in (TicketCreate, ProductCreate, ProductUpdate, ApiKeyCreate):
                model = body.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model.pop("$defs", {}))
                components[body.__name__] = model
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

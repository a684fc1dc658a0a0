"""What every route of the notifier's API shares: settings, scopes, error responses."""

from typing import Annotated

from fastapi import Depends, Request

from notifier import schemas
from notifier.settings import Settings
from servicekit.api import json_request_body
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope


async def get_settings(request: Request) -> Settings:
    """The notifier settings of the running service."""
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
Reader = Annotated[Principal, Depends(require_scope("oncall:read", "oncall:write"))]
Writer = Annotated[Principal, Depends(require_scope("oncall:write"))]
Pager = Annotated[Principal, Depends(require_scope("pages:write"))]
ERRORS = error_responses(401, 403, 404, 409, 422)


def body(model: type[schemas.Strict]) -> dict[str, object]:
    """OpenAPI of a route's JSON body."""
    return json_request_body(model)

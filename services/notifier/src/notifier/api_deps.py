"""What every route of the notifier's API shares: settings, the link secret, scopes, error
responses."""

from typing import Annotated

from fastapi import Depends, Request

from notifier import link_secret, schemas
from notifier.settings import Settings
from servicekit.api import json_request_body
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope


async def get_settings(request: Request) -> Settings:
    """The notifier settings of the running service."""
    settings: Settings = request.app.state.runtime.settings
    return settings


async def get_link_secret(request: Request) -> str:
    """The secret acknowledge/resolve links are signed with (`notifier.link_secret`)."""
    secret: str = request.app.state.runtime.resources[link_secret.RESOURCE]
    return secret


SettingsDep = Annotated[Settings, Depends(get_settings)]
LinkSecretDep = Annotated[str, Depends(get_link_secret)]
Reader = Annotated[Principal, Depends(require_scope("oncall:read", "oncall:write"))]
Writer = Annotated[Principal, Depends(require_scope("oncall:write"))]
Pager = Annotated[Principal, Depends(require_scope("pages:write"))]
ERRORS = error_responses(401, 403, 404, 409, 422)


def body(model: type[schemas.Strict]) -> dict[str, object]:
    """OpenAPI of a route's JSON body."""
    return json_request_body(model)

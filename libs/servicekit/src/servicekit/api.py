"""Request parsing every service's REST API shares: capped bodies, strict query types.

- `json_body(Model)`: a dependency that reads the JSON body as ``Model`` with a
  size cap, *after* the route's other dependencies (so a caller without a key
  gets 401, not 422 for its body). Publish the body in OpenAPI with
  `json_request_body(Model)` and `servicekit.api_openapi.install_openapi`.
- `read_capped(request, limit)`: the raw body, 413 once it passes ``limit``.
- `parse_json(Model, raw)`: validate JSON as ``Model``; errors become the usual 422.
- `UtcDatetime` / `StrictBool`: query-parameter types that accept what their
  OpenAPI schema says and nothing else: an ISO 8601 date-time (a naive one is
  taken as UTC; the value is returned in UTC), never a bare number such as
  ``0.5`` (which pydantic would read as seconds since 1970); ``true`` or
  ``false``, never ``1``, ``yes`` or ``on``.

Example::

    @router.post("/things", openapi_extra=json_request_body(ThingCreate),
                 responses=error_responses(401, 403, 409, 413, 415, 422, 503))
    async def create_thing(
        _: Admin, data: Annotated[ThingCreate, Depends(json_body(ThingCreate))], ...
    ): ...
"""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ValidationError
from starlette.requests import ClientDisconnect

from servicekit.problems import PayloadTooLarge, Unprocessable, UnsupportedMediaType

DEFAULT_JSON_BODY_MAX_BYTES = 1024 * 1024
"""The JSON body cap of a service whose settings have no ``json_body_max_bytes``."""

Model = TypeVar("Model", bound=BaseModel)


class BodyTooLarge(PayloadTooLarge):
    """The request body is over its limit."""


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case ('' if none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """True for application/json and any ``+json`` type; an absent type counts as JSON."""
    return media in ("", "application/json") or media.endswith("+json")


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 once it passes `limit` bytes (before buffering more)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is over {limit} bytes", limit_bytes=limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise BodyTooLarge(f"the request body is over {limit} bytes", limit_bytes=limit)
    except ClientDisconnect:
        raise Unprocessable(
            "body", "the client disconnected before sending the whole body"
        ) from None
    return bytes(body)


def parse_json(model: type[Model], raw: bytes | str) -> Model:
    """`raw` validated as `model`; invalid JSON or fields raise the API's 422."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def json_body_limit(request: Request) -> int:
    """The running service's ``json_body_max_bytes`` setting, or the default cap."""
    settings = request.app.state.runtime.settings
    limit: int = getattr(settings, "json_body_max_bytes", DEFAULT_JSON_BODY_MAX_BYTES)
    return limit


def json_body(
    model: type[Model], *, max_bytes: int | None = None
) -> Callable[..., Awaitable[Model]]:
    """A dependency that reads the JSON body as `model`, capped at `max_bytes`.

    The cap defaults to the service's ``json_body_max_bytes`` setting. FastAPI
    reads a declared body parameter before it runs any dependency, so a
    malformed body from a caller without a key would get 422 rather than 401;
    declared after the route's auth dependency, this one runs after it.
    """

    async def dependency(request: Request) -> Model:
        if not is_json(media_type(request)):
            raise UnsupportedMediaType("send application/json")
        limit = max_bytes if max_bytes is not None else json_body_limit(request)
        return parse_json(model, await read_capped(request, limit))

    return dependency


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads `model` with `json_body`
    (pass as ``openapi_extra``; `install_openapi` publishes the model's schema)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_BOOLEANS = {"true": True, "false": False}


def _no_bare_number(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("must be an ISO 8601 date-time such as 2026-01-31T09:00:00Z, not a number")
    return value


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive value is taken as UTC. ValueError if UTC cannot hold it."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise ValueError("must be true or false")


UtcDatetime = Annotated[datetime, BeforeValidator(_no_bare_number), AfterValidator(as_utc)]
"""An ISO 8601 date-time, returned in UTC; bare numbers are refused (422)."""

StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
"""``true`` or ``false`` (any case) and nothing else."""

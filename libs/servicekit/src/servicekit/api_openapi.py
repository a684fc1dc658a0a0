"""The OpenAPI document of a Klaxon service, exact enough to generate a client from.

- `error_responses(401, 404, 422, ...)`: the ``responses=`` of a route, each a
  problem+json document (`ProblemDocument`) with a standard description; pass
  ``overrides={409: "why this route conflicts"}`` to say what a status means
  on that route.
- `install_openapi(app, body_models=[...])`: generate the document once and fix
  what FastAPI cannot know: models of bodies read by `servicekit.api.json_body`
  (or by hand) are published; every problem+json response refers to
  `ProblemDocument` and FastAPI's own 422 schema (which the API never sends) is
  replaced by it; ``/metrics`` is ``text/plain``; ``/readyz`` documents its 503;
  with `servicekit.api_middleware` installed, every route documents the 431 of
  oversized request headers.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from servicekit.api_middleware import HeaderLimitMiddleware
from servicekit.problems import PROBLEM_JSON


class FieldError(BaseModel):
    """One invalid field and why."""

    field: str = Field(description="The field, e.g. `reporter.email`, `cursor`, `body`.")
    reason: str


class ProblemDocument(BaseModel):
    """An error (RFC 9457 problem details); extensions name the limit or field at fault."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="On 422: each invalid field and its reason."
    )
    saved: str | None = Field(
        default=None,
        description='On 503: "unknown" when the connection was lost during COMMIT.',
    )


PROBLEM_REF = "#/components/schemas/Problem"

STANDARD_ERRORS: dict[int, str] = {
    400: "Malformed request (e.g. request headers too large)",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the scope",
    404: "Not found",
    405: "Method not allowed (the Allow header lists the allowed ones)",
    409: "Conflict with the current state",
    413: "Body or attachment over the limit",
    415: "Unsupported media type",
    422: "Invalid field (errors name each field and reason)",
    431: "Request headers too large",
    503: (
        "The database is unreachable and nothing was saved; or, with"
        ' `"saved": "unknown"`, the connection was lost while saving. Retry after'
        " Retry-After, with the same Idempotency-Key where the route takes one: it"
        " replays a saved request."
    ),
}


def problem_response(description: str) -> dict[str, Any]:
    """One OpenAPI response: a problem+json document described as `description`."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }


def error_responses(
    *statuses: int, overrides: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer each of `statuses` with a problem."""
    texts = {**STANDARD_ERRORS, **(overrides or {})}
    return {status: problem_response(texts[status]) for status in statuses}


def _components(schema: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    published: list[type[BaseModel]] = [ProblemDocument, *models]
    for model in published:
        name = "Problem" if model is ProblemDocument else model.__name__
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[name] = body


def _fix_operation(
    path: str, method: str, operation: dict[str, Any], *, header_limit: bool
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        content = response.get("content", {})
        if status == "422" or PROBLEM_JSON in content:
            response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
            if status == "422" and response.get("description") == "Validation Error":
                response["description"] = STANDARD_ERRORS[422]
    if header_limit:  # servicekit.api_middleware's header limit guards every route
        responses.setdefault("431", problem_response(STANDARD_ERRORS[431]))
    if path == "/metrics" and method == "get":
        responses["200"] = {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if path == "/readyz" and method == "get":
        ready = responses.get("200", {}).get("content", {"application/json": {}})
        responses.setdefault(
            "503",
            {"description": "Not ready: the database is unreachable", "content": ready},
        )


def _drop_unused(schema: dict[str, Any]) -> None:
    """Remove FastAPI's validation-error schemas once nothing refers to them."""
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        without = {k: v for k, v in components.items() if k != name}
        if f"#/components/schemas/{name}" not in repr({**schema, "components": without}):
            components.pop(name, None)


def build_openapi(app: FastAPI, body_models: Iterable[type[BaseModel]] = ()) -> dict[str, Any]:
    """The app's OpenAPI document, fixed as the module docstring says."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _components(schema, body_models)
    header_limit = any(
        getattr(m, "cls", None) is HeaderLimitMiddleware for m in app.user_middleware
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _fix_operation(path, method, operation, header_limit=header_limit)
    _drop_unused(schema)
    return schema


def install_openapi(app: FastAPI, *, body_models: Iterable[type[BaseModel]] = ()) -> None:
    """Serve `build_openapi`'s document (built once, on first request) as the app's."""
    models = tuple(body_models)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

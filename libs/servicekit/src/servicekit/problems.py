"""Errors as ``application/problem+json`` (RFC 9457), mapped in one place.

Use cases raise `Problem` subclasses; routes never build error responses by
hand. Validation errors become 422 with one entry per field and reason.
"""

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from servicekit.db import TRANSIENT_CANDIDATES, is_database_outage

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = "2"
"""What a 503 asks a client to wait before retrying, in seconds."""


class Problem(Exception):
    """A domain error with an HTTP status; subclass per kind of failure."""

    status = 400
    title = "Bad request"
    type = "about:blank"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(Problem):
    """The thing asked for does not exist."""

    status = 404
    title = "Not found"


class Conflict(Problem):
    """The request conflicts with the current state."""

    status = 409
    title = "Conflict"


class Unprocessable(Problem):
    """A field is invalid; `errors` names it and the reason."""

    status = 422
    title = "Invalid request"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


class PayloadTooLarge(Problem):
    """The body or an attachment is over the limit."""

    status = 413
    title = "Payload too large"


class UnsupportedMediaType(Problem):
    """The content is not of an accepted type."""

    status = 415
    title = "Unsupported media type"


class Unauthorized(Problem):
    """No valid credentials."""

    status = 401
    title = "Unauthorized"


class Forbidden(Problem):
    """Valid credentials without the needed scope."""

    status = 403
    title = "Forbidden"


class SaveUncertain(Problem):
    """The database connection was lost during COMMIT: the work may or may not be saved."""

    status = 503
    title = "Service unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The connection to the database was lost while this request was being saved, so"
            " it may have been saved. Retry with the same Idempotency-Key, which returns the"
            " saved result or saves it now; without one, check before retrying.",
            saved="unknown",
        )


def problem_response(
    status: int, title: str, detail: str, *, instance: str | None = None, **extensions: Any
) -> JSONResponse:
    """Render a problem document."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _field_error(err: Any) -> dict[str, str]:
    if err.get("type") == "json_invalid":  # FastAPI puts the character offset in its loc
        ctx = err.get("ctx") or {}
        return {"field": "body", "reason": f"is not valid JSON: {ctx.get('error', err.get('msg'))}"}
    return {
        "field": _field_name(tuple(err.get("loc", ()))),
        "reason": str(err.get("msg", "invalid")),
    }


def validation_errors(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic/FastAPI errors as ``[{field, reason}]``."""
    return [_field_error(err) for err in errors]


def _allowed_methods(request: Request) -> list[str]:
    """Every method the app's OpenAPI document lists for the request's path."""
    allowed: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            allowed.update(method.upper() for method in item if method != "parameters")
    return sorted(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(
            exc.status, exc.title, exc.detail, instance=request.url.path, **exc.extensions
        )
        if exc.status == 503:
            response.headers["Retry-After"] = RETRY_AFTER_S
        if isinstance(exc, SaveUncertain):
            log.warning(
                "database connection lost during COMMIT on %s %s; the request may have been saved",
                request.method,
                request.url.path,
                exc_info=exc.__cause__,
            )
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem_response(
            422, "Invalid request", detail, instance=request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}.get(
            exc.status_code, "Error"
        )
        response = problem_response(
            exc.status_code, title, str(exc.detail), instance=request.url.path
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    async def _transient(request: Request, exc: Exception) -> JSONResponse:
        if not await is_database_outage(exc, request.app.state.runtime.sessions):
            raise exc  # a real failure: the 500 handler below logs it
        log.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        response = problem_response(
            503,
            "Service unavailable",
            "The database is unreachable; nothing was saved. Retry shortly"
            " (with the same Idempotency-Key, if any).",
            instance=request.url.path,
        )
        response.headers["Retry-After"] = RETRY_AFTER_S
        return response

    # Handled here, not by the catch-all: an outage is expected, not a crash to trace.
    for kind in TRANSIENT_CANDIDATES:
        app.add_exception_handler(kind, _transient)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "Internal error",
            "The server failed; the error was logged.",
            instance=request.url.path,
        )

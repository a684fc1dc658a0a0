"""ASGI middleware for a service's HTTP API: bounded request headers, request metrics,
and `MemoryBudget`, a cap on the bytes that requests holding their bodies in memory may
hold at once.

Add both middlewares with `install_api_middleware(app, service=...)`:

- request headers over ``max_header_bytes`` in all (names and values) are
  refused with 431 before any route runs; the server itself refuses a head over
  twice that while it arrives (`servicekit.api_server`), so a megabyte header
  line is never read in full;
- every request is counted in ``klaxon_http_requests_total`` and timed in
  ``klaxon_http_request_duration_seconds``, by service, method, route template
  (``/v1/tickets/{ref}``, never the raw path, so the label set stays small;
  ``unmatched`` when no route matched) and status.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.problems import Problem, problem_response

DEFAULT_MAX_HEADER_BYTES = 32 * 1024
"""Request headers (all names and values together) above this are refused with 431."""

HTTP_REQUESTS = Counter(
    "klaxon_http_requests_total",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "klaxon_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status",
    ["service", "method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class HeaderLimitMiddleware:
    """Refuse a request whose headers total more than `max_bytes` with 431 problem+json."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                response = problem_response(
                    431,
                    "Request header fields too large",
                    f"the request headers total {size} bytes; the limit is {self.max_bytes}",
                    instance=scope.get("path"),
                    limit_bytes=self.max_bytes,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HttpMetricsMiddleware:
    """Count and time each request by method, route template and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            labels = (self.service, scope["method"], route, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)


def install_api_middleware(
    app: FastAPI, *, service: str, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> None:
    """Add the header limit (innermost of the two) and the request metrics to `app`; the
    limit is kept in ``app.state.max_header_bytes`` for the server's own bound
    (`servicekit.api_server.server_options`)."""
    app.state.max_header_bytes = max_header_bytes
    app.add_middleware(HeaderLimitMiddleware, max_bytes=max_header_bytes)
    app.add_middleware(HttpMetricsMiddleware, service=service)


class Busy(Problem):
    """Too many costly requests are running; retry after Retry-After (503)."""

    status = 503
    title = "Service unavailable"


class MemoryBudget:
    """At most `total_bytes` reserved at once by requests that hold their bodies in memory.

    A request reserves what it may hold (`take(amount)`: its declared Content-Length, or
    the largest body it may send when it declares none) before reading its body. One that
    finds too little free within `wait_s` is refused with 503 + Retry-After rather than
    queued (its body would wait in memory). A reservation over the whole budget is cut to
    it, so the largest request allowed can still run, alone."""

    def __init__(self, total_bytes: int, *, wait_s: float = 0.0, what: str = "requests") -> None:
        self.total_bytes = total_bytes
        self.wait_s = wait_s
        self.what = what
        self._reserved = 0
        self._changed = asyncio.Condition()

    @property
    def reserved_bytes(self) -> int:
        """Bytes reserved now."""
        return self._reserved

    async def _reserve(self, amount: int) -> bool:
        def fits() -> bool:
            return self._reserved + amount <= self.total_bytes

        async with self._changed:
            if not fits():
                if not self.wait_s:
                    return False
                try:
                    async with asyncio.timeout(self.wait_s):
                        await self._changed.wait_for(fits)
                except TimeoutError:
                    return False
            self._reserved += amount
            return True

    @contextlib.asynccontextmanager
    async def take(self, amount: int) -> AsyncIterator[None]:
        """Hold `amount` bytes of the budget for the block; `Busy` if they do not free up."""
        amount = max(0, min(amount, self.total_bytes))
        if not await self._reserve(amount):
            raise Busy(
                f"{self.what} in progress hold {self._reserved} of {self.total_bytes} bytes;"
                " retry shortly",
                limit_bytes=self.total_bytes,
            )
        try:
            yield
        finally:
            async with self._changed:
                self._reserved -= amount
                self._changed.notify_all()

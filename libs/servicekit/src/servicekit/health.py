"""Health endpoints for probes and dashboards, and Prometheus metrics.

Every figure is gathered within `CHECK_TIMEOUT_S`: a figure that cannot be had in
time (a locked table, a slow broker) is reported as unknown instead of
holding the endpoint.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aio_pika
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import metrics
from servicekit.outbox import backlog
from servicekit.tables import timer

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

CHECK_TIMEOUT_S = 2.0
"""Longest any one check or figure may take."""

DB_WAIT_MS = int(CHECK_TIMEOUT_S * 750)
"""Lock and statement timeout of the figure queries, below `CHECK_TIMEOUT_S` so the server
ends a stuck query itself and the connection goes back to the pool in a clean state."""

_LIMIT_WAITS = text(
    "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"
)


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    return f"{type(exc).__name__}: {exc}"[:300]


async def _check_database(runtime: "Runtime") -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), runtime.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _check_broker(runtime: "Runtime") -> dict[str, Any]:
    loops = [loop for loop in (runtime.relay, runtime.consumer) if loop is not None]
    if loops:
        down = [type(loop).__name__.lower() for loop in loops if not loop.connected]
        if down:
            return {"ok": False, "error": f"not connected: {', '.join(down)}"}
        return {"ok": True}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            connection = await aio_pika.connect(runtime.settings.amqp_url)
            await connection.close()
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@contextlib.asynccontextmanager
async def _bounded_session(runtime: "Runtime") -> AsyncIterator[AsyncSession]:
    """A session whose statements give up on locks and slow plans within the check budget."""
    async with asyncio.timeout(CHECK_TIMEOUT_S), runtime.sessions() as session:
        await session.execute(_LIMIT_WAITS, {"ms": f"{DB_WAIT_MS}ms"})
        yield session


async def _outbox(runtime: "Runtime") -> dict[str, Any]:
    try:
        async with _bounded_session(runtime) as session:
            count, oldest_age = await backlog(session)
    except Exception as exc:
        return {"backlog": None, "oldest_unsent_age_s": None, "error": _error(exc)}
    return {"backlog": count, "oldest_unsent_age_s": oldest_age}


async def _timers(runtime: "Runtime") -> dict[str, Any]:
    try:
        async with _bounded_session(runtime) as session:
            due = await session.scalar(
                select(func.count()).select_from(timer).where(timer.c.due_at <= func.now())
            )
    except Exception as exc:
        return {"due": None, "error": _error(exc)}
    return {"due": int(due or 0)}


async def _queue(runtime: "Runtime") -> dict[str, Any]:
    consumer = runtime.consumer
    if consumer is None:
        return {}
    service = runtime.settings.service_name
    queue: dict[str, Any] = {"name": f"{runtime.settings.queue_prefix}.{service}"}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            queue["depth"] = await consumer.queue_depth()  # on a channel of its own
    except Exception as exc:
        queue.update(depth=None, error=_error(exc))
    return queue


def _gauge(gauge: Gauge, service: str, value: float | None) -> None:
    """Set `gauge`, or drop its series while the figure is unknown: a stale value would
    pass for a current one."""
    if value is None:
        gauge.remove(service)
    else:
        gauge.labels(service).set(value)


async def _details(runtime: "Runtime") -> dict[str, Any]:
    service = runtime.settings.service_name
    database, broker, outbox, timers, queue = await asyncio.gather(
        _check_database(runtime),
        _check_broker(runtime),
        _outbox(runtime),
        _timers(runtime),
        _queue(runtime),
    )
    age = (outbox["oldest_unsent_age_s"] or 0.0) if outbox["backlog"] is not None else None
    _gauge(metrics.OUTBOX_BACKLOG, service, outbox["backlog"])
    _gauge(metrics.OUTBOX_OLDEST_AGE, service, age)
    if queue:
        _gauge(metrics.QUEUE_DEPTH, service, queue["depth"])
    healthy = (
        database["ok"]
        and broker["ok"]
        and not any("error" in figure for figure in (outbox, timers, queue))
    )
    return {
        "status": "ok" if healthy else "degraded",
        "service": service,
        "version": runtime.settings.version,
        "uptime_s": round(time.time() - runtime.started_at, 1),
        "dependencies": {"database": database, "broker": broker},
        "outbox": outbox,
        "queue": queue,
        "timers": timers,
    }


def health_router() -> APIRouter:
    """``/healthz``, ``/readyz``, ``/health`` and ``/metrics`` (all unauthenticated)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database and broker reachable")
    async def readyz(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        database, broker = await asyncio.gather(_check_database(runtime), _check_broker(runtime))
        ready = database["ok"] and broker["ok"]
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "database": database, "broker": broker},
            status_code=200 if ready else 503,
        )

    @router.get("/health", summary="Details for dashboards")
    async def health(request: Request) -> dict[str, Any]:
        return await _details(request.app.state.runtime)

    @router.get("/metrics", summary="Prometheus metrics")
    async def prometheus(request: Request) -> Response:
        await _details(request.app.state.runtime)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

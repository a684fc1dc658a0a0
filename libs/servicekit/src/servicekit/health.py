"""Health endpoints for probes and dashboards, and Prometheus metrics."""

import asyncio
import time
from typing import TYPE_CHECKING, Any

import aio_pika
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from servicekit import metrics
from servicekit.outbox import backlog
from servicekit.tables import timer

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

CHECK_TIMEOUT_S = 2.0


async def _check_database(runtime: "Runtime") -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), runtime.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
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
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _details(runtime: "Runtime") -> dict[str, Any]:
    service = runtime.settings.service_name
    database, broker = await asyncio.gather(_check_database(runtime), _check_broker(runtime))
    outbox: dict[str, Any] = {}
    timers: dict[str, Any] = {}
    if database["ok"]:
        async with runtime.sessions() as session:
            count, oldest_age = await backlog(session)
            due = await session.scalar(
                select(func.count()).select_from(timer).where(timer.c.due_at <= func.now())
            )
        outbox = {"backlog": count, "oldest_unsent_age_s": oldest_age}
        timers = {"due": int(due or 0)}
        metrics.OUTBOX_BACKLOG.labels(service).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(service).set(oldest_age or 0.0)
    queue: dict[str, Any] = {}
    if runtime.consumer is not None:
        depth: int | None = None
        try:
            depth = await runtime.consumer.queue_depth()
        except Exception as exc:
            queue["error"] = str(exc)[:300]
        queue.update({"name": f"{runtime.settings.queue_prefix}.{service}", "depth": depth})
        if depth is not None:
            metrics.QUEUE_DEPTH.labels(service).set(depth)
    return {
        "status": "ok" if database["ok"] and broker["ok"] else "degraded",
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

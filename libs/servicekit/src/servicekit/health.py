"""Health endpoints for probes and dashboards, and Prometheus metrics.

The endpoints never touch the database or the broker themselves: a `Sampler` in
the runtime gathers every figure at most once per ``health_sample_interval_s``
and the endpoints answer from its last sample, so however often a public port
is asked, the database sees one round of figure queries per interval. A
figure that cannot be had within `CHECK_TIMEOUT_S` (a locked table, a slow
broker) is reported as unknown, and a failure is reported as a class
(``timeout``, ``unreachable``, ``error``), never as its exception text: that
goes to the log, where URLs and credentials in it reach no dashboard.

Readiness is the database alone: a broker outage is absorbed by the outbox
(requests keep being served and their events wait), so it is reported in
``/health`` and as ``klaxon_dependency_up{dependency="broker"}`` and
``klaxon_broker_connected{loop=...}`` for alerting, not by taking the service
out of rotation.
"""

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from servicekit.sampler import CHECK_TIMEOUT_S, Sample

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

__all__ = ["CHECK_TIMEOUT_S", "health_router"]


def _stale_after_s(runtime: "Runtime") -> float:
    """A sample older than this means the sampler is stuck: the service is not ready."""
    return 3 * runtime.settings.health_sample_interval_s + 2 * CHECK_TIMEOUT_S


async def _sample(runtime: "Runtime") -> Sample | None:
    """The latest sample; waits for the first one (at most one check budget) after start."""
    return await runtime.sampler.latest(wait_s=CHECK_TIMEOUT_S + 1)


def _body(runtime: "Runtime", sample: Sample | None) -> dict[str, Any]:
    if sample is None:
        return {
            "status": "degraded",
            "service": runtime.settings.service_name,
            "version": runtime.settings.version,
            "uptime_s": round(time.time() - runtime.started_at, 1),
            "sample_age_s": None,
            "dependencies": {"database": {"ok": False, "error": "not sampled yet"}},
        }
    return {
        **sample.body,
        "uptime_s": round(time.time() - runtime.started_at, 1),
        "sample_age_s": round(sample.age_s, 2),
    }


def _readiness(runtime: "Runtime", sample: Sample | None) -> tuple[bool, dict[str, Any]]:
    if sample is None:
        return False, {"ok": False, "error": "not sampled yet"}
    database: Mapping[str, Any] = sample.body["dependencies"]["database"]
    if sample.age_s > _stale_after_s(runtime):
        return False, {"ok": False, "error": "stale sample"}
    return bool(database["ok"]), dict(database)


def health_router() -> APIRouter:
    """``/healthz``, ``/readyz``, ``/health`` and ``/metrics`` (all unauthenticated)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the database answers (a broker outage is reported in /health)",
    )
    async def readyz(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        sample = await _sample(runtime)
        ready, database = _readiness(runtime, sample)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "database": database},
            status_code=200 if ready else 503,
        )

    @router.get("/health", summary="Details for dashboards, sampled every few seconds")
    async def health(request: Request) -> dict[str, Any]:
        runtime = request.app.state.runtime
        return _body(runtime, await _sample(runtime))

    @router.get("/metrics", summary="Prometheus metrics, sampled every few seconds")
    async def prometheus(request: Request) -> Response:
        await _sample(request.app.state.runtime)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

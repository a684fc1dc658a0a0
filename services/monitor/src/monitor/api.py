"""The /v1 REST API: thin routes that parse, call one use case, commit and respond."""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.exc import DBAPIError

from monitor import apply as apply_uc
from monitor import heartbeats, monitors, patch_windows, results
from monitor.schemas import (
    ONE_LINE,
    SLUG,
    TAG,
    ApplyResult,
    CheckResultRead,
    MonitorPage,
    MonitorRead,
    MonitorSpec,
    PatchWindowRead,
    PatchWindowSpec,
    UptimeRead,
    VerificationRunRead,
)
from monitor.settings import Settings
from servicekit.api import StrictBool, UtcDatetime, json_body, json_request_body, media_type
from servicekit.api import read_capped as read_body
from servicekit.api_openapi import error_responses
from servicekit.auth import Principal, require_scope
from servicekit.deps import RuntimeDep, SessionDep, commit

Reader = Annotated[Principal, Depends(require_scope("monitors:read", "monitors:write"))]
Writer = Annotated[Principal, Depends(require_scope("monitors:write"))]
MonitorId = Annotated[uuid.UUID, Path(description="The monitor's id.")]
WindowId = Annotated[uuid.UUID, Path(description="The patch window's id.")]

READ_ERRORS = error_responses(401, 403, 404, 422, 503)
WRITE_ERRORS = error_responses(401, 403, 404, 409, 422, 503)

APPLY_ATTEMPTS = 3
"""An apply or a delete that deadlocks with the scheduler recording results (both lock
monitors and their check states) is run again from the start, in a new transaction."""

router = APIRouter(prefix="/v1")


async def get_settings(request: Request) -> Settings:
    """The monitor settings of the running service."""
    settings: Settings = request.app.state.runtime.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.post(
    "/monitors",
    status_code=201,
    response_model=MonitorRead,
    responses=WRITE_ERRORS,
    openapi_extra=json_request_body(MonitorSpec),
    tags=["monitors"],
)
async def create_monitor(
    _: Writer,
    session: SessionDep,
    settings: SettingsDep,
    spec: Annotated[MonitorSpec, Depends(json_body(MonitorSpec))],
) -> MonitorRead:
    """Create a monitor; its first check runs at once in every live region."""
    created = await monitors.create(session, spec, settings)
    await commit(session)
    return created


@router.get("/monitors", response_model=MonitorPage, responses=READ_ERRORS, tags=["monitors"])
async def list_monitors(
    _: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        str | None,
        Query(max_length=200, pattern=ONE_LINE, description="next_after of the last page"),
    ] = None,
    product: Annotated[str | None, Query(max_length=100, pattern=SLUG)] = None,
    tag: Annotated[str | None, Query(max_length=50, pattern=TAG)] = None,
    state: Literal["pending", "up", "degraded", "down", "paused"] | None = None,
) -> MonitorPage:
    """Monitors by name, a page at a time."""
    return await monitors.list_page(
        session, limit=limit, after=after, product=product, tag=tag, state=state
    )


@router.post(
    "/monitors/apply",
    response_model=ApplyResult,
    responses=error_responses(401, 403, 413, 422, 503),
    tags=["monitors"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ApplyDocument"}},
                "application/yaml": {"schema": {"$ref": "#/components/schemas/ApplyDocument"}},
            },
        }
    },
)
async def apply_monitors(
    _: Writer,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    dry_run: Annotated[StrictBool, Query()] = False,
    prune: Annotated[StrictBool, Query()] = False,
) -> ApplyResult:
    """Make the monitors (and patch windows, if given) match a YAML or JSON document."""
    raw = await read_body(request, settings.apply_max_bytes)
    doc = apply_uc.parse_document(raw, media_type(request))
    for attempt in range(APPLY_ATTEMPTS):
        try:
            async with runtime.sessions() as session:
                result = await apply_uc.apply(session, doc, settings, dry_run=dry_run, prune=prune)
                if not dry_run:
                    await commit(session)
            return result
        except DBAPIError as exc:
            if attempt + 1 == APPLY_ATTEMPTS or not apply_uc.is_deadlock(exc):
                raise
    raise AssertionError("unreachable")


@router.get(
    "/monitors/{monitor_id}", response_model=MonitorRead, responses=READ_ERRORS, tags=["monitors"]
)
async def get_monitor(_: Reader, session: SessionDep, monitor_id: MonitorId) -> MonitorRead:
    """One monitor with each region's state and its certificate's expiry."""
    return await monitors.get(session, monitor_id)


@router.put(
    "/monitors/{monitor_id}",
    response_model=MonitorRead,
    responses=WRITE_ERRORS,
    openapi_extra=json_request_body(MonitorSpec),
    tags=["monitors"],
)
async def replace_monitor(
    _: Writer,
    session: SessionDep,
    settings: SettingsDep,
    monitor_id: MonitorId,
    spec: Annotated[MonitorSpec, Depends(json_body(MonitorSpec))],
) -> MonitorRead:
    """Replace a monitor's definition (its state and history are kept)."""
    replaced = await monitors.replace(session, monitor_id, spec, settings)
    await commit(session)
    return replaced


@router.delete("/monitors/{monitor_id}", status_code=204, responses=WRITE_ERRORS, tags=["monitors"])
async def delete_monitor(_: Writer, runtime: RuntimeDep, monitor_id: MonitorId) -> Response:
    """Delete a monitor."""
    for attempt in range(APPLY_ATTEMPTS):
        try:
            async with runtime.sessions() as session:
                await monitors.remove(session, monitor_id)
                await commit(session)
            return Response(status_code=204)
        except DBAPIError as exc:
            if attempt + 1 == APPLY_ATTEMPTS or not apply_uc.is_deadlock(exc):
                raise
    raise AssertionError("unreachable")


@router.post(
    "/monitors/{monitor_id}/pause",
    response_model=MonitorRead,
    responses=WRITE_ERRORS,
    tags=["monitors"],
)
async def pause_monitor(
    _: Writer, session: SessionDep, settings: SettingsDep, monitor_id: MonitorId
) -> MonitorRead:
    """Stop checking a monitor (it publishes nothing while paused)."""
    paused = await monitors.set_paused(session, monitor_id, True, settings)
    await commit(session)
    return paused


@router.post(
    "/monitors/{monitor_id}/resume",
    response_model=MonitorRead,
    responses=WRITE_ERRORS,
    tags=["monitors"],
)
async def resume_monitor(
    _: Writer, session: SessionDep, settings: SettingsDep, monitor_id: MonitorId
) -> MonitorRead:
    """Check a paused monitor again, from pending."""
    resumed = await monitors.set_paused(session, monitor_id, False, settings)
    await commit(session)
    return resumed


@router.get(
    "/monitors/{monitor_id}/results",
    response_model=list[CheckResultRead],
    responses=READ_ERRORS,
    tags=["monitors"],
)
async def monitor_results(
    _: Reader,
    session: SessionDep,
    monitor_id: MonitorId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CheckResultRead]:
    """The monitor's latest checks, newest first."""
    return await results.recent(session, monitor_id, limit)


@router.get(
    "/monitors/{monitor_id}/uptime",
    response_model=UptimeRead,
    responses=READ_ERRORS,
    tags=["monitors"],
)
async def monitor_uptime(
    _: Reader,
    session: SessionDep,
    monitor_id: MonitorId,
    window: Literal["24h", "7d", "30d", "90d"] = "24h",
) -> UptimeRead:
    """Uptime % and latency percentiles over a window."""
    return await results.uptime(session, monitor_id, window)


@router.api_route(
    "/heartbeats/{token}",
    methods=["GET", "POST"],
    responses=error_responses(
        404, 422, 429, 503, overrides={429: "Pinged again too soon (see retry_after_s)"}
    ),
    tags=["heartbeats"],
)
async def heartbeat_ping(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Path(min_length=10, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    status: Literal["ok", "fail"] = "ok",
) -> dict[str, str]:
    """A heartbeat's ping (public: the token is the secret). ``?status=fail`` reports a
    failure at once."""
    limiter: heartbeats.PingLimiter | None = getattr(request.app.state, "ping_limiter", None)
    if limiter is None:
        limiter = request.app.state.ping_limiter = heartbeats.PingLimiter(
            settings.heartbeat_min_gap_s
        )
    limiter.admit(token)
    state = await heartbeats.ping(session, token, failed=status == "fail", settings=settings)
    await commit(session)
    return {"status": "received", "monitor_state": state}


@router.post(
    "/patch-windows",
    status_code=201,
    response_model=PatchWindowRead,
    responses=WRITE_ERRORS,
    openapi_extra=json_request_body(PatchWindowSpec),
    tags=["patch windows"],
)
async def create_patch_window(
    _: Writer,
    session: SessionDep,
    settings: SettingsDep,
    spec: Annotated[PatchWindowSpec, Depends(json_body(PatchWindowSpec))],
) -> PatchWindowRead:
    """Create a patch window: when it closes, each covered product must have seen a failure."""
    created = await patch_windows.create(session, spec, settings)
    await commit(session)
    return created


@router.get(
    "/patch-windows",
    response_model=list[PatchWindowRead],
    responses=READ_ERRORS,
    tags=["patch windows"],
)
async def list_patch_windows(_: Reader, session: SessionDep) -> list[PatchWindowRead]:
    """Every patch window with its next occurrence."""
    return await patch_windows.list_all(session)


@router.get(
    "/patch-windows/{window_id}",
    response_model=PatchWindowRead,
    responses=READ_ERRORS,
    tags=["patch windows"],
)
async def get_patch_window(_: Reader, session: SessionDep, window_id: WindowId) -> PatchWindowRead:
    """One patch window."""
    return await patch_windows.get(session, window_id)


@router.delete(
    "/patch-windows/{window_id}", status_code=204, responses=WRITE_ERRORS, tags=["patch windows"]
)
async def delete_patch_window(_: Writer, session: SessionDep, window_id: WindowId) -> Response:
    """Delete a patch window (its past verification runs are kept)."""
    await patch_windows.remove(session, window_id)
    await commit(session)
    return Response(status_code=204)


@router.get(
    "/verification/runs",
    response_model=list[VerificationRunRead],
    responses=READ_ERRORS,
    tags=["patch windows"],
)
async def verification_runs(
    _: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: UtcDatetime | None = None,
    product: Annotated[str | None, Query(max_length=100, pattern=SLUG)] = None,
) -> list[VerificationRunRead]:
    """Every patch window's verdict per product, newest first, with its evidence."""
    return await patch_windows.runs(session, limit=limit, before=before, product=product)


@router.get(
    "/verification/runs.csv",
    responses={**READ_ERRORS, 200: {"content": {"text/csv": {}}}},
    tags=["patch windows"],
)
async def verification_runs_csv(
    _: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    before: UtcDatetime | None = None,
    product: Annotated[str | None, Query(max_length=100, pattern=SLUG)] = None,
) -> Response:
    """The verification runs as CSV, for an auditor."""
    items = await patch_windows.runs(session, limit=limit, before=before, product=product)
    return Response(
        patch_windows.runs_csv(items),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="verification-runs.csv"'},
    )

"""One service's running parts, built in the FastAPI lifespan and kept on app.state.

`Runtime` owns the engine, the session factory, the service's resources and the
background loops (outbox relay, consumer, timer worker, health sampler, and the
service's own); `create_service_app` wires them with the health endpoints,
problem+json errors and correlation ids.

A service's own clients (an HTTP client, an SMTP pool) are *resources*:
``resources={"smtp": factory}``, where ``factory(settings)`` returns an async context
manager. Every resource is entered before any loop starts and exited, in reverse
order, once the loops have stopped (or, past `STOP_TIMEOUT_S`, been left behind:
see `Runtime.stop`); its value is ``runtime.resources["smtp"]``.
A service's own background work is a *loop*: ``loops={"scheduler": fn}``, an
``async def fn(runtime)`` run until shutdown, rerun with backoff when it fails or
returns (`servicekit.reconnect.run_forever`).

Reaching the runtime: a route takes ``runtime: RuntimeDep`` (`servicekit.deps`); an
event handler, a timer handler or a loop calls `current_runtime()`, which answers in
every task the runtime started (the loops and everything they start).
"""

import asyncio
import contextvars
import functools
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.consumer import Consumer, Handler
from servicekit.db import create_engine, session_factory
from servicekit.deliveries import OutcomeHandler, SenderFactory, prune_deliveries
from servicekit.delivery_worker import DeliveryWorker
from servicekit.health import health_router
from servicekit.inbox import prune_inbox
from servicekit.logging import correlation_id, correlation_uuid
from servicekit.outbox import Relay
from servicekit.problems import install_problem_handlers
from servicekit.reconnect import run_forever
from servicekit.sampler import PLUMBING_FIGURES, Figure, Sampler
from servicekit.settings import ServiceSettings
from servicekit.timers import TimerHandler, TimerWorker

log = logging.getLogger(__name__)

Prune = Callable[[AsyncSession, int], Awaitable[int]]
"""Deletes up to so many rows a service no longer needs, in the session's transaction;
returns how many it deleted. The maintenance loop runs each every
``maintenance_interval_s``, a batch per transaction until a batch comes back short."""

PRUNE_BATCH = 5000

STOP_TIMEOUT_S = 3.0
"""How long `Runtime.stop` waits for its loops to end after cancelling them."""

Loop = Callable[["Runtime"], Awaitable[None]]
"""``async def loop(runtime)``: a service's own background work, run until shutdown."""

ResourceFactory = Callable[[Any], AbstractAsyncContextManager[Any]]
"""``factory(settings)``: an async context manager whose value is the resource (a client,
a pool); entered before the loops start, exited after they stop."""

_current: contextvars.ContextVar["Runtime"] = contextvars.ContextVar("klaxon_runtime")


def current_runtime() -> "Runtime":
    """The runtime whose loop (consumer, timer worker, relay, a service loop) is running.

    For event and timer handlers and service loops; routes take `servicekit.deps.RuntimeDep`.
    Raises LookupError outside a runtime's tasks.
    """
    return _current.get()


class Runtime:
    """Engine, sessions and background loops of one service process."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        handlers: Mapping[str, Handler] | None = None,
        timer_handlers: Mapping[str, TimerHandler] | None = None,
        prunes: Mapping[str, Prune] | None = None,
        senders: Mapping[str, SenderFactory] | None = None,
        delivery_outcomes: Mapping[str, OutcomeHandler] | None = None,
        loops: Mapping[str, Loop] | None = None,
        resources: Mapping[str, ResourceFactory] | None = None,
        figures: Mapping[str, Figure] | None = None,
    ) -> None:
        self.settings = settings
        self.loops: dict[str, Loop] = dict(loops or {})
        self.resource_factories: dict[str, ResourceFactory] = dict(resources or {})
        self.resources: dict[str, Any] = {}
        """The open resources by name (empty before `start` and after `stop`)."""
        self._exit_stack = AsyncExitStack()
        self.prunes: dict[str, Prune] = {
            "inbox rows": functools.partial(prune_inbox, older_than_s=settings.inbox_retention_s),
            "sent and failed deliveries": functools.partial(
                prune_deliveries, older_than_s=settings.delivery_retention_s
            ),
            **(prunes or {}),
        }
        self.engine = create_engine(settings)
        self.sessions = session_factory(self.engine)
        self.started_at = time.time()
        self.relay = Relay(settings) if settings.relay_enabled else None
        self.consumer = (
            Consumer(settings, self.sessions, handlers)
            if settings.consumer_enabled and handlers
            else None
        )
        self.timers = (
            TimerWorker(settings, self.sessions, timer_handlers)
            if settings.timers_enabled and timer_handlers
            else None
        )
        self._senders = dict(senders or {})
        self._delivery_outcomes = dict(delivery_outcomes or {})
        self.deliveries: DeliveryWorker | None = None
        """Built at start, so senders can use what the runtime has opened."""
        self.sampler = Sampler(self, {**PLUMBING_FIGURES, **(figures or {})})
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the resources, then start the background loops.

        A resource that fails to open closes those opened before it and fails the
        start. Everything built at start-up is moved out of the garbage collector's
        sight first (``gc.freeze``), so full collections stay short and do not
        stall requests.
        """
        try:
            for name, factory in self.resource_factories.items():
                self.resources[name] = await self._exit_stack.enter_async_context(
                    factory(self.settings)
                )
        except BaseException:
            await self._close_resources()
            raise
        gc.collect()
        gc.freeze()
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        if self.relay:
            loops.append(("relay", self.relay.run))
        if self.consumer:
            loops.append(("consumer", self.consumer.run))
        if self.timers:
            loops.append(("timers", self.timers.run))
        if self.settings.deliveries_enabled and self._senders:
            self.deliveries = DeliveryWorker(
                self.settings,
                self.sessions,
                {channel: factory(self) for channel, factory in self._senders.items()},
                self._delivery_outcomes,
            )
            loops.append(("deliveries", self.deliveries.run))
        loops.append(("maintenance", self._maintain))
        loops.append(("health sampler", self.sampler.run))
        for name, loop in self.loops.items():
            loops.append((name, functools.partial(self._run_loop, name, loop)))
        token = _current.set(self)  # copied into each task's context, then undone here
        try:
            for name, run in loops:
                self._tasks.append(
                    asyncio.create_task(run(), name=f"{self.settings.service_name}-{name}")
                )
        finally:
            _current.reset(token)

    async def _run_loop(self, name: str, loop: Loop) -> None:
        """Run a service loop until cancelled; rerun it with backoff when it fails or returns."""
        await run_forever(functools.partial(loop, self), name, self.settings)

    async def _maintain(self) -> None:
        """Run every prune now and then; one that fails waits for the next round and
        holds up no other."""

        async def prune_forever() -> None:
            while True:
                for what, prune in self.prunes.items():
                    try:
                        await self.prune(what, prune)
                    except Exception:
                        log.warning(
                            "pruning %s failed; next try in the next round", what, exc_info=True
                        )
                await asyncio.sleep(self.settings.maintenance_interval_s)

        await run_forever(prune_forever, "maintenance", self.settings)

    async def prune(self, what: str, prune: Prune) -> int:
        """Run `prune` a batch per transaction, until a batch comes back short; returns how
        many rows it deleted."""
        total = 0
        while True:
            async with self.sessions() as session, session.begin():
                pruned = await prune(session, PRUNE_BATCH)
            total += pruned
            if pruned < PRUNE_BATCH:
                break
        if total:
            log.info("pruned %d %s", total, what)
        return total

    async def _close_resources(self) -> None:
        """Exit every open resource, last opened first; a failure to close is logged."""
        try:
            await self._exit_stack.aclose()
        except Exception:
            log.exception("closing %s's resources failed", self.settings.service_name)
        finally:
            self._exit_stack = AsyncExitStack()
            self.resources.clear()

    async def stop(self) -> None:
        """Stop the loops (within `STOP_TIMEOUT_S`), then close the resources and the
        database pool.

        A loop that has not stopped by then (stuck in a handler or a prune that
        ignores cancellation) is logged with where it is, and left behind: the
        process is shutting down, and an orchestrator's kill must not be what ends it.
        """
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a loop's last failure was logged by it
            for task in pending:
                log.warning(
                    "%s did not stop within %.0f s; left behind at:\n%s",
                    task.get_name(),
                    STOP_TIMEOUT_S,
                    _awaiting(task),
                )
        self._tasks.clear()
        await self._close_resources()
        await self.engine.dispose()


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where `task` waits: its chain of awaits, outermost first, a line each."""
    lines = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        awaited = getattr(awaited, "cr_await", None)
    return "\n".join(lines)


class CorrelationMiddleware:
    """Tags each request's logs and events with its X-Correlation-ID and echoes it.

    The id is a UUID, so it can become the ``correlation_id`` of the events the request
    publishes; a header that is absent or not a UUID gets a new one (the response says
    which). Plain ASGI rather than BaseHTTPMiddleware: it adds next to nothing per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = correlation_uuid(Headers(scope=scope).get("x-correlation-id"))
        cid = str(given or uuid.uuid4())
        token = correlation_id.set(cid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Correlation-ID", cid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    handlers: Mapping[str, Handler] | None = None,
    timer_handlers: Mapping[str, TimerHandler] | None = None,
    prunes: Mapping[str, Prune] | None = None,
    senders: Mapping[str, SenderFactory] | None = None,
    delivery_outcomes: Mapping[str, OutcomeHandler] | None = None,
    loops: Mapping[str, Loop] | None = None,
    resources: Mapping[str, ResourceFactory] | None = None,
    figures: Mapping[str, Figure] | None = None,
    description: str = "",
) -> FastAPI:
    """A FastAPI app with the runtime in its lifespan, health endpoints and problem+json.

    `loops`, `resources` and `figures` are the service's own background loops, clients and
    ``/health`` figures (see the module docstring and `servicekit.sampler`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(
            settings,
            handlers=handlers,
            timer_handlers=timer_handlers,
            prunes=prunes,
            senders=senders,
            delivery_outcomes=delivery_outcomes,
            loops=loops,
            resources=resources,
            figures=figures,
        )
        app.state.runtime = runtime
        try:  # a start that fails half-way stops what it started
            await runtime.start()
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version=settings.version, description=description, lifespan=lifespan)
    install_problem_handlers(app)

    app.add_middleware(CorrelationMiddleware)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    return app

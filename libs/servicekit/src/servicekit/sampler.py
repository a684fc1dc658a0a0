"""The figures behind ``/health``, ``/readyz`` and ``/metrics``, gathered in the background.

Guarantee: the database and the broker are asked for figures at most once per
``health_sample_interval_s`` per process, whatever the endpoints are asked;
each figure is had within `CHECK_TIMEOUT_S` or reported unknown; a failure is
reported as ``timeout``, ``unreachable`` or ``error`` and its details are
logged (once when it starts, once when it ends), never returned.

A service adds its own figures (``create_service_app(..., figures={"name": fn})``,
an ``async def fn(session) -> Mapping``); servicekit's own are in
`PLUMBING_FIGURES`. Each numeric field of a figure is exported as
``klaxon_figure{service, figure, field}``; a figure that fails drops its series.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aio_pika
import asyncpg
from aio_pika.exceptions import AMQPError
from prometheus_client import Gauge
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import metrics
from servicekit.db import is_transient
from servicekit.deliveries import delivery_backlog
from servicekit.outbox import backlog
from servicekit.parking import parked_counts
from servicekit.tables import timer

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
"""Longest any one check or figure may take."""

DB_WAIT_MS = int(CHECK_TIMEOUT_S * 750)
"""Lock and statement timeout of the figure queries, below `CHECK_TIMEOUT_S` so the server
ends a stuck query itself and the connection goes back to the pool in a clean state."""

_LIMIT_WAITS = text(
    "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"
)

Figure = Callable[[AsyncSession], Awaitable[Mapping[str, Any]]]
"""``async def figure(session) -> {"field": value, ...}``: read-only figures for ``/health``,
run in a session whose statements give up within the check budget. Never commits."""


async def outbox_figure(session: AsyncSession) -> Mapping[str, Any]:
    """Unsent events and the age of the oldest one."""
    count, oldest_age = await backlog(session)
    return {"backlog": count, "oldest_unsent_age_s": oldest_age}


async def timers_figure(session: AsyncSession) -> Mapping[str, Any]:
    """Timers due now (not yet fired; parked ones aside)."""
    due = await session.scalar(
        select(func.count())
        .select_from(timer)
        .where(timer.c.due_at <= func.now(), timer.c.parked_at.is_(None))
    )
    return {"due": int(due or 0)}


PLUMBING_FIGURES: dict[str, Figure] = {
    "outbox": outbox_figure,
    "timers": timers_figure,
    "deliveries": delivery_backlog,
    "parked": parked_counts,
}
"""Figures every service reports."""

_TIMEOUTS = (TimeoutError, asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (SQLAlchemy's ``orig``, ``__cause__``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


def classify(exc: BaseException) -> str:
    """What kind of failure `exc` is, in words safe to publish: timeout, unreachable, error."""
    chain = _chain(exc)
    if any(isinstance(e, _TIMEOUTS) for e in chain):
        return "timeout"
    if any(isinstance(e, OSError | AMQPError) or is_transient(e) for e in chain):
        return "unreachable"
    return "error"


_RESERVED = frozenset(
    {"status", "service", "version", "dependencies", "queue", "uptime_s", "sample_age_s"}
)
"""Fields of the ``/health`` body a figure may not be named after."""


@dataclass(frozen=True)
class Sample:
    """One round of figures: the ``/health`` body without its live fields."""

    body: dict[str, Any]
    taken_at: float = field(default_factory=time.monotonic)

    @property
    def age_s(self) -> float:
        """Seconds since it was taken."""
        return time.monotonic() - self.taken_at


class Sampler:
    """Gathers the runtime's figures every ``health_sample_interval_s``; keeps the last."""

    def __init__(self, runtime: "Runtime", figures: Mapping[str, Figure]) -> None:
        clashing = sorted(set(figures) & _RESERVED)
        if clashing:
            raise ValueError(f"figure names {clashing} are taken by /health's own fields")
        self.runtime = runtime
        self.figures = dict(figures)
        self.service = runtime.settings.service_name
        self._latest: Sample | None = None
        self._first = asyncio.Event()
        self._failing: dict[str, str] = {}
        self._exported: set[tuple[str, str]] = set()

    async def run(self) -> None:
        """Sample until cancelled; a round that fails is logged and the next one comes."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("health sampling failed")
            await asyncio.sleep(self.runtime.settings.health_sample_interval_s)

    async def latest(self, *, wait_s: float) -> Sample | None:
        """The last sample; before the first, wait up to `wait_s` for it (None if none yet)."""
        if self._latest is None:
            try:
                async with asyncio.timeout(wait_s):
                    await self._first.wait()
            except TimeoutError:
                return None
        return self._latest

    async def refresh(self) -> Sample:
        """Take one sample now and keep it."""
        database, broker, queue, *figures = await asyncio.gather(
            self._database(),
            self._broker(),
            self._queue(),
            *(self._figure(name, figure) for name, figure in self.figures.items()),
        )
        named = dict(zip(self.figures, figures, strict=True))
        healthy = (
            database["ok"]
            and broker["ok"]
            and not any("error" in figure for figure in (queue, *figures))
        )
        body = {
            "status": "ok" if healthy else "degraded",
            "service": self.service,
            "version": self.runtime.settings.version,
            "dependencies": {"database": database, "broker": broker},
            "queue": queue,
            **named,
        }
        self._export(database, broker, queue, named)
        self._latest = Sample(body)
        self._first.set()
        return self._latest

    def _failed(self, what: str, exc: BaseException) -> dict[str, Any]:
        """Classify a failure; log its details when `what` starts failing or fails anew."""
        kind = classify(exc)
        if self._failing.get(what) != kind:
            log.warning("health: %s is %s", what, kind, exc_info=exc)
        else:
            log.debug("health: %s still %s (%s)", what, kind, type(exc).__name__)
        self._failing[what] = kind
        return {"error": kind}

    def _succeeded(self, what: str) -> None:
        if self._failing.pop(what, None) is not None:
            log.info("health: %s recovered", what)

    async def _database(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S), self.runtime.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            return {"ok": False, **self._failed("database", exc)}
        self._succeeded("database")
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def _broker(self) -> dict[str, Any]:
        """The broker as the loops that use it see it; probed only when no loop does."""
        loops = {
            name: loop.connected
            for name, loop in (("relay", self.runtime.relay), ("consumer", self.runtime.consumer))
            if loop is not None
        }
        if loops:
            ok = all(loops.values())
            return (
                {"ok": True, "loops": loops}
                if ok
                else {"ok": False, "loops": loops, "error": "not connected"}
            )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                connection = await aio_pika.connect(self.runtime.settings.amqp_url)
                await connection.close()
        except Exception as exc:
            return {"ok": False, **self._failed("broker", exc)}
        self._succeeded("broker")
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def _queue(self) -> dict[str, Any]:
        consumer = self.runtime.consumer
        if consumer is None:
            return {}
        settings = self.runtime.settings
        queue: dict[str, Any] = {"name": f"{settings.queue_prefix}.{settings.service_name}"}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                queue["depth"] = await consumer.queue_depth()  # on a channel of its own
        except Exception as exc:
            queue.update(depth=None, **self._failed("queue depth", exc))
        else:
            self._succeeded("queue depth")
        return queue

    @asynccontextmanager
    async def _bounded_session(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements give up on locks and slow plans within the budget."""
        async with asyncio.timeout(CHECK_TIMEOUT_S), self.runtime.sessions() as session:
            await session.execute(_LIMIT_WAITS, {"ms": f"{DB_WAIT_MS}ms"})
            yield session

    async def _figure(self, name: str, figure: Figure) -> dict[str, Any]:
        try:
            async with self._bounded_session() as session:
                values = dict(await figure(session))
        except Exception as exc:
            return self._failed(name, exc)
        self._succeeded(name)
        return values

    def _export(
        self,
        database: Mapping[str, Any],
        broker: Mapping[str, Any],
        queue: Mapping[str, Any],
        figures: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Set the gauges from a sample; a figure now unknown drops its series."""
        service = self.service
        metrics.DEPENDENCY_UP.labels(service, "database").set(1 if database["ok"] else 0)
        metrics.DEPENDENCY_UP.labels(service, "broker").set(1 if broker["ok"] else 0)
        for loop, connected in broker.get("loops", {}).items():
            metrics.BROKER_CONNECTED.labels(service, loop).set(1 if connected else 0)
        outbox = figures.get("outbox", {})
        _set(metrics.OUTBOX_BACKLOG, (service,), outbox.get("backlog"))
        age = (outbox.get("oldest_unsent_age_s") or 0.0) if "backlog" in outbox else None
        _set(metrics.OUTBOX_OLDEST_AGE, (service,), age)
        if queue:
            _set(metrics.QUEUE_DEPTH, (service,), queue.get("depth"))
        exported: set[tuple[str, str]] = set()
        for name, values in figures.items():
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics.FIGURE.labels(service, name, key).set(value)
                    exported.add((name, key))
        for name, key in self._exported - exported:
            _set(metrics.FIGURE, (service, name, key), None)
        self._exported = exported


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Set `gauge`, or drop its series while the figure is unknown: a stale value would
    pass for a current one."""
    if value is None:
        with suppress(KeyError):
            gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(value)

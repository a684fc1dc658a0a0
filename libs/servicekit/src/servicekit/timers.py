"""Durable timers: rows with a ``due_at``, fired by any replica at or after it.

Guarantee: a timer scheduled in a committed transaction fires at least once, at
or after its ``due_at``, even across restarts; normally within one poll
(``timer_poll_interval_s``) of it, while the worker has a free slot. A worker
claims due timers by moving their ``due_at`` forward by a lease
(``timer_lease_s``) and committing at once (``FOR UPDATE SKIP LOCKED``, so
replicas share them and no row stays locked while a handler runs). It runs up to
``timer_concurrency`` handlers at once, each in its own transaction and cut off
after ``timer_handler_timeout_s``; a handler's commit deletes its timer if it is
still the one claimed, so a firing that commits does not fire again, while a
handler that rescheduled its own timer (a repeating escalation) keeps it. A
worker that dies mid-handler leaves its timers to fire again once their lease
ends. A handler that commits while its worker loses track of it (a crash, a
commit whose acknowledgement was lost) can run again, so handlers must be
idempotent.

A handler that raises or times out is rolled back and its timer retried with
exponential backoff capped at ``timer_retry_max_s``, its attempts and last
error recorded; after ``timer_max_attempts`` the timer is parked: kept, never
claimed, counted in ``/health`` and ``klaxon_parkings_total``, listed and retried with
the ``parked`` command (`servicekit.parking`). If the failure cannot be recorded,
the timer is still pushed back without the error text, and failing that its
lease runs out, so a timer that keeps failing never holds back the others.
Scheduling the same ``(kind, key)`` again moves the one timer (and unparks it).
"""

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, column, delete, func, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit import metrics
from servicekit.reconnect import run_forever
from servicekit.retry import backoff_s, error_text
from servicekit.settings import ServiceSettings
from servicekit.tables import timer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTimer:
    """A timer being fired. ``due_at`` is when it was due as it was claimed (after a retry,
    the retry's time; after a worker died with it, the end of that worker's lease)."""

    id: uuid.UUID
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int


TimerHandler = Callable[[AsyncSession, DueTimer], Awaitable[None]]
"""``async def fire(session, timer)``: do the work, never commit; idempotent (see above)."""


async def schedule(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Create the ``(kind, key)`` timer, or move it to `due_at` with `payload`."""
    values = {"kind": kind, "key": key, "due_at": due_at, "payload": dict(payload or {})}
    stmt = insert(timer).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[timer.c.kind, timer.c.key],
            set_={
                "due_at": due_at,
                "payload": stmt.excluded.payload,
                "attempts": 0,
                "last_error": None,
                "parked_at": None,
            },
        )
    )


async def cancel(session: AsyncSession, *, kind: str, key: str) -> bool:
    """Remove the ``(kind, key)`` timer; True if there was one."""
    result = await session.execute(
        delete(timer).where(timer.c.kind == kind, timer.c.key == key).returning(timer.c.id)
    )
    return result.first() is not None


def _retry_delay(settings: ServiceSettings, attempts: int) -> timedelta:
    """The wait before the next try of a timer that has failed `attempts` times before."""
    return timedelta(
        seconds=backoff_s(
            attempts + 1, base_s=settings.timer_retry_base_s, max_s=settings.timer_retry_max_s
        )
    )


@dataclass(frozen=True)
class _Claim:
    """A timer this worker claimed, and the lease (its ``due_at`` now) that says so."""

    due: DueTimer
    lease_until: datetime
    claimed_at: float
    """`time.monotonic` when the lease was taken."""


_AUTOCOMMIT: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
"""A single statement on its own: one round trip, no BEGIN and COMMIT around it."""


class TimerWorker:
    """Fires due timers of the kinds it has handlers for, several at once.

    It keeps up to ``timer_concurrency`` handlers running and up to twice as many
    claimed timers waiting for a slot, claimed in batches of at least
    ``timer_concurrency``, so the handlers do not wait for a claim's round trip. A
    waiting timer whose lease could run out before its handler's timeout is handed
    back (made due again) instead of run, and so is every waiting timer when the
    worker stops.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, TimerHandler],
    ) -> None:
        if settings.timer_lease_s <= settings.timer_handler_timeout_s:
            raise ValueError(
                f"timer_lease_s ({settings.timer_lease_s:g}) must exceed"
                f" timer_handler_timeout_s ({settings.timer_handler_timeout_s:g}),"
                " or a timer still being handled could be claimed again"
            )
        self.settings = settings
        self.sessions = sessions
        self.handlers = dict(handlers)
        self._running: set[asyncio.Task[None]] = set()
        self._waiting: collections.deque[_Claim] = collections.deque()
        self._claim_params = {
            "kinds": sorted(self.handlers),
            "lease_s": settings.timer_lease_s,
        }

    async def run(self) -> None:
        """Fire timers until cancelled; survive database outages."""
        try:
            await run_forever(self._poll, "timer worker", self.settings)
        finally:
            running = list(self._running)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._hand_back(self._waiting)

    async def _poll(self) -> None:
        """Keep the slots busy: claim due timers while there is room, run them as slots
        free up; with nothing left to claim, look again after a poll interval."""
        settings = self.settings
        concurrency = settings.timer_concurrency
        while True:
            await self._start_waiting()
            room = 3 * concurrency - len(self._running) - len(self._waiting)
            exhausted = False
            if room >= concurrency or (room > 0 and not self._waiting):
                wanted = min(room, settings.timer_batch_size)
                claimed = await self._claim(wanted)
                self._waiting.extend(claimed)
                exhausted = len(claimed) < wanted
                await self._start_waiting()
            if self._running:
                await asyncio.wait(
                    self._running,
                    timeout=settings.timer_poll_interval_s if exhausted else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            elif exhausted:
                await asyncio.sleep(settings.timer_poll_interval_s)

    async def _start_waiting(self) -> None:
        """Start waiting timers in the free slots; hand back those whose lease is too short."""
        stale: list[_Claim] = []
        while self._waiting and len(self._running) < self.settings.timer_concurrency:
            claim = self._waiting.popleft()
            left_s = self.settings.timer_lease_s - (time.monotonic() - claim.claimed_at)
            if left_s <= self.settings.timer_handler_timeout_s:  # it could outlive its lease
                stale.append(claim)
                continue
            task = asyncio.create_task(
                self._fire(claim), name=f"timer {claim.due.kind}/{claim.due.key}"
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if stale:
            await self._hand_back(stale)

    async def fire_due(self) -> int:
        """Claim up to ``timer_concurrency`` due timers and fire them together; returns how
        many were claimed."""
        claimed = await self._claim(self.settings.timer_concurrency)
        await asyncio.gather(*(self._fire(claim) for claim in claimed))
        return len(claimed)

    async def _claim(self, limit: int) -> list[_Claim]:
        """Lease up to `limit` due timers, oldest due first, in one committed statement."""
        claimed_at = time.monotonic()  # no later than the lease's start
        async with self.sessions() as session:
            connection = await session.connection(execution_options=_AUTOCOMMIT)
            rows = (await connection.execute(_CLAIM, {**self._claim_params, "limit": limit})).all()
        return [
            _Claim(
                DueTimer(row.id, row.kind, row.key, row.was_due_at, row.payload, row.attempts),
                row.lease_until,
                claimed_at,
            )
            for row in sorted(rows, key=lambda row: row.was_due_at)
        ]

    async def _hand_back(self, claims: Collection[_Claim]) -> None:
        """Make claimed timers that will not run here due again as they were."""
        if not claims:
            return
        log.warning("handing back %d claimed timers this worker could not start", len(claims))
        async with self.sessions() as session:
            connection = await session.connection(execution_options=_AUTOCOMMIT)
            for claim in claims:
                await connection.execute(
                    _HAND_BACK,
                    {
                        "timer_id": claim.due.id,
                        "lease_until": claim.lease_until,
                        "was_due_at": claim.due.due_at,
                    },
                )

    async def _fire(self, claim: _Claim) -> None:
        """Run the handler in a transaction of its own that deletes the timer it claimed."""
        due = claim.due
        timeout_s = self.settings.timer_handler_timeout_s
        outcome = "done"
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline, self.sessions() as session, session.begin():
                await self.handlers[due.kind](session, due)
                await session.execute(
                    _DELETE_CLAIMED, {"timer_id": due.id, "lease_until": claim.lease_until}
                )
        except TimeoutError as exc:
            if not deadline.expired():  # the handler's own TimeoutError: an ordinary failure
                outcome = "failed"
                log.exception(
                    "timer %s/%s failed (attempt %d)", due.kind, due.key, due.attempts + 1
                )
                await self._failed(claim, error_text(exc), exc)
                metrics.TIMERS_FIRED.labels(self.settings.service_name, due.kind, outcome).inc()
                return
            outcome = "timed_out"
            log.warning(
                "timer %s/%s timed out after %gs (attempt %d)",
                due.kind,
                due.key,
                timeout_s,
                due.attempts + 1,
            )
            await self._failed(claim, f"timed out after {timeout_s:g}s", exc)
        except Exception as exc:
            outcome = "failed"
            log.exception("timer %s/%s failed (attempt %d)", due.kind, due.key, due.attempts + 1)
            await self._failed(claim, error_text(exc), exc)
        metrics.TIMERS_FIRED.labels(self.settings.service_name, due.kind, outcome).inc()

    async def _failed(self, claim: _Claim, error: str, exc: BaseException) -> None:
        """Schedule the retry, or park the timer, keeping the error for diagnosis."""
        due = claim.due
        attempts = due.attempts + 1
        parked = attempts >= self.settings.timer_max_attempts
        if parked:
            log.error(
                "timer %s/%s parked after %d attempts; `parked retry` runs it again",
                due.kind,
                due.key,
                attempts,
            )
            metrics.PARKINGS.labels(self.settings.service_name, "timer").inc()
        try:
            await self._push_back(claim, last_error=error, parked=parked)
        except Exception:
            log.exception(
                "could not record the failure of timer %s/%s; pushing it back without it",
                due.kind,
                due.key,
            )
            try:
                await self._push_back(claim, last_error=None, parked=parked)
            except Exception:
                log.exception(
                    "could not push back timer %s/%s; it fires again when its lease ends",
                    due.kind,
                    due.key,
                )

    async def _push_back(self, claim: _Claim, *, last_error: str | None, parked: bool) -> None:
        """Count the attempt and move the timer to its retry (or park it), unless it has
        since been moved, fired or claimed again."""
        values: dict[str, Any] = {
            "attempts": timer.c.attempts + 1,
            "due_at": func.now() + _retry_delay(self.settings, claim.due.attempts),
            "parked_at": func.now() if parked else None,
        }
        if last_error is not None:
            values["last_error"] = last_error
        async with self.sessions() as session:
            connection = await session.connection(execution_options=_AUTOCOMMIT)
            await connection.execute(
                update(timer)
                .where(timer.c.id == claim.due.id, timer.c.due_at == claim.lease_until)
                .values(**values)
            )


_CLAIM = text(
    "WITH due AS ("
    " SELECT t.id, t.due_at FROM unnest(CAST(:kinds AS varchar[])) AS k(kind)"
    " CROSS JOIN LATERAL (SELECT id, due_at FROM timer"
    "  WHERE timer.kind = k.kind AND due_at <= now() AND parked_at IS NULL"
    "  ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED) AS t"
    " ORDER BY t.due_at LIMIT :limit)"
    " UPDATE timer SET due_at = now() + make_interval(secs => :lease_s)"
    " FROM due WHERE timer.id = due.id"
    " RETURNING timer.id, timer.kind, timer.key, due.due_at AS was_due_at, timer.payload,"
    " timer.attempts, timer.due_at AS lease_until"
).columns(
    timer.c.id,
    timer.c.kind,
    timer.c.key,
    column("was_due_at", DateTime(timezone=True)),
    timer.c.payload,
    timer.c.attempts,
    column("lease_until", DateTime(timezone=True)),
)
"""Lease the oldest due timers of the worker's kinds. Each kind is read in due order from
``ix_timer_claim``, whatever the table's statistics say: asked for several kinds at once,
the planner could instead sort every due timer on every claim, which a burst of thousands
of timers turned into seconds per claim. A kind's rows beyond the limit are locked only
until the statement ends."""

_DELETE_CLAIMED = delete(timer).where(
    timer.c.id == bindparam("timer_id"), timer.c.due_at == bindparam("lease_until")
)
"""Delete a fired timer if it is still the one claimed (not rescheduled, not claimed again)."""

_HAND_BACK = (
    update(timer)
    .where(timer.c.id == bindparam("timer_id"), timer.c.due_at == bindparam("lease_until"))
    .values(due_at=bindparam("was_due_at"))
)
"""Give a claimed timer back, due when it was."""

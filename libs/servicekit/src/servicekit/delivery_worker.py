"""The delivery worker: claims due deliveries, sends them outside any transaction, records
what happened. The guarantee it keeps is stated in `servicekit.deliveries`."""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit import metrics
from servicekit.db import asyncpg_dsn, is_database_outage, server_settings
from servicekit.deliveries import (
    PENDING,
    Delivery,
    Outcome,
    OutcomeHandler,
    PermanentFailure,
    Sender,
    notify_channel,
)
from servicekit.logging import correlation_id
from servicekit.reconnect import run_forever
from servicekit.retry import backoff_s, error_text
from servicekit.settings import ServiceSettings
from servicekit.tables import delivery

log = logging.getLogger(__name__)

OUTCOME_HANDLER_TRIES = 3
"""Transactions an outcome handler may fail before the outcome is recorded without it."""

STOP_GRACE_S = 2.0
"""How long a stopping worker waits for its sends in flight, within the 3 s
`servicekit.runtime.Runtime.stop` gives its loops."""

_RECHECK_S = 0.05
"""Shortest wait between claims, so rows due but locked by another worker's claim
(skipped for a moment) do not make the worker spin."""


def retry_delay_s(settings: ServiceSettings, attempts: int) -> float:
    """Wait before the next attempt after `attempts` failed ones, with jitter."""
    return backoff_s(
        attempts,
        base_s=settings.delivery_retry_base_s,
        max_s=settings.delivery_retry_max_s,
        jitter=True,
    )


def _json_result(result: object) -> dict[str, Any] | None:
    """A sender's result as JSON can store it: anything unusual as its text, and whatever
    is not a mapping under ``"result"`` (a bad result must not leave a sent delivery
    unrecorded, to be sent again)."""
    if result is None:
        return None
    if not isinstance(result, Mapping):
        result = {"result": result}
    try:
        loaded: dict[str, Any] = json.loads(json.dumps(dict(result), default=str))
    except (TypeError, ValueError) as exc:
        return {"unreadable_result": error_text(exc)}
    return loaded


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds until its lease ends."""

    delivery: Delivery
    abandoned: bool
    """Its last attempt's worker stopped mid-send and it has no attempts left: give up."""
    lease_ends: float
    """When the lease ends at the latest, on this process's monotonic clock."""


class _HandlerFailed(Exception):
    """The outcome handler raised (the cause); its transaction rolled back."""


@dataclass(frozen=True)
class _Retry:
    error: str
    delay_s: float


class DeliveryWorker:
    """Sends the deliveries of the channels it has senders for."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        senders: Mapping[str, Sender],
        outcomes: Mapping[str, OutcomeHandler] | None = None,
    ) -> None:
        if settings.delivery_send_timeout_s >= settings.delivery_lease_s:
            raise ValueError("delivery_send_timeout_s must be shorter than delivery_lease_s")
        self.settings = settings
        self.sessions = sessions
        self.senders = dict(senders)
        self.outcomes = dict(outcomes or {})
        self.listening = False
        """True while notifications reach this worker (tests wait for it)."""
        self._wakeup = asyncio.Event()
        self._refill_at = max(1, settings.delivery_concurrency // 4)
        """Free slots that make a busy worker claim again: claims come in batches, not
        one per finished send."""
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Send until cancelled; survive database outages. When cancelled, sends in flight
        get `STOP_GRACE_S` to finish; those still going then are cancelled (their claims
        expire and they are sent again)."""
        try:
            await run_forever(self._work_until_lost, "delivery worker", self.settings)
        finally:
            # Stopping (a deploy, a scale-down) lets the sends under way finish and be
            # recorded first, so they do not go again once their claims expire.
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=STOP_GRACE_S)
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _work_until_lost(self) -> None:
        listener = await asyncpg.connect(
            asyncpg_dsn(self.settings.database_url),
            timeout=self.settings.relay_io_timeout_s,
            server_settings=server_settings(self.settings, role="deliveries"),
        )
        try:
            await listener.add_listener(notify_channel(self.settings.db_schema), self._wake)
            listener.add_termination_listener(self._wake)
            self.listening = True
            while True:
                if listener.is_closed():
                    raise ConnectionError("database connection lost")
                # Cleared before claiming, so a NOTIFY that lands mid-claim is not lost.
                self._wakeup.clear()
                free = self.settings.delivery_concurrency - len(self._inflight)
                poll_s = self.settings.delivery_poll_interval_s
                if self._inflight and free < self._refill_at:
                    wait_s = poll_s  # busy: a finished send wakes it
                else:
                    wanted = min(free, self.settings.delivery_batch_size)
                    claims = await self.claim(wanted)
                    for claim in claims:
                        self._start(claim)
                    if len(claims) == wanted:
                        continue
                    # While sends are out, each one that ends wakes the worker, which then
                    # looks for due deliveries; once idle it sleeps until the next is due.
                    wait_s = poll_s if self._inflight else await self._until_next_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait_s)
        finally:
            self.listening = False
            with contextlib.suppress(Exception):
                await listener.close()

    def _wake(self, *_: object) -> None:
        self._wakeup.set()

    def _start(self, claim: Claim) -> None:
        task = asyncio.create_task(self.deliver(claim), name=f"delivery-{claim.delivery.id}")
        self._inflight.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._inflight.discard(done)
            self._wakeup.set()  # a free slot, maybe a retry due sooner than the wait

        task.add_done_callback(finished)

    async def _until_next_due(self) -> float:
        """Seconds until the next delivery of this worker's channels falls due (by the
        database's clock), within [`_RECHECK_S`, ``delivery_poll_interval_s``]."""
        async with self.sessions() as session:
            wait = await session.scalar(
                select(func.extract("epoch", func.min(delivery.c.due_at) - func.now())).where(
                    PENDING, delivery.c.channel.in_(list(self.senders))
                )
            )
        poll = self.settings.delivery_poll_interval_s
        return poll if wait is None else max(_RECHECK_S, min(float(wait), poll))

    async def claim(self, limit: int) -> list[Claim]:
        """Claim up to `limit` due deliveries for ``delivery_lease_s`` and commit."""
        max_attempts = self.settings.delivery_max_attempts
        due = (
            select(
                delivery.c.id,
                delivery.c.state.label("was"),
                ((delivery.c.state == "sending") & (delivery.c.attempts >= max_attempts)).label(
                    "abandoned"
                ),
            )
            .where(
                PENDING,
                delivery.c.due_at <= func.now(),
                delivery.c.channel.in_(list(self.senders)),
            )
            .order_by(delivery.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        lease = timedelta(seconds=self.settings.delivery_lease_s)
        lapsed = "the worker of attempt %s stopped before recording its outcome"
        stmt = (
            update(delivery)
            .where(delivery.c.id == due.c.id)
            .values(
                state="sending",
                due_at=func.now() + lease,
                attempts=delivery.c.attempts + case((due.c.abandoned, 0), else_=1),
                last_error=case(
                    (due.c.was == "sending", func.format(lapsed, delivery.c.attempts)),
                    else_=delivery.c.last_error,
                ),
            )
            .returning(*delivery.c, due.c.was, due.c.abandoned)
        )
        lease_ends = time.monotonic() + self.settings.delivery_lease_s  # before the claim
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(stmt)).all()
        claims = []
        for row in rows:
            if row.was == "sending" and not row.abandoned:
                metrics.DELIVERIES.labels(
                    self.settings.service_name, row.channel, "lease_expired"
                ).inc()
            claims.append(
                Claim(
                    Delivery(
                        id=row.id,
                        dedupe_key=row.dedupe_key,
                        channel=row.channel,
                        payload=row.payload,
                        attempt=row.attempts,
                        correlation_id=row.correlation_id,
                        created_at=row.created_at,
                    ),
                    abandoned=bool(row.abandoned),
                    lease_ends=lease_ends,
                )
            )
        return claims

    async def deliver(self, claim: Claim) -> None:
        """Send one claimed delivery (outside any transaction) and record what happened."""
        item = claim.delivery
        token = correlation_id.set(str(item.correlation_id) if item.correlation_id else None)
        try:
            if claim.abandoned:
                outcome: Outcome | _Retry = Outcome(
                    state="failed",
                    attempts=item.attempt,
                    error=f"gave up after {item.attempt} attempts; the last one's worker"
                    " stopped mid-send, so it may have been sent",
                )
            else:
                outcome = await self._send(item)
            await self._record(claim, outcome)
        except Exception:
            log.exception("delivery %s (%s) could not be handled", item.id, item.channel)
        finally:
            correlation_id.reset(token)

    async def _send(self, item: Delivery) -> Outcome | _Retry:
        """Call the channel's sender; what it did, as an outcome or a retry."""
        try:
            async with asyncio.timeout(self.settings.delivery_send_timeout_s):
                result = await self.senders[item.channel](item)
        except PermanentFailure as exc:
            log.warning("delivery %s (%s) failed for good: %s", item.id, item.channel, exc)
            return Outcome(state="failed", attempts=item.attempt, error=error_text(exc))
        except Exception as exc:
            error = error_text(exc)
            if item.attempt >= self.settings.delivery_max_attempts:
                log.warning("delivery %s (%s) gave up: %s", item.id, item.channel, error)
                return Outcome(state="failed", attempts=item.attempt, error=error)
            delay_s = retry_delay_s(self.settings, item.attempt)
            log.info(
                "delivery %s (%s) attempt %d failed (%s); retrying in %.1fs",
                item.id,
                item.channel,
                item.attempt,
                error,
                delay_s,
            )
            return _Retry(error, delay_s)
        return Outcome(state="sent", attempts=item.attempt, result=_json_result(result))

    async def _record(self, claim: Claim, outcome: Outcome | _Retry) -> None:
        """Record `outcome` while the claim holds.

        A failing outcome handler is retried, then left out (see `OUTCOME_HANDLER_TRIES`);
        any other failure (the database unreachable, a connection lost) is retried until
        the claim's lease has ended: past it, another worker may have sent again, and the
        record is left to that attempt.
        """
        item = claim.delivery
        handler_failures = 0
        delay = self.settings.reconnect_min_s
        while True:
            with_handler = handler_failures < OUTCOME_HANDLER_TRIES
            try:
                await self._record_once(item, outcome, with_handler=with_handler)
                return
            except _HandlerFailed as failed:
                cause = failed.__cause__ or failed
                if await is_database_outage(cause, self.sessions):
                    log.warning("database unreachable in the outcome handler of %s", item.id)
                else:
                    handler_failures += 1
                    log.error(
                        "outcome handler of delivery %s (%s) failed (%d of %d)",
                        item.id,
                        item.channel,
                        handler_failures,
                        OUTCOME_HANDLER_TRIES,
                        exc_info=cause,
                    )
                    if handler_failures == OUTCOME_HANDLER_TRIES and isinstance(outcome, Outcome):
                        lost = f"outcome handler failed: {error_text(cause)}"
                        outcome = Outcome(
                            state=outcome.state,
                            attempts=outcome.attempts,
                            result=outcome.result,
                            error=f"{outcome.error}; {lost}" if outcome.error else lost,
                        )
            except Exception as exc:
                if time.monotonic() > claim.lease_ends:
                    log.error(
                        "could not record delivery %s (%s) before its claim expired (%s);"
                        " it may be sent again",
                        item.id,
                        item.channel,
                        error_text(exc),
                    )
                    return
                log.warning("recording delivery %s failed (%s); retrying", item.id, error_text(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _record_once(
        self, item: Delivery, outcome: Outcome | _Retry, *, with_handler: bool
    ) -> None:
        ours = (
            delivery.c.id == item.id,
            delivery.c.state == "sending",
            delivery.c.attempts == item.attempt,
        )
        if isinstance(outcome, _Retry):
            values: dict[str, Any] = {
                "state": "queued",
                "due_at": func.now() + timedelta(seconds=outcome.delay_s),
                "last_error": outcome.error,
            }
            label = "retried"
        elif outcome.state == "sent":
            values = {"state": "sent", "result": outcome.result, "sent_at": func.now()}
            if outcome.error:
                values["last_error"] = outcome.error
            label = "sent"
        else:
            values = {"state": "failed", "last_error": outcome.error}
            label = "failed"
        async with self.sessions() as session, session.begin():
            stmt = update(delivery).where(*ours).values(**values).returning(delivery.c.id)
            if (await session.execute(stmt)).first() is None:
                log.warning(
                    "delivery %s attempt %d: its claim expired and was taken over; not recorded",
                    item.id,
                    item.attempt,
                )
                return
            handler = self.outcomes.get(item.channel)
            if with_handler and handler is not None and isinstance(outcome, Outcome):
                try:
                    await handler(session, item, outcome)
                except Exception as exc:
                    raise _HandlerFailed from exc
        metrics.DELIVERIES.labels(self.settings.service_name, item.channel, label).inc()

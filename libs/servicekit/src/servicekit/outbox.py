"""Transactional outbox: events are written with the rows that caused them.

Guarantee: an event added in a transaction that commits is published to the
exchange at least once (persistent, publisher-confirmed, mandatory-routed); an
event added in a transaction that rolls back is never published. Rows are
deleted only after the broker confirmed them, so a relay that dies mid-batch
leaves them to be published again (consumers dedupe by event id). Several
relays share the table with ``FOR UPDATE SKIP LOCKED``.

Order: none is promised, not even between two events of one transaction. A relay
publishes rows oldest first, but several relays, a batch published again, a row
retried or parked, and the consumer's redeliveries and returns all reorder them.
Publish events a consumer can apply in any order (state that moves only forward,
timestamps to compare), never a sequence of steps.

A row the broker refuses (a nack, e.g. from a full queue that rejects publishes, or
a return of an unroutable event) is that row's failure alone: the rest of its batch
is deleted as confirmed, and the refused row is tried again after a backoff
(``relay_retry_base_s`` doubling up to ``relay_retry_max_s``). Each try may leave a
copy in the queues that did take it (consumers dedupe). After ``relay_max_attempts``
refusals the row is parked: kept, skipped by the relays, counted in ``/health`` and
``klaxon_parkings_total``, listed and sent again with the ``parked`` command
(`servicekit.parking`). Nothing a single row does holds back the rows behind it.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, TypeAlias

import aiormq
import asyncpg
from aiormq import spec
from aiormq.exceptions import DeliveryError, PublishError
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from contracts import Envelope, EventPayload
from servicekit import bus, metrics
from servicekit.db import asyncpg_dsn, server_settings
from servicekit.logging import current_correlation
from servicekit.reconnect import run_forever
from servicekit.retry import backoff_s
from servicekit.settings import ServiceSettings
from servicekit.tables import outbox_event

log = logging.getLogger(__name__)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes the relay of `schema`'s outbox."""
    return f"klaxon_outbox_{schema}"


OUTBOX_VALUES: dict[str, BindParameter[Any]] = {
    "event_id": bindparam("outbox_event_id"),
    "routing_key": bindparam("outbox_routing_key"),
    "body": bindparam("outbox_body"),
    "correlation_id": bindparam("outbox_correlation_id"),
}
"""Bound values of an outbox row, for statements that insert it alongside other rows
(``insert(outbox_event).values(OUTBOX_VALUES)`` as a CTE); fill with `outbox_params`."""

_INSERT = insert(outbox_event).values(OUTBOX_VALUES)


def outbox_params(envelope: Envelope) -> dict[str, object]:
    """Parameters for `OUTBOX_VALUES` that queue `envelope`.

    An envelope that starts a correlation of its own (no cause, no correlation id
    given) joins the one of the request or event being handled instead
    (`servicekit.logging.current_correlation`).
    """
    current = current_correlation()
    if (
        current is not None
        and envelope.causation_id is None
        and envelope.correlation_id == envelope.id
    ):
        envelope = envelope.model_copy(update={"correlation_id": current})
    return {
        "outbox_event_id": envelope.id,
        "outbox_routing_key": envelope.type,
        "outbox_body": envelope.to_json(),
        "outbox_correlation_id": envelope.correlation_id,
    }


Database: TypeAlias = AsyncSession
"""Where an event is added: the session of the transaction that causes it."""


async def add_event(db: Database, envelope: Envelope) -> None:
    """Queue `envelope` for publishing in the current transaction of `db`.

    A trigger on the table notifies the relay when the transaction commits, unless
    older rows are waiting (the relay then finds it by itself).
    """
    await db.execute(_INSERT, outbox_params(envelope))


async def publish(
    db: Database,
    payload: EventPayload,
    *,
    producer: str,
    causation: Envelope | None = None,
) -> Envelope:
    """Wrap `payload` in an envelope and add it to the outbox; returns the envelope.

    Its correlation id is its cause's, else the current request's or event's
    (`servicekit.logging.current_correlation`), else its own id.
    """
    envelope = Envelope.wrap(
        payload,
        producer=producer,
        causation=causation,
        correlation_id=None if causation else current_correlation(),
    )
    await add_event(db, envelope)
    return envelope


async def backlog(session: AsyncSession) -> tuple[int, float | None]:
    """Unsent events and the age in seconds of the oldest one, parked events aside."""
    row = (
        await session.execute(
            select(func.count(), func.min(outbox_event.c.created_at)).where(
                outbox_event.c.parked_at.is_(None)
            )
        )
    ).one()
    count, oldest = row
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else None
    return int(count), age


_CLAIM = (
    "DELETE FROM outbox_event WHERE seq IN ("
    " SELECT seq FROM outbox_event WHERE parked_at IS NULL"
    " AND (retry_at IS NULL OR retry_at <= now())"
    " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " RETURNING seq, event_id, routing_key, body, correlation_id, created_at, attempts"
)
"""Take a batch, oldest first, of rows neither parked nor waiting for a retry; the DELETE
commits only after the broker confirmed them."""

_PUT_BACK = (
    "INSERT INTO outbox_event (seq, event_id, routing_key, body, correlation_id, created_at,"
    " attempts, last_error, retry_at, parked_at) OVERRIDING SYSTEM VALUE"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
    " CASE WHEN $9 THEN NULL ELSE now() + make_interval(secs => $10) END,"
    " CASE WHEN $9 THEN now() END)"
)
"""Put a refused row back, in the claim's transaction, with its attempt counted: waiting for
its retry, or parked. (Re-inserted rather than spared from the DELETE, so the claim stays one
statement.)"""

_MAX_ERROR_CHARS = 1000


def _refusal(exc: BaseException) -> str | None:
    """What the broker said if `exc` is its refusal of one message (a nack or a return);
    None for anything else (a lost channel, a timeout), which fails the whole batch."""
    if isinstance(exc, PublishError):
        frame = exc.frame
        if isinstance(frame, spec.Basic.Return):
            return f"returned by the broker: {frame.reply_code} {frame.reply_text}"
        return "returned by the broker"
    if isinstance(exc, DeliveryError):
        return "refused by the broker (basic.nack): a queue it routes to would not take it"
    return None


async def vacuum(db: asyncpg.Connection) -> None:
    """Clear the outbox of the rows relays deleted.

    The outbox is a queue: it gets dead rows as fast as events are written,
    and every claim walks the primary key from its oldest entry, over the dead
    ones. Autovacuum visits a database once a minute at most, so under steady
    load the claims slowed down round after round (the pipeline benchmark lost
    a third of its rate in a minute). A vacuum of the small live table takes
    milliseconds; one that another relay is running is skipped. It does not
    truncate the table's empty tail: that needs an exclusive lock, which
    vacuum keeps retrying for up to five seconds while writers hold theirs,
    and this relay would publish nothing meanwhile; the next rows fill the
    freed pages instead.
    """
    await db.execute("VACUUM (SKIP_LOCKED, TRUNCATE false) outbox_event")


class Relay:
    """Publishes outbox rows to RabbitMQ; run one or many per service.

    Each relay keeps one database connection of its own, both to LISTEN for
    new rows and to claim them, with ``synchronous_commit`` off: losing a
    committed DELETE in a database crash only means publishing again, and
    consumers dedupe. Every statement on it times out after
    ``relay_io_timeout_s``, so a connection that went silent is replaced.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._wakeup = asyncio.Event()
        self.connected = False

    async def run(self) -> None:
        """Publish until cancelled, reconnecting to database and broker with backoff."""
        await run_forever(self._relay_until_lost, "outbox relay", self.settings)

    async def _relay_until_lost(self) -> None:
        db = await asyncpg.connect(
            asyncpg_dsn(self.settings.database_url),
            timeout=self.settings.relay_io_timeout_s,
            command_timeout=self.settings.relay_io_timeout_s,
            server_settings={
                **server_settings(self.settings, role="relay"),
                "synchronous_commit": "off",
            },
        )
        try:
            await db.add_listener(notify_channel(self.settings.db_schema), self._wake)
            db.add_termination_listener(self._wake)
            connection, lost = await bus.connect(self.settings.amqp_url)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await bus.declare_events_exchange(channel, self.settings.exchange)
                publisher = await channel.get_underlay_channel()
                if not isinstance(publisher, aiormq.Channel):
                    raise TypeError(f"unexpected AMQP channel {publisher!r}")
                self.connected = True
                await self._publish_while_connected(db, publisher, exchange.name, lost)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await connection.close()
        finally:
            with contextlib.suppress(Exception):
                await db.close()

    def _wake(self, *_: object) -> None:
        self._wakeup.set()

    async def _publish_while_connected(
        self,
        db: asyncpg.Connection,
        channel: aiormq.Channel,
        exchange: str,
        lost: asyncio.Future[BaseException | None],
    ) -> None:
        wait_s = self.settings.relay_poll_interval_s
        deleted = 0
        while not lost.done():
            if db.is_closed():
                raise ConnectionError("database connection lost")
            # Clear before reading, so a NOTIFY that lands mid-batch is not lost.
            self._wakeup.clear()
            published = await self.publish_batch(db, channel, exchange)
            deleted += published
            if deleted >= self.settings.relay_vacuum_every:
                await vacuum(db)
                deleted = 0
            if published >= self.settings.relay_batch_size:
                continue
            # Writers skip the NOTIFY while older rows wait (see `servicekit.tables`): one
            # that committed while this batch was out is found by looking again soon. The
            # gap doubles, so a row whose NOTIFY was skipped waits about as long again as
            # its transaction took after the insert, and an idle relay polls rarely.
            if published:
                wait_s = self.settings.relay_recheck_s
            else:
                wait_s = min(wait_s * 2, self.settings.relay_poll_interval_s)
            woken = asyncio.ensure_future(self._wakeup.wait())
            waiters: set[asyncio.Future[Any]] = {woken, lost}
            try:
                await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
        raise ConnectionError(f"broker connection lost: {lost.result()}")

    async def publish_batch(
        self, db: asyncpg.Connection, channel: aiormq.Channel, exchange: str
    ) -> int:
        """Publish up to one batch of rows; each is deleted once the broker confirmed it.

        The whole batch is handed to the connection's writer at once (its queue
        takes a whole batch: `bus.OUTGOING_FRAMES`), then the confirms are
        awaited together. (aio-pika's ``Exchange.publish`` waits for each
        message to be written out before the channel takes the next: one
        event-loop turn per message, so in the busy producer of the pipeline
        benchmark a batch took ~1.1 ms per event instead of ~0.8.) A row the
        broker refuses (nack, return) goes back with its attempt counted (see the
        module docstring); a lost channel or confirms slower than
        ``relay_io_timeout_s`` fail the batch: it rolls back and is published
        again; consumers dedupe. Returns how many rows it took (confirmed or put
        back), so a full batch with a refusal in it is followed at once by the next.
        """
        async with db.transaction():
            claimed = await db.fetch(_CLAIM, self.settings.relay_batch_size)
            rows = sorted(claimed, key=lambda row: row["seq"])
            if not rows:
                return 0
            async with asyncio.timeout(self.settings.relay_io_timeout_s):
                confirms = await asyncio.gather(
                    *(
                        channel.basic_publish(
                            row["body"],
                            exchange=exchange,
                            routing_key=row["routing_key"],
                            properties=spec.Basic.Properties(
                                message_id=str(row["event_id"]),
                                correlation_id=str(row["correlation_id"]),
                                message_type=row["routing_key"],
                                content_type="application/json",
                                delivery_mode=2,  # persistent
                                app_id=self.settings.service_name,
                            ),
                            mandatory=True,
                            wait=False,
                        )
                        for row in rows
                    ),
                    return_exceptions=True,
                )
            refused: list[tuple[asyncpg.Record, str]] = []
            for row, confirm in zip(rows, confirms, strict=True):
                if isinstance(confirm, asyncio.CancelledError):
                    # A confirm cancelled by the channel closing, not this task being cancelled.
                    raise ConnectionError("channel closed before the broker confirmed")
                if isinstance(confirm, BaseException):
                    reason = _refusal(confirm)
                    if reason is None:
                        raise confirm
                    refused.append((row, reason))
            if refused:
                await self._put_back(db, refused)
        metrics.EVENTS_PUBLISHED.labels(self.settings.service_name).inc(len(rows) - len(refused))
        return len(rows)

    async def _put_back(
        self, db: asyncpg.Connection, refused: list[tuple[asyncpg.Record, str]]
    ) -> None:
        """Return refused rows to the outbox, each to wait for its retry or parked."""
        settings = self.settings
        params = []
        for row, reason in refused:
            attempts = row["attempts"] + 1
            parked = attempts >= settings.relay_max_attempts
            delay_s = backoff_s(
                attempts, base_s=settings.relay_retry_base_s, max_s=settings.relay_retry_max_s
            )
            log.warning(
                "event %s (%s) %s; attempt %d of %d, %s",
                row["event_id"],
                row["routing_key"],
                reason,
                attempts,
                settings.relay_max_attempts,
                "parked" if parked else f"next try in {delay_s:g}s",
            )
            if parked:
                metrics.PARKINGS.labels(settings.service_name, "outbox").inc()
            params.append(
                (
                    row["seq"],
                    row["event_id"],
                    row["routing_key"],
                    row["body"],
                    row["correlation_id"],
                    row["created_at"],
                    attempts,
                    reason[:_MAX_ERROR_CHARS],
                    parked,
                    delay_s,
                )
            )
        await db.executemany(_PUT_BACK, params)

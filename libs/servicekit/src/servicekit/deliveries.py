"""Outgoing deliveries: effects outside the database (email, SMS, HTTP calls), sent after commit.

A handler, timer or route never calls a provider itself. It calls `enqueue` in
its own transaction, which writes a ``delivery`` row (channel, payload, a dedupe
key); a worker (`servicekit.delivery_worker.DeliveryWorker`, started by the
runtime for the channels given ``senders=``) sends it outside any transaction
and records the outcome.

Guarantee:

- A delivery enqueued in a transaction that rolls back is never sent. One
  enqueued in a transaction that commits is sent at least once, at or after its
  ``due_at``, by a worker that has a sender for its channel, unless it is given
  up on (``failed``): the sender raised `PermanentFailure`, or
  ``delivery_max_attempts`` attempts failed.
- A second `enqueue` with a dedupe key already present adds nothing (returns
  False), so an event handled twice (a redelivery, a failed consumer batch
  handled again one by one) queues its deliveries once.
- The worker calls the sender again for a delivery only (a) after an attempt
  that raised (a retry, with exponential backoff and jitter:
  ``delivery_retry_base_s`` doubling up to ``delivery_retry_max_s``, each delay
  drawn from the upper half; a send running past ``delivery_send_timeout_s``
  raised), or (b) when the worker of the previous attempt stopped between calling
  the sender and recording its outcome (killed, crashed, stopped with the send
  still running ``STOP_GRACE_S`` later, or cut off from the database until its
  claim expired): the claim's lease (``delivery_lease_s``) expires and a worker
  sends again. Case (b) may repeat an effect the provider already made, and so
  may (a) when the sender raised after the provider acted (a timeout, a
  connection lost while reading the answer). Nothing else calls the sender
  again. The sender gets `Delivery.idempotency_key` (the delivery's id, the same
  on every attempt) to pass to providers that deduplicate on one, where even
  those repeats are harmless.
- Outcomes are recorded only while the claim holds (fenced on the attempt
  number): a worker whose claim expired cannot overwrite the attempt that
  replaced it. A claim that expired after the last allowed attempt is recorded
  ``failed`` without another send (its ``last_error`` says it may have been sent).
- The channel's `OutcomeHandler` runs once per delivery, in the transaction that
  records it ``sent`` or ``failed`` (write a timeline row, publish an outcome
  event through the outbox there). If it raises, that transaction rolls back and
  is retried; after ``OUTCOME_HANDLER_TRIES`` (in `servicekit.delivery_worker`)
  failures the outcome is recorded without it (the error in ``last_error`` and
  the log), so a broken handler cannot make a delivery be sent again; its event
  is then lost.

A worker is woken by a NOTIFY on `notify_channel` when a transaction that
enqueued a delivery commits; it claims what is due and sleeps until the next
delivery falls due (a retry, one enqueued for later), for at most
``delivery_poll_interval_s`` (the fallback if a notification is missed). Several
workers, in one process or many, share deliveries with ``FOR UPDATE SKIP
LOCKED``; each has up to ``delivery_concurrency`` sends in flight and claims no
more than it can start at once, so a claim's lease runs only while its send
does. Sent and failed rows are kept ``delivery_retention_s`` (their dedupe keys
with them), then pruned.
"""

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Boolean, delete, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from servicekit.logging import current_correlation
from servicekit.tables import delivery

if TYPE_CHECKING:
    from servicekit.runtime import Runtime

PENDING: ColumnClause[bool] = literal_column("state IN ('queued', 'sending')", Boolean)
"""Deliveries not yet sent or given up on. Written out literally so the planner matches the
partial index ``ix_delivery_due_at``."""


class PermanentFailure(Exception):
    """Raised by a sender: the delivery can never succeed (a refused address, a 4xx); give up."""


@dataclass(frozen=True)
class Delivery:
    """One attempt at a delivery, as a sender sees it."""

    id: uuid.UUID
    dedupe_key: str
    channel: str
    payload: dict[str, Any]
    attempt: int
    """1 on the first attempt."""
    correlation_id: uuid.UUID | None
    created_at: datetime

    @property
    def idempotency_key(self) -> str:
        """What to send a provider as its idempotency key: the same on every attempt."""
        return str(self.id)


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended, as an outcome handler sees it."""

    state: Literal["sent", "failed"]
    attempts: int
    result: dict[str, Any] | None = None
    """What the sender returned (e.g. the provider's message id), when sent."""
    error: str | None = None
    """Why it failed, when failed."""


Sender = Callable[[Delivery], Awaitable[Mapping[str, Any] | None]]
"""``async def send(delivery)``: make the effect, outside any transaction; return the
provider's result (JSON-serialisable) or None. Raise to retry later, `PermanentFailure`
to give up."""

SenderFactory = Callable[["Runtime"], Sender]
"""Builds a channel's sender once the runtime's resources are open."""

OutcomeHandler = Callable[[AsyncSession, Delivery, Outcome], Awaitable[None]]
"""``async def on_outcome(session, delivery, outcome)``: runs in the transaction recording
the delivery ``sent`` or ``failed``; never commits."""


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes the delivery workers of `schema`."""
    return f"klaxon_delivery_{schema}"


_NOTIFY = text(f"SELECT pg_notify('{notify_channel('')}' || current_schema(), '')")
"""Wake the workers of the session's schema (the first on its search_path)."""


async def enqueue(
    session: AsyncSession,
    *,
    channel: str,
    dedupe_key: str,
    payload: Mapping[str, Any],
    due_at: datetime | None = None,
) -> bool:
    """Queue a delivery in the caller's transaction; False if `dedupe_key` is already queued.

    It is sent after the transaction commits (never if it rolls back), from `due_at` on
    (now if None). The correlation id being logged, if any, goes with it.
    """
    stmt = (
        insert(delivery)
        .values(
            channel=channel,
            dedupe_key=dedupe_key,
            payload=dict(payload),
            due_at=due_at if due_at is not None else func.now(),
            correlation_id=current_correlation(),
        )
        .on_conflict_do_nothing(index_elements=[delivery.c.dedupe_key])
        .returning(delivery.c.id)
    )
    if (await session.execute(stmt)).first() is None:
        return False
    # Delivered at commit, dropped on rollback; several in one transaction make one. One due
    # later wakes the workers too, so they wait for it rather than for their next poll.
    await session.execute(_NOTIFY)
    return True


async def delivery_backlog(session: AsyncSession) -> Mapping[str, Any]:
    """Figure for ``/health``: deliveries due and not being sent (queued ones past their
    ``due_at``, claims whose lease expired), and how long the longest-waiting one has been
    due, in seconds."""
    row = (
        await session.execute(
            select(func.count(), func.min(delivery.c.due_at)).where(
                PENDING, delivery.c.due_at <= func.now()
            )
        )
    ).one()
    count, oldest = row
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else None
    return {"due": int(count), "oldest_due_age_s": age}


async def prune_deliveries(session: AsyncSession, limit: int, *, older_than_s: float) -> int:
    """Forget up to `limit` sent or failed deliveries created over `older_than_s` ago
    (their dedupe keys with them); returns how many."""
    old = (
        select(delivery.c.id)
        .where(
            delivery.c.state.in_(["sent", "failed"]),
            delivery.c.created_at < func.now() - timedelta(seconds=older_than_s),
        )
        .limit(limit)
    )
    result = await session.execute(delete(delivery).where(delivery.c.id.in_(old)))
    return int(result.rowcount)  # type: ignore[attr-defined]

"""Idempotency-Keys: a retried POST replays the first response instead of acting twice.

A key is claimed by inserting it together with the response it will replay, in
the transaction that does the work, so it commits (or rolls back) with that
work. A concurrent request with the same key waits on the key's primary key
until the first transaction ends, then replays its committed response, or
takes the key if the first rolled back.

Claims run on the driver (`servicekit.driver`), in the transaction of the filing or of
the session that adds attachments (`servicekit.driver.of_session`): filing is the hot
path whose benchmark needs it.
"""

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import Text, bindparam, cast, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from intake.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from intake.models import idempotency_key
from servicekit.driver import Statement

_CLAIM = Statement(
    insert(idempotency_key)
    .values(
        api_key_id=bindparam("p_api_key_id"),
        key=bindparam("p_key"),
        request_hash=bindparam("p_request_hash"),
        status_code=bindparam("p_status_code"),
        response=cast(bindparam("p_response", type_=Text), JSONB),
    )
    .on_conflict_do_nothing()
    .returning(idempotency_key.c.key)
)
"""Take a key with the response to replay (JSON text); no row if it is taken."""
_EARLIER = Statement(
    select(
        idempotency_key.c.request_hash, idempotency_key.c.status_code, idempotency_key.c.response
    ).where(
        idempotency_key.c.api_key_id == bindparam("p_api_key_id"),
        idempotency_key.c.key == bindparam("p_key"),
    )
)

Earlier = tuple[int, Any]
"""The status code and JSON response of a key's first, committed use."""


def fingerprint(canonical: Any) -> str:
    """A hash of a request's canonical form (JSON spacing and part boundaries aside)."""
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def in_flight(key: str) -> IdempotencyKeyInFlight:
    """The 409 for a key whose first request has not finished."""
    return IdempotencyKeyInFlight(f"the request with Idempotency-Key {key!r} is in progress")


async def first_use(
    conn: asyncpg.Connection, *, api_key_id: uuid.UUID, key: str, request_hash: str
) -> Earlier | None:
    """The status and response of the committed request that took `key`, or None if no
    request holds it; 422 if that was another request."""
    row = await conn.fetchrow(
        _EARLIER.sql, *_EARLIER.args({"p_api_key_id": api_key_id, "p_key": key})
    )
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise IdempotencyKeyReused(key)
    if row["status_code"] is None:  # defensive: a claim commits together with its response
        raise in_flight(key)
    return int(row["status_code"]), row["response"]


async def claim(
    conn: asyncpg.Connection,
    *,
    api_key_id: uuid.UUID,
    key: str,
    request_hash: str,
    status_code: int,
    response: str,
) -> Earlier | None:
    """Take `key` for this request with the response to replay (JSON text); None if taken,
    else the first use's status and response to replay instead."""
    # Twice at most: a key taken, then gone (its first use rolled back, or it was pruned).
    for _ in (1, 2):
        taken = await conn.fetchval(
            _CLAIM.sql,
            *_CLAIM.args(
                {
                    "p_api_key_id": api_key_id,
                    "p_key": key,
                    "p_request_hash": request_hash,
                    "p_status_code": status_code,
                    "p_response": response,
                }
            ),
        )
        if taken is not None:
            return None
        earlier = await first_use(conn, api_key_id=api_key_id, key=key, request_hash=request_hash)
        if earlier is not None:
            return earlier
    raise in_flight(key)


async def prune_idempotency_keys(session: AsyncSession, limit: int, *, older_than_s: float) -> int:
    """Forget up to `limit` Idempotency-Keys older than `older_than_s`; returns how many.
    A request with a forgotten key again is a new request."""
    key = tuple_(idempotency_key.c.api_key_id, idempotency_key.c.key)
    old = select(*key.clauses).where(
        idempotency_key.c.created_at < func.now() - timedelta(seconds=older_than_s)
    )
    result = await session.execute(delete(idempotency_key).where(key.in_(old.limit(limit))))
    return int(result.rowcount)  # type: ignore[attr-defined]

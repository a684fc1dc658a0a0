"""API keys: random bearer tokens stored as SHA-256 hashes, each with scopes.

Keys carry 256 bits of randomness, so a fast hash is the right one: lookup is
one indexed query and a leaked table reveals no usable key. The ``admin``
scope grants every scope. Every request makes that query, so it runs on the driver
(`servicekit.driver`, which says what that buys).
"""

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit import driver
from servicekit.deps import RuntimeDep
from servicekit.problems import Forbidden, NotFound, Unauthorized
from servicekit.tables import api_key

ADMIN = "admin"
KEY_PREFIX = "klx_"

_bearer = HTTPBearer(auto_error=False, description="Klaxon API key")


@dataclass(frozen=True)
class Principal:
    """The API key a request was made with."""

    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """True if this key holds `scope` (or ``admin``)."""
        return ADMIN in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key; `secret` is shown once and never stored."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(session: AsyncSession, *, name: str, scopes: list[str]) -> NewApiKey:
    """Store a new key and return it with its secret."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = NewApiKey(uuid.uuid4(), name, secret[:12], tuple(sorted(set(scopes))), secret)
    await session.execute(
        insert(api_key).values(
            id=key.id,
            name=name,
            prefix=key.prefix,
            key_hash=hash_key(secret),
            scopes=list(key.scopes),
        )
    )
    return key


async def revoke_api_key(session: AsyncSession, *, key_id: uuid.UUID) -> None:
    """Revoke a key; requests made with it are refused from now on."""
    result = await session.execute(
        update(api_key)
        .where(api_key.c.id == key_id, api_key.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(api_key.c.id)
    )
    if result.first() is None:
        raise NotFound(f"no active API key {key_id}")


TOUCH_EVERY_S = 60
"""How stale an active key's ``last_used_at`` may get: lookups write it at most this often."""

_ACTIVE_KEY = (api_key.c.key_hash == bindparam("secret_hash"), api_key.c.revoked_at.is_(None))

_LOOKUP = driver.Statement(
    select(api_key.c.id, api_key.c.name, api_key.c.scopes)
    .where(*_ACTIVE_KEY)
    .add_cte(
        update(api_key)
        .where(
            *_ACTIVE_KEY,
            or_(
                api_key.c.last_used_at.is_(None),
                api_key.c.last_used_at < func.now() - timedelta(seconds=TOUCH_EVERY_S),
            ),
        )
        .values(last_used_at=func.now())
        .cte("touched")
    )
)
"""The key's principal; and its ``last_used_at``, if that is over a minute old. Most lookups
write nothing, so they commit without a WAL flush; concurrent ones at the minute's turn
re-check the condition on the row they waited for, and one of them writes. Run on the
driver (`servicekit.driver`): every request of every service makes it."""


async def authenticate(conn: asyncpg.Connection, secret: str) -> Principal | None:
    """The principal for `secret`, or None if unknown or revoked (one statement: run it on an
    autocommit connection, or in a transaction that commits)."""
    row = await conn.fetchrow(_LOOKUP.sql, *_LOOKUP.args({"secret_hash": hash_key(secret)}))
    if row is None:
        return None
    return Principal(row["id"], row["name"], frozenset(row["scopes"]))


def require_scope(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request whose bearer key holds one of `scopes`.

    Every request runs it, so the key is looked up with one statement on the driver
    (`servicekit.driver`), on a pooled connection in autocommit mode (no BEGIN/COMMIT
    round trips), returned before the route runs: a route never holds two connections
    at once, and none while a slow client sends its body.
    """

    async def dependency(
        runtime: RuntimeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        async with driver.connection(runtime.engine) as conn:
            principal = await authenticate(conn, credentials.credentials)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked")
        if not any(principal.allows(scope) for scope in scopes):
            required = " or ".join(f"'{scope}'" for scope in scopes)
            raise Forbidden(
                f"this API key lacks the {required} scope", required_scope=" or ".join(scopes)
            )
        return principal

    return dependency

"""The secret acknowledge/resolve links are signed with, the same on every replica and
across restarts.

``KLAXON_LINK_SECRET`` wins when set. Otherwise the secret is a random value kept in the
one-row ``link_secret`` table: the first replica to start makes it (``INSERT ... ON
CONFLICT DO NOTHING``, so replicas starting together agree on one), every replica reads it
once at start, as the runtime resource `RESOURCE`. A link sent before a restart, or by
another replica, is therefore accepted until it expires.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.models import link_secret
from notifier.settings import Settings
from servicekit.db import create_engine, session_factory
from servicekit.runtime import current_runtime

log = logging.getLogger(__name__)

RESOURCE = "link_secret"
"""The runtime resource whose value is the secret (``runtime.resources[RESOURCE]``)."""


async def load_or_create(session: AsyncSession) -> str:
    """The kept secret; made first if there is none yet (whoever asks first makes it)."""
    made = insert(link_secret).values(secret=secrets.token_urlsafe(32))
    await session.execute(made.on_conflict_do_nothing())
    kept: str = (await session.execute(select(link_secret.c.secret))).scalar_one()
    return kept


async def _read_kept(settings: Settings) -> str:
    """The kept secret, waiting (with backoff) while the database does not answer or is
    not migrated yet."""
    engine = create_engine(settings)
    sessions = session_factory(engine)
    delay = settings.reconnect_min_s
    try:
        while True:
            try:
                async with sessions() as session, session.begin():
                    return await load_or_create(session)
            except (SQLAlchemyError, OSError) as exc:
                log.warning(
                    "the link secret could not be read (%s: %s); retrying in %.1fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.reconnect_max_s)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def link_secret_resource(settings: Any) -> AsyncIterator[str]:
    """The link secret as a runtime resource: ``KLAXON_LINK_SECRET`` if set, else the kept
    one, read once at start."""
    assert isinstance(settings, Settings)
    yield settings.link_secret or await _read_kept(settings)


def current(settings: Settings) -> str:
    """The secret to sign links with, in an event, timer or delivery handler: the runtime's
    resource (a handler run outside a runtime needs ``KLAXON_LINK_SECRET`` set)."""
    return settings.link_secret or str(current_runtime().resources[RESOURCE])

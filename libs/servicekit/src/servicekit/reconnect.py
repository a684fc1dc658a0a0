"""Keep a background loop alive across broker and database outages."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)


async def run_forever(
    body: Callable[[], Awaitable[None]], what: str, settings: ServiceSettings
) -> None:
    """Run `body` until cancelled; after it fails or returns, back off exponentially and rerun.

    The delay starts at ``reconnect_min_s``, doubles up to ``reconnect_max_s``,
    and starts over once `body` has stayed up for a while.
    """
    delay = settings.reconnect_min_s
    while True:
        started = time.monotonic()
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started > 30:
                delay = settings.reconnect_min_s
            log.warning("%s lost (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, settings.reconnect_max_s)

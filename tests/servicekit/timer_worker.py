"""A timer worker process for the kill test: its handlers hang, and it is killed from outside.

Usage: ``python -m tests.servicekit.timer_worker SETTINGS_JSON``; prints ``firing <key>``
as each handler starts, then hangs there until killed.
"""

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.settings import ServiceSettings
from servicekit.timers import DueTimer
from tests.servicekit.helpers import running


async def hang(session: AsyncSession, due: DueTimer) -> None:
    """Say which timer started, then never finish (until the process is killed)."""
    print(f"firing {due.key}", flush=True)
    await asyncio.Event().wait()


async def main(settings_json: str) -> None:
    settings = ServiceSettings.model_validate_json(settings_json)
    async with running(settings, timer_handlers={"deadline": hang}):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

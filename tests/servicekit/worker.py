"""A servicekit process for the kill test: relay and a slow consumer, killed from outside.

Usage: ``python -m tests.servicekit.worker SETTINGS_JSON``; prints ``ready`` once
connected, then runs until killed.
"""

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.intake import TicketFiled
from servicekit.settings import ServiceSettings
from tests.harness import wait_connected
from tests.servicekit.helpers import record_effect, running


async def slow_effect(session: AsyncSession, payload: TicketFiled, envelope: Envelope) -> None:
    """Write the effect, then linger inside the transaction so a kill catches some mid-way."""
    await record_effect(session, payload, envelope)
    await asyncio.sleep(0.05)


async def main(settings_json: str) -> None:
    settings = ServiceSettings.model_validate_json(settings_json)
    async with running(settings, handlers={TicketFiled.event_type: slow_effect}) as runtime:
        await wait_connected(runtime)
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

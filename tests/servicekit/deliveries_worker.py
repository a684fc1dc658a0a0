"""A delivery worker process for the kill test: sends the webhook channel, killed from outside.

Usage: ``python -m tests.servicekit.deliveries_worker SETTINGS_JSON URL``; prints ``ready``
once it hears notifications, then runs until killed.
"""

import asyncio
import sys

from servicekit.settings import ServiceSettings
from tests.servicekit.deliveries_support import delivering


async def main(settings_json: str, url: str) -> None:
    settings = ServiceSettings.model_validate_json(settings_json)
    async with delivering(settings, url):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

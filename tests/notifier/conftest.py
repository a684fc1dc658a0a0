"""Fixtures of the notifier tests: a real SMTP server and the notifier on a throwaway
database and broker prefix."""

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.harness import Throwaway
from tests.notifier.helpers import Notifier, running_notifier
from tests.smtp import SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A recording SMTP server on a free local port."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def service(env: Throwaway, smtp: SmtpServer) -> AsyncIterator[Notifier]:
    """The notifier, migrated and started, with an admin key."""
    async with running_notifier(env, smtp) as running:
        yield running

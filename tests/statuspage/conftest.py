"""Fixtures of the statuspage tests: the real service on a throwaway database and broker."""

from collections.abc import AsyncIterator

import pytest

from tests.harness import Throwaway
from tests.statuspage.helpers import StatusPages, running_statuspage


@pytest.fixture
async def statuspage(env: Throwaway) -> AsyncIterator[StatusPages]:
    """statuspage-sync, migrated and started, with a writer key and a reader key."""
    async with running_statuspage(env) as service:
        yield service

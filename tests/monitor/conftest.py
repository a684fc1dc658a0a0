"""Fixtures of the monitor tests: switchable targets started per test."""

from collections.abc import AsyncIterator

import pytest

from tests.monitor.targets import HttpTarget, http_target


@pytest.fixture
async def target() -> AsyncIterator[HttpTarget]:
    """A plain-HTTP target on loopback, answering ``up``."""
    async with http_target() as started:
        yield started

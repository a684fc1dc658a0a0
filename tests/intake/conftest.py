"""Fixtures of the intake tests: the real app on a throwaway database and broker prefix."""

from collections.abc import AsyncIterator

import pytest

from tests.harness import Throwaway
from tests.intake.helpers import Intake, running_intake


@pytest.fixture
async def intake(env: Throwaway) -> AsyncIterator[Intake]:
    """The intake app, migrated and started, with an admin key and a portal key."""
    async with running_intake(env) as service:
        yield service

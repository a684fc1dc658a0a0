"""Fixtures shared by every test: a throwaway database and broker namespace."""

from collections.abc import AsyncIterator

import pytest

from tests.harness import Throwaway, throwaway


@pytest.fixture
async def env() -> AsyncIterator[Throwaway]:
    """A database and a broker prefix of this test's own."""
    async with throwaway() as created:
        yield created

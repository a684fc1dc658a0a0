"""Fixtures the servicekit tests share."""

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from tests.harness import AMQP_URL


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    """A plain channel on the real broker."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        yield await connection.channel()

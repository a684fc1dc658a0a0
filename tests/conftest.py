"""Fixtures shared by every test: a throwaway database and broker namespace, and real
SMTP servers."""

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.harness import Throwaway, throwaway
from tests.smtp import SmtpServer


@pytest.fixture
async def env() -> AsyncIterator[Throwaway]:
    """A database and a broker prefix of this test's own."""
    async with throwaway() as created:
        yield created


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A recording SMTP server on a free local port (plain SMTP)."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_smtp_server() -> Iterator[SmtpServer]:
    """A recording SMTP server that requires STARTTLS, with a throwaway CA's certificate
    (trust it with ``client_tls_context()`` or ``ca_pem()``)."""
    server = SmtpServer(require_starttls=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()

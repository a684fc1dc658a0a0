"""Failures a Postgres restart causes are outages (503), told apart from bugs (500) by asking
the database, not by trusting the exception's type."""

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.tickets import filing
from servicekit import db
from servicekit.db import create_engine, database_steady, is_database_outage, session_factory
from tests.harness import free_port
from tests.intake.helpers import Intake, ticket_body

BUSY = "cannot switch to state 12; another operation (2) is in progress"


async def _down_sessions(intake: Intake) -> AsyncEngine:
    """An engine for a port nothing listens on: a database that is away."""
    url = make_url(intake.settings.database_url).set(port=free_port())
    down = intake.settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    return create_engine(down)


async def test_a_busy_connection_error_while_the_database_is_away_is_an_outage(
    intake: Intake,
) -> None:
    engine = await _down_sessions(intake)
    try:
        error = asyncpg.InternalClientError(BUSY)
        assert await is_database_outage(error, session_factory(engine))
    finally:
        await engine.dispose()


async def test_a_busy_connection_error_on_a_steady_database_is_a_bug(intake: Intake) -> None:
    # The shared test database has been up far longer than the restart grace period.
    assert await database_steady(intake.runtime.sessions)
    error = asyncpg.InternalClientError(BUSY)
    assert not await is_database_outage(error, intake.runtime.sessions)


async def test_a_shutting_down_or_full_database_is_an_outage_without_asking(intake: Intake) -> None:
    shutting_down = asyncpg.CannotConnectNowError("the database system is shutting down")
    terminated = asyncpg.AdminShutdownError("terminating connection due to administrator command")
    full = asyncpg.TooManyConnectionsError("remaining connection slots are reserved")
    for error in (shutting_down, terminated, full):
        assert await is_database_outage(error, intake.runtime.sessions)


@pytest.mark.parametrize(("grace_s", "status"), [(1e12, 503), (0.0, 500)])
async def test_a_filing_failing_on_a_busy_connection_is_503_only_around_a_restart(
    intake: Intake, monkeypatch: pytest.MonkeyPatch, grace_s: float, status: int
) -> None:
    """The API classifies the raw driver error by asking the database: within the restart
    grace period it is 503 with Retry-After; on a database up for long, a bug (500)."""

    def busy(*_: object, **__: object) -> None:
        """Fails as a connection a restart broke mid-filing does."""
        raise asyncpg.InternalClientError(BUSY)

    monkeypatch.setattr(filing, "_filed_event", busy)
    monkeypatch.setattr(db, "RESTART_GRACE_S", grace_s)
    # As uvicorn does, answer a crash with the 500 rather than raising it into the test.
    transport = httpx.ASGITransport(intake.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        response = await client.post("/v1/tickets", json=ticket_body(), headers=intake.auth())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
    assert await intake.count("ticket") == 0


@pytest.mark.parametrize(
    "refusal",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    ],
)
async def test_a_connection_refused_at_checkout_is_503_on_the_driver_and_the_session(
    intake: Intake, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    """The pool wraps what asyncpg.connect raised in its dialect's own error class: the driver
    path (the API-key lookup, filing) hands on asyncpg's, so both paths answer 503."""
    await intake.runtime.engine.dispose()  # no idle connection left: the next request connects

    async def refuse(*_: object, **__: object) -> None:
        raise refusal

    monkeypatch.setattr(asyncpg, "connect", refuse)
    transport = httpx.ASGITransport(intake.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        filing_response = await client.post(
            "/v1/tickets", json=ticket_body(), headers=intake.auth()
        )
        listing = await client.get("/v1/tickets", headers=intake.auth(intake.reader_key))
    for response in (filing_response, listing):
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0

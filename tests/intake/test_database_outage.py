"""A database outage refuses filings with 503; the portal's retry files the ticket once."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from intake.settings import Settings
from servicekit.db import asyncpg_dsn
from tests.harness import Throwaway
from tests.intake.helpers import Intake, listening, next_event, running_intake, ticket_body
from tests.proxy import TcpProxy


async def test_a_filing_refused_during_an_outage_succeeds_once_on_retry(env: Throwaway) -> None:
    async with (
        _intake_behind_proxy(env) as (intake, proxy, _),
        listening(env, "ticket.filed") as filed,
    ):
        # Several requests at once leave several connections in the pool.
        warm = await asyncio.gather(*(intake.file(subject=f"warm {i}") for i in range(6)))
        assert len({ticket["id"] for ticket in warm}) == 6
        await proxy.cut()

        headers = {**intake.auth(), "Idempotency-Key": "portal-retry-1"}
        body = ticket_body(subject="Filed while the database restarts")
        refused = await intake.client.post("/v1/tickets", json=body, headers=headers)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0

        await proxy.start()
        # The first retry after the database is back succeeds: the stale pool is gone.
        retried = await intake.client.post("/v1/tickets", json=body, headers=headers)
        assert retried.status_code == 201, retried.text
        again = await intake.client.post("/v1/tickets", json=body, headers=headers)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == retried.json()["id"]

        # One ticket, and its event delivered once the relay is back.
        assert await intake.count("ticket") == 7
        expected = {ticket["id"] for ticket in warm} | {retried.json()["id"]}
        seen: set[str] = set()
        while seen != expected:
            envelope = await next_event(filed, "ticket.filed", timeout_s=30)
            seen.add(str(envelope.payload["ticket_id"]))


async def test_a_filing_cut_off_mid_statement_writes_nothing(env: Throwaway) -> None:
    """The 503 says nothing was saved: a connection lost before COMMIT leaves no ticket."""
    async with _intake_behind_proxy(env) as (intake, proxy, locker):
        await intake.file(subject="warm")
        # Another session holds the product row, so the filing's statement waits in its
        # foreign-key check, sent but not finished, when the connection is lost.
        await locker.execute("BEGIN")
        await locker.execute("SELECT 1 FROM product WHERE slug = $1 FOR UPDATE", "atomic-apps")
        body = ticket_body(product="atomic-apps", subject="cut off")
        post = asyncio.create_task(
            intake.client.post("/v1/tickets", json=body, headers=intake.auth())
        )
        await _until_waiting_on_lock(locker)
        await proxy.cut()
        await locker.execute("COMMIT")
        response = await post
        assert response.status_code == 503, response.text
        assert "saved" not in response.json(), "lost before COMMIT: nothing was saved"
        await asyncio.sleep(0.5)  # the server notices the lost client and rolls back
        assert await locker.fetchval("SELECT count(*) FROM ticket WHERE subject = 'cut off'") == 0
        assert await locker.fetchval("SELECT count(*) FROM outbox_event") == 0


HOLD = 4242
"""The advisory lock a deferred trigger waits for, to hold a COMMIT open."""

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass(frozen=True)
class CutAtCommit:
    """A request whose COMMIT is held (by a deferred trigger on `table`) and cut off."""

    table: str
    count: str
    """Counts the rows the request adds."""
    send: Callable[
        [httpx.AsyncClient, dict[str, str], dict[str, Any]], Coroutine[Any, Any, httpx.Response]
    ]
    retried_status: int


async def _file(client: httpx.AsyncClient, headers: dict[str, str], _: Any) -> httpx.Response:
    body = ticket_body(subject="cut off at commit")
    return await client.post("/v1/tickets", json=body, headers=headers)


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], warm: dict[str, Any]
) -> httpx.Response:
    path = f"/v1/tickets/{warm['id']}/attachments"
    return await client.post(path, headers=headers, files=[("file", ("cut.png", PNG))])


async def _close(
    client: httpx.AsyncClient, headers: dict[str, str], warm: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/v1/tickets/{warm['id']}/close", headers=headers)


CASES = {
    "filing": CutAtCommit("ticket", "SELECT count(*) FROM ticket", _file, 201),
    "upload": CutAtCommit("attachment", "SELECT count(*) FROM attachment", _upload, 201),
    "close": CutAtCommit(
        "ticket_event", "SELECT count(*) FROM ticket_event WHERE status = 'closed'", _close, 200
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
async def test_a_request_cut_off_during_commit_may_be_saved_and_a_retry_finds_out(
    env: Throwaway, case: CutAtCommit, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection lost while COMMIT waits: the server commits, and the 503 must not say
    that nothing was saved. The retry (with the same Idempotency-Key, where the route takes
    one) returns what was saved and saves nothing twice."""
    async with _intake_behind_proxy(env) as (intake, proxy, locker):
        warm = await intake.file(subject="warm")
        before = await locker.fetchval(case.count)
        # A deferred trigger makes the COMMIT wait for a lock this session holds.
        await locker.execute(
            "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN PERFORM pg_advisory_xact_lock({HOLD}); RETURN NULL; END $$;"
            f" CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON {case.table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()"
        )
        await locker.execute(f"SELECT pg_advisory_lock({HOLD})")
        headers = {**intake.auth(), "Idempotency-Key": "cut-at-commit"}
        post = asyncio.create_task(case.send(intake.client, headers, warm))
        await _until_waiting_on_lock(locker)
        await proxy.cut()
        await locker.execute(f"SELECT pg_advisory_unlock({HOLD})")

        response = await post
        assert response.status_code == 503, response.text
        assert response.json()["saved"] == "unknown", response.text
        assert int(response.headers["retry-after"]) > 0
        assert any("may have been saved" in r.getMessage() for r in caplog.records)
        deadline = time.monotonic() + 10
        while await locker.fetchval(case.count) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await locker.fetchval(case.count) == before + 1, "the COMMIT went through"

        await locker.execute(f"DROP TRIGGER hold_commit ON {case.table}")
        await proxy.start()
        retried = await case.send(intake.client, headers, warm)
        assert retried.status_code == case.retried_status, retried.text
        if case.retried_status == 201:
            assert retried.headers["idempotent-replayed"] == "true"
        assert await locker.fetchval(case.count) == before + 1


@contextlib.asynccontextmanager
async def _intake_behind_proxy(
    env: Throwaway,
) -> AsyncIterator[tuple[Intake, TcpProxy, asyncpg.Connection]]:
    """Intake whose database connections pass through a proxy the test can cut; and a
    direct connection (as intake's role) to watch and hold the database meanwhile."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    direct = env.settings(Settings, schema="intake")
    locker = await asyncpg.connect(asyncpg_dsn(direct.database_url))
    try:
        url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
        async with running_intake(
            env, database_url=url.render_as_string(hide_password=False), reconnect_max_s=0.5
        ) as intake:
            yield intake, proxy, locker
    finally:
        await locker.close()
        await proxy.close()


async def _until_waiting_on_lock(conn: asyncpg.Connection) -> None:
    """Wait until a session of this database waits on a lock (the request, held)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request never waited on the lock")

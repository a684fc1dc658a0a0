"""A database outage refuses filings with 503; the portal's retry files the ticket once."""

import asyncio
import time

import asyncpg
from sqlalchemy.engine import make_url

from intake.settings import Settings
from servicekit.db import asyncpg_dsn
from tests.harness import Throwaway
from tests.intake.helpers import listening, next_event, running_intake, ticket_body
from tests.proxy import TcpProxy


async def test_a_filing_refused_during_an_outage_succeeds_once_on_retry(env: Throwaway) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        direct = env.settings(Settings, schema="intake")
        url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
        async with (
            running_intake(
                env, database_url=url.render_as_string(hide_password=False), reconnect_max_s=0.5
            ) as intake,
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
    finally:
        await proxy.close()


async def test_a_filing_cut_off_mid_statement_writes_nothing(env: Throwaway) -> None:
    """The 503 says nothing was saved: a connection lost before COMMIT leaves no ticket."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    direct = env.settings(Settings, schema="intake")
    locker = await asyncpg.connect(asyncpg_dsn(direct.database_url))
    try:
        url = make_url(direct.database_url).set(host="127.0.0.1", port=proxy.port)
        async with running_intake(
            env, database_url=url.render_as_string(hide_password=False), reconnect_max_s=0.5
        ) as intake:
            await intake.file(subject="warm")
            # Another session holds the product row, so the filing's statement waits in its
            # foreign-key check, sent but not finished, when the connection is lost.
            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM product WHERE slug = $1 FOR UPDATE", "atomic-apps")
            body = ticket_body(product="atomic-apps", subject="cut off")
            post = asyncio.create_task(
                intake.client.post("/v1/tickets", json=body, headers=intake.auth())
            )
            deadline = time.monotonic() + 10
            while not await _waiting_on_lock(locker) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await proxy.cut()
            await locker.execute("COMMIT")
            response = await post
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.5)  # the server notices the lost client and rolls back
            assert (
                await locker.fetchval("SELECT count(*) FROM ticket WHERE subject = 'cut off'") == 0
            )
            assert await locker.fetchval("SELECT count(*) FROM outbox_event") == 0
    finally:
        await locker.close()
        await proxy.close()


async def _waiting_on_lock(conn: asyncpg.Connection) -> bool:
    waiting: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return waiting > 0

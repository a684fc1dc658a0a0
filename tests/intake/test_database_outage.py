"""A database outage refuses filings with 503; the portal's retry files the ticket once."""

import asyncio

from sqlalchemy.engine import make_url

from intake.settings import Settings
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

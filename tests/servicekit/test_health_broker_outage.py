"""A broker outage does not take an API offline: a real intake process stays ready and
keeps filing tickets while RabbitMQ is unreachable, says so in /health and /metrics, and
publishes what was filed once the broker is back."""

import asyncio

from contracts.intake import TicketFiled
from intake.__main__ import SERVICE as INTAKE
from servicekit.auth import create_api_key
from servicekit.db import create_engine, session_factory
from tests.events import tap
from tests.harness import Throwaway, eventually, service_settings, start_process
from tests.intake.helpers import ticket_body
from tests.proxy import TcpProxy


async def test_intake_stays_ready_and_files_tickets_while_the_broker_is_away(
    env: Throwaway,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    settings = await service_settings(
        env, INTAKE, amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    )
    engine = create_engine(settings)
    async with session_factory(engine)() as session, session.begin():
        key = (await create_api_key(session, name="portal", scopes=["tickets:write"])).secret
    await engine.dispose()
    intake = await start_process(settings, "intake")
    try:
        await intake.wait_ready()
        async with intake.client() as client, tap(env, TicketFiled.event_type) as events:

            async def broker_up(expected: bool) -> bool:
                health = (await client.get("/health")).json()
                return bool(health["dependencies"]["broker"]["ok"] is expected)

            await eventually(lambda: broker_up(True), timeout_s=15)
            await proxy.cut()
            await eventually(lambda: broker_up(False), timeout_s=15)

            for _ in range(10):  # what a readiness probe sees for a while
                assert (await client.get("/readyz")).status_code == 200
                await asyncio.sleep(0.2)
            filed = await client.post(
                "/v1/tickets", json=ticket_body(), headers={"Authorization": f"Bearer {key}"}
            )
            assert filed.status_code == 201, filed.text
            metrics = (await client.get("/metrics")).text
            assert 'klaxon_dependency_up{dependency="broker",service="intake"} 0.0' in metrics
            assert 'klaxon_broker_connected{loop="relay",service="intake"} 0.0' in metrics

            async def waiting_in_outbox() -> bool:
                return bool((await client.get("/health")).json()["outbox"]["backlog"] >= 1)

            await eventually(waiting_in_outbox)  # by the next sample

            await proxy.start()
            ticket_id = filed.json()["id"]
            await events.wait_for(
                TicketFiled.event_type, lambda e: e.payload["ticket_id"] == ticket_id, 30
            )
            await eventually(lambda: broker_up(True), timeout_s=15)
    finally:
        await intake.terminate()
        intake.log_path.unlink(missing_ok=True)
        await proxy.close()

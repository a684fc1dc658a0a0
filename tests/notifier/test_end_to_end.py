"""Intake and the notifier as real processes (``python -m ... serve``): a CRITICAL ticket
through intake's API reaches the on-call engineer's inbox, then the reporter's, and the
ticket moves to oncall_notified in intake."""

import asyncio

from intake.__main__ import SERVICE as INTAKE
from notifier.__main__ import SERVICE as NOTIFIER
from servicekit.auth import create_api_key
from servicekit.db import create_engine, session_factory
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, service_process
from tests.intake.helpers import ticket_body
from tests.smtp import SmtpServer


async def _key(settings: ServiceSettings, scopes: list[str]) -> str:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            key = await create_api_key(session, name="e2e", scopes=scopes)
            await session.commit()
    finally:
        await engine.dispose()
    return key.secret


async def test_critical_ticket_through_intake_reaches_oncall_then_reporter(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with (
        service_process(
            env, NOTIFIER, smtp_port=smtp.port, delivery_poll_interval_s=0.2
        ) as notifier,
        service_process(env, INTAKE) as intake,
    ):
        ops = {"Authorization": f"Bearer {await _key(notifier.settings, ['oncall:write'])}"}
        portal = {"Authorization": f"Bearer {await _key(intake.settings, ['admin'])}"}
        async with notifier.client(headers=ops) as client:
            person = await client.post(
                "/v1/people", json={"name": "Alice", "email": "alice@ops.example"}
            )
            assert person.status_code == 201, person.text
            level = {"target_type": "person", "target_id": person.json()["id"], "timeout_s": 600}
            policy = await client.post(
                "/v1/policies", json={"name": "Default", "is_default": True, "levels": [level]}
            )
            assert policy.status_code == 201, policy.text

        async with intake.client(headers=portal) as client:
            filed = await client.post(
                "/v1/tickets",
                json=ticket_body(reporter={"name": "Ada", "email": "ada@acme.example"}),
                headers={"Idempotency-Key": "e2e-1"},
            )
            assert filed.status_code == 201, filed.text
            ticket = filed.json()
            (page_mail,) = await smtp.wait_for(1, address="alice@ops.example", timeout_s=20)
            (reporter_mail,) = await smtp.wait_for(1, address="ada@acme.example", timeout_s=20)
            assert ticket["number"] in page_mail.text()
            assert ticket["number"] in reporter_mail.text()
            assert "has been notified" in reporter_mail.text()

            status = ""
            for _ in range(200):
                status = (await client.get(f"/v1/tickets/{ticket['id']}")).json()["status"]
                if status == "oncall_notified":
                    break
                await asyncio.sleep(0.05)
            assert status == "oncall_notified"

"""The test harness itself, against the one real service it can run today (intake) and
a real SMTP server: what other services' tests rely on, checked once here."""

import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest

from contracts.common import Person, ProductRef
from contracts.intake import TicketFiled, TicketStatusChanged
from contracts.notifier import Channel, PageNotified
from intake.__main__ import SERVICE as INTAKE
from servicekit.auth import create_api_key
from tests.events import publish, tap
from tests.harness import (
    InProcess,
    Throwaway,
    service_in_process,
    service_process,
    start_process,
    wait_connected,
)
from tests.smtp import SmtpServer

TICKET = {
    "organization": "Acme Corp",
    "reporter": {"name": "Ada Lovelace", "email": "ada@acme.example"},
    "product": "canvas-hosting",
    "severity": "critical",
    "subject": "Every page returns 502",
    "description": "Since 09:12 UTC the site is down.",
}


async def portal_key(service: InProcess) -> str:
    """A key allowed to file and read tickets."""
    async with service.runtime.sessions() as session, session.begin():
        key = await create_api_key(session, name="portal", scopes=["tickets:write", "tickets:read"])
    return key.secret


async def file_ticket(client: httpx.AsyncClient, key: str, **headers: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/tickets", json=TICKET, headers={"Authorization": f"Bearer {key}", **headers}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_service_runs_in_process_and_its_events_can_be_tapped_and_injected(
    env: Throwaway,
) -> None:
    async with (
        service_in_process(env, INTAKE) as intake,
        tap(env, "ticket.*") as events,
    ):
        await wait_connected(intake.runtime)
        key = await portal_key(intake)
        request_id = uuid.uuid4()
        ticket = await file_ticket(intake.client, key, **{"X-Correlation-ID": str(request_id)})

        filed = await events.wait_for(
            TicketFiled.event_type, lambda e: e.payload["ticket_id"] == ticket["id"]
        )
        assert filed.correlation_id == request_id

        page = PageNotified(
            page_id=uuid.uuid4(),
            product=ProductRef(slug="canvas-hosting", name="Canvas Hosting"),
            level=1,
            oncall=Person(name="Grace Hopper", email="grace@vendor.example"),
            channels=(Channel.SMS,),
            ticket_ids=(uuid.UUID(ticket["id"]),),
            notified_at=datetime.now(UTC),
        )
        injected = await publish(env, page, producer="notifier", causation=filed)
        changed = await events.wait_for(TicketStatusChanged.event_type)
        assert changed.payload["new_status"] == "oncall_notified"
        assert changed.causation_id == injected.id
        assert changed.correlation_id == request_id
        assert [e.type for e in events.collected()] == [
            TicketFiled.event_type,
            TicketStatusChanged.event_type,
        ]


async def test_a_tap_reports_what_it_saw_when_nothing_matches(env: Throwaway) -> None:
    async with tap(env, "ticket.*") as events:
        with pytest.raises(AssertionError, match=r"no matching ticket\.filed"):
            await events.wait_for(TicketFiled.event_type, timeout_s=0.3)


async def test_a_service_runs_as_a_real_process_and_can_be_killed_and_restarted(
    env: Throwaway,
) -> None:
    async with service_process(env, INTAKE) as intake, tap(env, "ticket.filed") as events:
        async with intake.client() as client:
            health = (await client.get("/health")).json()
            assert health["service"] == "intake"
        async with service_in_process(env, INTAKE, relay_enabled=False) as local:
            key = await portal_key(local)
        async with intake.client() as client:
            ticket = await file_ticket(client, key)
        await events.wait_for(
            TicketFiled.event_type, lambda e: e.payload["ticket_id"] == ticket["id"]
        )

        assert await intake.kill() == -9
        restarted = await start_process(intake.settings, "intake", port=intake.port)
        try:
            await restarted.wait_ready()
            async with restarted.client() as client:
                again = await client.get(
                    f"/v1/tickets/{ticket['id']}", headers={"Authorization": f"Bearer {key}"}
                )
                assert again.status_code == 200
        finally:
            status = await restarted.terminate()
            output = restarted.output()
            restarted.log_path.unlink()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert status == -15
        assert "Application shutdown complete" in output


def message(to: str = "ada@acme.example") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "klaxon@vendor.example"
    mail["To"] = to
    mail["Subject"] = "Your report reached the on-call engineer"
    mail.set_content("Status: https://status.example/canvas")
    mail.add_alternative("<p>Status page</p>", subtype="html")
    return mail


async def test_the_smtp_server_records_parsed_messages_and_can_be_down_for_a_while(
    smtp_server: SmtpServer,
) -> None:
    await aiosmtplib.send(message(), hostname=smtp_server.host, port=smtp_server.port)
    [received] = await smtp_server.wait_for(1)
    assert received.envelope_to == ["ada@acme.example"]
    assert received.header("Subject") == "Your report reached the on-call engineer"
    assert "status.example/canvas" in received.text()
    assert received.html().strip() == "<p>Status page</p>"
    assert received.tls is False

    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(message(), hostname=smtp_server.host, port=smtp_server.port)
    smtp_server.start()
    await aiosmtplib.send(
        message("bob@acme.example"), hostname=smtp_server.host, port=smtp_server.port
    )
    await smtp_server.wait_for(1, address="bob@acme.example")

    smtp_server.fail_with = "451 4.3.0 Try again later"
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(message(), hostname=smtp_server.host, port=smtp_server.port)
    assert refused.value.code == 451
    assert smtp_server.refused == 1
    assert len(smtp_server.messages()) == 2


async def test_the_tls_smtp_server_takes_mail_only_over_trusted_starttls(
    tls_smtp_server: SmtpServer,
) -> None:
    server = tls_smtp_server
    await aiosmtplib.send(
        message(),
        hostname=server.host,
        port=server.port,
        start_tls=True,
        tls_context=server.client_tls_context(),
    )
    [received] = await server.wait_for(1)
    assert received.tls is True

    with pytest.raises(aiosmtplib.SMTPResponseException) as plain:
        await aiosmtplib.send(message(), hostname=server.host, port=server.port, start_tls=False)
    assert plain.value.code == 530

    with pytest.raises(
        (ssl.SSLError, aiosmtplib.SMTPConnectError), match="CERTIFICATE_VERIFY_FAILED"
    ):
        await aiosmtplib.send(
            message(),
            hostname=server.host,
            port=server.port,
            start_tls=True,
            tls_context=ssl.create_default_context(),
        )
    ca = server.ca_pem()
    try:
        await aiosmtplib.send(
            message(), hostname=server.host, port=server.port, start_tls=True, cert_bundle=str(ca)
        )
    finally:
        ca.unlink()
    assert len(server.messages()) == 2

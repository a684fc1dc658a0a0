"""The email channel: STARTTLS against a server with its own CA, multipart text + HTML,
and a refused message recorded on the page's timeline while the ladder moves on."""

from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject
from tests.notifier.helpers import running_notifier, ticket_filed
from tests.smtp import SmtpServer


async def test_email_goes_over_starttls_verified_by_the_configured_ca(
    env: Throwaway, tls_smtp_server: SmtpServer
) -> None:
    ca = tls_smtp_server.ca_pem()
    async with running_notifier(
        env, tls_smtp_server, smtp_starttls=True, smtp_ca_file=str(ca)
    ) as service:
        alice = await service.person("Alice", "alice@ops.example")
        await service.policy(("person", alice, 60))
        await inject(env, ticket_filed(), producer="intake")
        (mail,) = await tls_smtp_server.wait_for(1, address="alice@ops.example")
    assert mail.tls
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.text()
    assert mail.html().startswith("<!DOCTYPE html>")


async def test_a_refused_email_is_on_the_timeline_and_the_ladder_moves_on(
    env: Throwaway, smtp: SmtpServer
) -> None:
    smtp.fail_with = "550 5.1.1 no such mailbox"
    async with running_notifier(env, smtp) as service:
        alice = await service.person("Alice", "alice@ops.example")
        bob = await service.person("Bob", "bob@ops.example")
        await service.policy(("person", alice, 0.5), ("person", bob, 60))
        await inject(env, ticket_filed(), producer="intake")

        async def failure_noted() -> bool:
            pages = await service.pages()
            if not pages:
                return False
            page = await service.page(pages[0]["id"])
            kinds = [step["kind"] for step in page["timeline"]]
            return "delivery_failed" in kinds and "escalated" in kinds

        await eventually(failure_noted, timeout_s=10)
        (page,) = await service.pages()
        assert page["level"] == 2

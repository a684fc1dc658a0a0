"""A ticket filed before the notifier ever ran waits in its queue (declared by `migrate`)
and is paged when the notifier starts."""

from notifier import directory, policies, schemas
from servicekit.cli import migrate
from servicekit.db import create_engine, session_factory
from tests.harness import Throwaway
from tests.intake.helpers import inject
from tests.notifier.helpers import MIGRATIONS, notifier_settings, running_notifier, ticket_filed
from tests.smtp import SmtpServer


async def test_a_ticket_filed_before_the_notifier_ever_started_is_paged_when_it_starts(
    env: Throwaway, smtp: SmtpServer
) -> None:
    settings = notifier_settings(env, smtp)
    await env.provision(settings, None)
    await migrate(settings, MIGRATIONS)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            alice = await directory.create_person(
                session, schemas.PersonCreate(name="Alice", email="alice@ops.example")
            )
            await policies.create_policy(
                session,
                schemas.PolicyCreate.model_validate(
                    {
                        "name": "Default",
                        "is_default": True,
                        "levels": [{"target_type": "person", "target_id": str(alice.id)}],
                    }
                ),
            )
    finally:
        await engine.dispose()
    ticket = ticket_filed(reporter="ada@acme.example")
    await inject(env, ticket, producer="intake")

    async with running_notifier(env, smtp, provision=False):
        await smtp.wait_for(1, address="alice@ops.example")
        await smtp.wait_for(1, address="ada@acme.example")
    assert ticket.number in smtp.to("alice@ops.example")[0].text()

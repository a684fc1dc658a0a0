"""End to end with the real services: a CRITICAL ticket filed through intake's API before
the notifier's consumer ever ran is paged as soon as the notifier starts, because migrate
declared the notifier's queue and bindings."""

import aio_pika

from contracts import topology
from servicekit import outbox
from servicekit.cli import migrate
from servicekit.runtime import Runtime
from tests.harness import AMQP_URL, Throwaway, eventually
from tests.intake.helpers import running_intake
from tests.notifier.helpers import MIGRATIONS, running_notifier
from tests.smtp import SmtpServer


async def _published(runtime: Runtime) -> bool:
    async with runtime.sessions() as session:
        unsent, _ = await outbox.backlog(session)
    return unsent == 0


async def test_a_critical_ticket_filed_before_the_notifier_ever_started_is_paged_when_it_starts(
    env: Throwaway, smtp_server: SmtpServer
) -> None:
    # The on-call set-up goes through the notifier's API with its consumer switched off:
    # no consumer of the notifier's has declared or bound anything.
    async with running_notifier(env, smtp_server, consumer_enabled=False) as setup:
        alice = await setup.person("Alice", "alice@ops.example")
        schedule = await setup.weekly_schedule(alice)
        await setup.policy(("schedule", schedule, 60))
        settings = setup.settings
    await migrate(settings, MIGRATIONS)

    async with running_intake(env) as intake:
        filed = await intake.file(severity="critical")
        await eventually(lambda: _published(intake.runtime))
    assert await _waiting(topology.service_queue("notifier", prefix=env.prefix)) >= 1

    async with running_notifier(env, smtp_server, provision=False) as notifier:
        await smtp_server.wait_for(1, address="alice@ops.example")
        pages = await notifier.pages()
    assert len(pages) == 1
    assert filed["number"] in smtp_server.to("alice@ops.example")[0].text()


async def _waiting(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0

"""Round trips per CRITICAL ticket: ticket.filed -> the page opens and the on-call email is
queued -> that email is accepted and the reporter's is queued -> the reporter's email is
accepted. Each step is one transaction; its statements are counted (the notifier at 50
tickets a second spends most of its CPU on them). Also checks each step did its work."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from contracts.intake import TicketFiled
from notifier import directory, policies, schemas
from notifier.handlers import make_handlers
from notifier.models import page, page_event, page_ticket
from notifier.outcomes import make_outcome_handler
from servicekit.db import create_engine, session_factory
from servicekit.deliveries import Delivery, Outcome
from servicekit.tables import delivery, outbox_event
from tests.harness import Throwaway
from tests.notifier.helpers import MIGRATIONS, notifier_settings, ticket_filed
from tests.smtp import SmtpServer

BUDGET = {"ticket_filed": 7, "page_email_accepted": 5, "reporter_email_accepted": 1}
"""Statements of each step: lookup, open-with-ticket, on-call person, delivery (2),
timeline + page.opened, timer | notified + timeline, tickets + links, page.notified,
delivery (2) | acknowledged + timeline + page.reporter_acknowledged."""


async def test_a_critical_ticket_takes_a_fixed_number_of_statements(
    env: Throwaway, smtp: SmtpServer
) -> None:
    settings = notifier_settings(env, smtp, link_secret="test-secret")  # no runtime here
    await env.provision(settings, MIGRATIONS)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async def step(run: Callable[[AsyncSession], Any]) -> int:
        async with sessions() as session, session.begin():
            before = len(statements)
            await run(session)
            return len(statements) - before

    async def accept(session: AsyncSession, purpose: str) -> None:
        (row,) = (
            await session.execute(
                select(delivery).where(
                    delivery.c.state == "queued", delivery.c.payload["purpose"].astext == purpose
                )
            )
        ).all()
        await session.execute(update(delivery).where(delivery.c.id == row.id).values(state="sent"))
        item = Delivery(
            row.id, row.dedupe_key, row.channel, row.payload, 1, row.correlation_id, row.created_at
        )
        before = len(statements)
        await make_outcome_handler(settings)(session, item, Outcome("sent", 1, {}))
        spent[purpose] = len(statements) - before

    try:
        async with sessions() as session, session.begin():
            alice = await directory.create_person(
                session, schemas.PersonCreate(name="Alice", email="alice@ops.example")
            )
            levels = [{"target_type": "person", "target_id": str(alice.id), "timeout_s": 60}]
            policy = {"name": "Default", "is_default": True, "levels": levels}
            await policies.create_policy(session, schemas.PolicyCreate.model_validate(policy))
        ticket = ticket_filed()
        handler = make_handlers(settings)[TicketFiled.event_type]
        envelope = Envelope.wrap(ticket, producer="intake")
        spent: dict[str, int] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        filed = await step(lambda session: handler(session, ticket, envelope))
        await step(lambda session: accept(session, "page"))
        await step(lambda session: accept(session, "reporter_ack"))
        event.remove(engine.sync_engine, "before_cursor_execute", count)

        async with sessions() as session:
            events = (await session.scalars(select(outbox_event.c.routing_key))).all()
            kinds = (
                await session.scalars(select(page_event.c.kind).order_by(page_event.c.id))
            ).all()
            acknowledged = await session.scalar(select(page_ticket.c.reporter_acknowledged_at))
            notified = await session.scalar(select(page.c.notified_at))
    finally:
        await engine.dispose()
    assert sorted(events) == ["page.notified", "page.opened", "page.reporter_acknowledged"]
    assert list(kinds) == ["opened", "notifying", "delivered", "delivered"]
    assert acknowledged is not None
    assert notified is not None
    assert {
        "ticket_filed": filed,
        "page_email_accepted": spent["page"],
        "reporter_email_accepted": spent["reporter_ack"],
    } == BUDGET

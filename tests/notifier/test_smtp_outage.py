"""The SMTP server down for a while, then back: nothing lost, nothing repeated, and the
ladder moves on meanwhile."""

import asyncio
from collections import Counter

from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject
from tests.notifier.helpers import Notifier, for_delivery, running_notifier, ticket_filed
from tests.smtp import SmtpServer


async def test_smtp_down_then_back_loses_nothing_and_repeats_nothing(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with running_notifier(env, smtp, delivery_max_attempts=100) as service:
        await _down_then_back(env, service, smtp)


async def _count(service: Notifier, sql: str) -> int:
    return int(await service.scalar(sql))


async def _down_then_back(env: Throwaway, service: Notifier, smtp: SmtpServer) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    await service.policy(("person", alice, 1.0), ("person", bob, 60))
    smtp.stop()
    tickets = [ticket_filed(reporter=f"r{i}@acme.example") for i in range(5)]
    for ticket in tickets:
        await inject(env, ticket, producer="intake")

    # The ladder moves on while every attempt fails.
    async def escalated() -> bool:
        return await _count(service, "SELECT coalesce(max(level), 0) FROM page") == 2

    async def retried() -> bool:
        return await _count(service, "SELECT count(*) FROM delivery WHERE attempts >= 2") >= 2

    await eventually(escalated, timeout_s=10, interval_s=0.1)
    await eventually(retried, timeout_s=10)
    (page,) = await service.pages()
    assert page["notified_at"] is None  # nothing accepted yet: no reporter email either
    assert await service.scalar("SELECT count(*) FROM delivery WHERE channel = 'email'") == 2

    await asyncio.sleep(2)
    smtp.start()
    await smtp.wait_for(1, address="alice@ops.example", timeout_s=30)
    await smtp.wait_for(1, address="bob@ops.example", timeout_s=30)
    await eventually(lambda: len(for_delivery(smtp, "reporter-ack:")) >= 5, timeout_s=30)
    await asyncio.sleep(1)

    expected = await service.scalar("SELECT count(*) FROM delivery")
    sent = Counter(received.header("X-Klaxon-Delivery") for received in smtp.received)
    duplicates = sum(n - 1 for n in sent.values())
    lost = expected - len(sent)
    assert (lost, duplicates) == (0, 0)
    assert expected == 7  # alice, bob, five reporters
    assert await service.scalar("SELECT count(*) FROM delivery WHERE state <> 'sent'") == 0

"""Twenty CRITICAL tickets about one outage, filed at once and handled by two replicas
with several consumer workers each: one page, twenty reporter emails, one on-call email
per level."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from contracts.common import Person
from contracts.statuspage import StatusPagePublished
from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject, listening
from tests.notifier.helpers import (
    PRODUCT,
    Notifier,
    for_delivery,
    next_payload,
    running_notifier,
    ticket_filed,
)
from tests.smtp import SmtpServer


async def test_twenty_tickets_at_once_make_one_page_and_twenty_reporter_emails(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            running_notifier(env, smtp, consumer_workers=4, consumer_batch_size=1)
        )
        await stack.enter_async_context(
            running_notifier(env, smtp, provision=False, consumer_workers=4, consumer_batch_size=1)
        )
        alice = await first.person("Alice", "alice@ops.example")
        bob = await first.person("Bob", "bob@ops.example")
        await first.policy(("person", alice, 1.5), ("person", bob, 60))
        tickets = [ticket_filed(reporter=f"r{i}@acme.example") for i in range(20)]

        async with listening(env, "page.notified") as events:
            await asyncio.gather(*(inject(env, t, producer="intake") for t in tickets))
            await smtp.wait_for(1, address="bob@ops.example", timeout_s=30)
            await eventually(lambda: len(for_delivery(smtp, "reporter-ack:")) >= 20, timeout_s=30)
            notified: set[object] = set()
            while len(notified) < 20:
                notified.update((await next_payload(events, "page.notified")).ticket_ids)

        await asyncio.sleep(0.5)
        pages = await first.pages()
        assert len(pages) == 1
        assert len(pages[0]["tickets"]) == 20
        assert len(smtp.to("alice@ops.example")) == 1
        assert len(smtp.to("bob@ops.example")) == 1
        reporters = sorted(a for r in for_delivery(smtp, "reporter-ack:") for a in r.envelope_to)
        assert reporters == sorted(t.reporter.email for t in tickets)
        assert notified == {t.ticket_id for t in tickets}


async def test_reporter_email_has_number_links_phone_and_the_thirty_minute_rule(
    env: Throwaway, smtp: SmtpServer
) -> None:
    phones = {PRODUCT.slug: "+44 20 7946 0000"}
    async with running_notifier(env, smtp, after_hours_phones=phones) as service:
        alice = await service.person("Alice", "alice@ops.example")
        await service.policy(("person", alice, 60))
        published = StatusPagePublished(
            status_page_id=uuid.uuid4(),
            status_page="canvas",
            title="Canvas status",
            status_page_url="https://status.example.com/canvas",
            products=(PRODUCT.slug,),
            changed_at=datetime.now(UTC),
        )
        await inject(env, published, producer="statuspage")
        await eventually(
            lambda: service.scalar("SELECT count(*) FROM status_page_link"), timeout_s=10
        )
        ticket = ticket_filed(reporter="ada@acme.example", number="KLX-4242")
        async with listening(env, "page.reporter_acknowledged") as events:
            await inject(env, ticket, producer="intake")
            acked = await next_payload(events, "page.reporter_acknowledged")
        assert acked.reporter == Person(name="Ada Lovelace", email="ada@acme.example")

        (mail,) = smtp.to("ada@acme.example")
        text, html = mail.text(), mail.html()
        deadline = (ticket.filed_at + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M UTC")
        for body in (text, html):
            assert "KLX-4242" in body
            assert "on-call DevOps engineer has been notified" in body
            assert "https://status.example.com/canvas" in body
            assert "+44 20 7946 0000" in body
            assert "within 30 minutes" in body
            assert deadline in body
        assert "Canvas status" in html
        assert mail.message["Subject"].startswith("[KLX-4242]")
        assert mail.message["Message-ID"].endswith("@klaxon.localhost>")
        # The on-call email was accepted before the reporter's was sent.
        assert smtp.received.index(smtp.to("alice@ops.example")[0]) < smtp.received.index(mail)


async def test_reporter_email_falls_back_to_the_default_status_page_and_number(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    await service.policy(("person", alice, 60))
    await inject(env, ticket_filed(reporter="ada@acme.example"), producer="intake")
    await smtp.wait_for(1, address="ada@acme.example")
    text = smtp.to("ada@acme.example")[0].text()
    assert service.settings.default_status_page_url in text
    assert service.settings.after_hours_phone in text


async def test_a_ticket_joining_a_notified_page_gets_its_email_at_once(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with running_notifier(env, smtp) as service:
        alice = await service.person("Alice", "alice@ops.example")
        await service.policy(("person", alice, 60))
        await inject(env, ticket_filed(reporter="first@acme.example"), producer="intake")
        await smtp.wait_for(1, address="first@acme.example")
        async with listening(env, "page.notified") as events:
            late = ticket_filed(reporter="late@acme.example")
            await inject(env, late, producer="intake")
            await smtp.wait_for(1, address="late@acme.example")
            notified = await next_payload(events, "page.notified")
        assert notified.ticket_ids == (late.ticket_id,)
        assert len(smtp.to("alice@ops.example")) == 1

"""A CRITICAL ticket pages the on-call engineer at once and, once that email is accepted,
tells the reporter; the ladder escalates until someone acknowledges."""

import asyncio

from contracts.common import Severity
from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject, listening
from tests.notifier.helpers import Notifier, for_delivery, next_payload, ticket_filed
from tests.smtp import SmtpServer


async def test_critical_ticket_pages_oncall_and_emails_reporter(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    schedule = await service.weekly_schedule(alice)
    await service.policy(("schedule", schedule, 60))
    ticket = ticket_filed(reporter="ada@acme.example")

    async with listening(env, "page.*") as events:
        await inject(env, ticket, producer="intake")
        await smtp.wait_for(1, address="alice@ops.example")
        await smtp.wait_for(1, address="ada@acme.example")
        opened = await next_payload(events, "page.opened")
        notified = await next_payload(events, "page.notified")
        acked = await next_payload(events, "page.reporter_acknowledged")

    assert opened.ticket_ids == (ticket.ticket_id,)
    assert notified.ticket_ids == (ticket.ticket_id,)
    assert notified.oncall.email == "alice@ops.example"
    assert acked.ticket_id == ticket.ticket_id
    page_mail = smtp.to("alice@ops.example")[0]
    assert ticket.number in page_mail.text()
    assert "http://notifier/v1/links/" in page_mail.html()
    reporter_mail = smtp.to("ada@acme.example")[0]
    assert reporter_mail.message["In-Reply-To"] is None


async def test_non_critical_ticket_pages_nobody(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    await service.policy(("person", alice, 60))
    await inject(env, ticket_filed(severity=Severity.HIGH), producer="intake")
    await inject(env, ticket_filed(), producer="intake")
    await smtp.wait_for(2)
    assert len(await service.pages()) == 1


async def test_ladder_escalates_level_by_level_and_repeats(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    await service.policy(("person", alice, 0.5), ("person", bob, 0.5), repeat=1)
    async with listening(env, "page.escalated") as events:
        await inject(env, ticket_filed(), producer="intake")
        first = await next_payload(events, "page.escalated")
        second = await next_payload(events, "page.escalated")
        third = await next_payload(events, "page.escalated")
    assert (first.from_level, first.to_level) == (1, 2)
    assert (second.from_level, second.to_level) == (2, 1)
    assert (third.from_level, third.to_level) == (1, 2)
    await smtp.wait_for(2, address="alice@ops.example")
    await smtp.wait_for(2, address="bob@ops.example")
    await asyncio.sleep(1.5)  # the rounds are spent: nothing more
    assert len(smtp.to("alice@ops.example")) == 2
    assert len(smtp.to("bob@ops.example")) == 2
    (page,) = await service.pages()
    timeline = (await service.page(page["id"]))["timeline"]
    assert timeline[-1]["kind"] == "ladder_exhausted"
    # Every mail of the page is in one thread.
    roots = {m.message["Message-ID"] for m in smtp.received if m.message["In-Reply-To"] is None}
    thread = {m.message["In-Reply-To"] for m in for_delivery(smtp, "page:")} - {None}
    assert thread <= roots
    assert len(thread) == 1


async def test_acknowledging_by_api_stops_the_ladder(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    await service.policy(("person", alice, 3.0), ("person", bob, 3.0))
    async with listening(env, "page.acknowledged") as events:
        await inject(env, ticket_filed(), producer="intake")
        await smtp.wait_for(1, address="alice@ops.example")
        (page,) = await service.pages()
        body = await service.post(
            f"/v1/pages/{page['id']}/acknowledge", {"person_id": alice}, status=200
        )
        assert body["state"] == "acknowledged"
        again = await service.post(f"/v1/pages/{page['id']}/acknowledge", {}, status=200)
        assert again["acknowledged_by_name"] == "Alice"
        acked = await next_payload(events, "page.acknowledged")
    assert acked.by.email == "alice@ops.example"
    assert await service.scalar("SELECT count(*) FROM timer WHERE kind = 'escalate'") == 0
    await asyncio.sleep(3.2)
    assert smtp.to("bob@ops.example") == []


async def test_acknowledging_by_signed_link_stops_the_ladder(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    await service.policy(("person", alice, 3.0), ("person", bob, 3.0))
    await inject(env, ticket_filed(), producer="intake")
    await smtp.wait_for(1, address="alice@ops.example")
    mail = smtp.to("alice@ops.example")[0].text()
    ack_url = next(
        line.split(": ", 1)[1] for line in mail.splitlines() if line.startswith("Acknowledge")
    )
    path = ack_url.removeprefix("http://notifier")

    confirm = await service.client.get(path)
    assert confirm.status_code == 200
    assert '<form method="post">' in confirm.text
    (page,) = await service.pages()
    assert page["state"] == "triggered"  # a GET changes nothing

    forged = await service.client.post(path[:-3] + "abc")
    assert forged.status_code == 403
    assert forged.headers["content-type"].startswith("application/problem+json")

    done = await service.client.post(path)
    assert done.status_code == 200
    (page,) = await service.pages()
    assert page["state"] == "acknowledged"
    assert page["acknowledged_by_name"] == "Alice"
    assert await service.scalar("SELECT count(*) FROM timer WHERE kind = 'escalate'") == 0
    await asyncio.sleep(3.2)
    assert smtp.to("bob@ops.example") == []


async def test_an_expired_link_is_refused(env: Throwaway, smtp: SmtpServer) -> None:
    from tests.notifier.helpers import running_notifier

    async with running_notifier(env, smtp, link_max_age_s=1) as service:
        alice = await service.person("Alice", "alice@ops.example")
        await service.policy(("person", alice, 60))
        await inject(env, ticket_filed(), producer="intake")
        await smtp.wait_for(1, address="alice@ops.example")
        mail = smtp.to("alice@ops.example")[0].text()
        url = next(
            line.split(": ", 1)[1] for line in mail.splitlines() if line.startswith("Resolve")
        )
        await asyncio.sleep(2.1)
        refused = await service.client.post(url.removeprefix("http://notifier"))
        assert refused.status_code == 403
        assert "expired" in refused.json()["detail"]


async def test_pages_keep_opening_once_postgres_plans_the_upsert_generically(
    service: Notifier,
) -> None:
    """After a few runs on one connection Postgres may plan the upsert generically; its
    conflict target must still match the partial unique index of open pages."""
    from sqlalchemy import text

    from contracts.common import ProductRef
    from contracts.notifier import PageSource, Urgency
    from notifier import paging

    async with service.runtime.sessions() as session, session.begin():
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        for i in range(3):
            _, opened = await paging.trigger(
                session,
                dedup_key="product:p",
                product=ProductRef(slug="p", name="P"),
                source=PageSource.TICKET,
                summary=f"ticket {i}",
                urgency=Urgency.HIGH,
            )
            assert opened == (i == 0)


async def test_a_delayed_rule_is_skipped_once_the_page_is_acknowledged(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    rules = [{"channel": "email", "delay_s": 0}, {"channel": "email", "delay_s": 2}]
    alice = await service.person("Alice", "alice@ops.example", rules=rules)
    await service.policy(("person", alice, 60))
    await inject(env, ticket_filed(), producer="intake")
    await smtp.wait_for(1, address="alice@ops.example")
    (page,) = await service.pages()
    await service.post(f"/v1/pages/{page['id']}/acknowledge", {}, status=200)

    async def skipped() -> bool:
        steps = (await service.page(page["id"]))["timeline"]
        return any(s["kind"] == "not_sent" and "acknowledged" in s["detail"] for s in steps)

    await eventually(skipped, timeout_s=10)
    assert len(smtp.to("alice@ops.example")) == 1


async def test_editing_the_policy_does_not_disturb_a_running_escalation(
    env: Throwaway, service: Notifier, smtp: SmtpServer
) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    bob = await service.person("Bob", "bob@ops.example")
    carol = await service.person("Carol", "carol@ops.example")
    policy = await service.policy(("person", alice, 1.0), ("person", bob, 60))
    await inject(env, ticket_filed(), producer="intake")
    await smtp.wait_for(1, address="alice@ops.example")
    edited = {
        "name": "Edited",
        "is_default": True,
        "levels": [{"target_type": "person", "target_id": carol, "timeout_s": 60}] * 2,
    }
    response = await service.client.put(f"/v1/policies/{policy}", json=edited, headers=service.auth)
    assert response.status_code == 200, response.text
    await smtp.wait_for(1, address="bob@ops.example", timeout_s=10)
    assert smtp.to("carol@ops.example") == []

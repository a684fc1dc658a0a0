"""Acknowledge/resolve links outlive the notifier that sent them: every replica, and a
restarted one, signs and reads them with the one secret kept in the notifier's schema
(no setting needed); a forged or otherwise signed link is still refused, and an explicit
``KLAXON_LINK_SECRET`` wins."""

import asyncio
import uuid

from notifier import link_secret, links
from notifier.settings import Settings
from servicekit.migrations import upgrade
from tests.harness import Throwaway
from tests.intake.helpers import inject
from tests.notifier.helpers import MIGRATIONS, notifier_settings, running_notifier, ticket_filed
from tests.smtp import SmtpServer


def _link(mail_text: str, action: str) -> str:
    """The path of the link a mail offers for `action` ("Acknowledge" or "Resolve")."""
    url = next(line.split(": ", 1)[1] for line in mail_text.splitlines() if line.startswith(action))
    return url.removeprefix("http://notifier")


async def test_a_link_sent_by_one_replica_works_on_another_and_after_a_restart(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with running_notifier(env, smtp) as first:
        assert not first.settings.link_secret
        alice = await first.person("Alice", "alice@ops.example")
        await first.policy(("person", alice, 60))
        await inject(env, ticket_filed(), producer="intake")
        (mail,) = await smtp.wait_for(1, address="alice@ops.example")
        acknowledge, resolve = _link(mail.text(), "Acknowledge"), _link(mail.text(), "Resolve")

        async with running_notifier(env, smtp, provision=False) as second:
            confirm = await second.client.get(acknowledge)
            assert confirm.status_code == 200, confirm.text
            done = await second.client.post(acknowledge)
            assert done.status_code == 200, done.text
        (page,) = await first.pages()
        assert (page["state"], page["acknowledged_by_name"]) == ("acknowledged", "Alice")

    async with running_notifier(env, smtp, provision=False) as restarted:
        forged = links.action_url(
            restarted.settings,
            "a-guessed-secret",
            page_id=uuid.UUID(page["id"]),
            action="resolve",
            person_id=None,
        )
        refused = await restarted.client.post(forged.removeprefix("http://notifier"))
        assert refused.status_code == 403
        assert "not valid" in refused.json()["detail"]

        done = await restarted.client.post(resolve)
        assert done.status_code == 200, done.text
        (page,) = await restarted.pages()
        assert page["state"] == "resolved"
        assert await restarted.scalar("SELECT count(*) FROM link_secret") == 1


async def _read(settings: Settings) -> str:
    async with link_secret.link_secret_resource(settings) as secret:
        return secret


async def test_replicas_starting_together_agree_on_one_secret(
    env: Throwaway, smtp: SmtpServer
) -> None:
    settings = notifier_settings(env, smtp)
    await env.provision(settings, MIGRATIONS)
    read = await asyncio.gather(*(_read(settings) for _ in range(4)))
    assert len(set(read)) == 1
    assert len(read[0]) >= 43  # 32 random bytes


async def test_a_replica_started_before_migrate_waits_for_the_secret(
    env: Throwaway, smtp: SmtpServer
) -> None:
    settings = notifier_settings(env, smtp)
    await env.provision(settings, None)
    reading = asyncio.create_task(_read(settings))
    await asyncio.sleep(0.5)
    assert not reading.done()  # no table yet: it retries

    await upgrade(settings, MIGRATIONS)
    secret = await asyncio.wait_for(reading, timeout=15)
    assert secret == await _read(settings)


async def test_an_explicit_link_secret_wins_over_the_kept_one(
    env: Throwaway, smtp: SmtpServer
) -> None:
    async with running_notifier(env, smtp) as kept:
        kept_secret = kept.runtime.resources[link_secret.RESOURCE]
    page_id = uuid.uuid4()
    async with running_notifier(
        env, smtp, provision=False, link_secret="chosen-by-the-operator"
    ) as chosen:
        assert chosen.runtime.resources[link_secret.RESOURCE] == "chosen-by-the-operator"
        for secret, status in ((kept_secret, 403), ("chosen-by-the-operator", 404)):
            url = links.action_url(
                chosen.settings, secret, page_id=page_id, action="acknowledge", person_id=None
            )
            response = await chosen.client.get(url.removeprefix("http://notifier"))
            assert response.status_code == status, (secret, response.text)

"""SMTP authentication after STARTTLS, against a real server that requires it: the right
user name and password deliver; a wrong password fails every attempt without losing the
email, which goes out once the notifier runs with the right one, or is recorded as failed
on the page's timeline once the attempts are spent."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import Throwaway, eventually
from tests.intake.helpers import inject
from tests.notifier.helpers import Notifier, running_notifier, ticket_filed
from tests.smtp import SmtpServer

USER = "klaxon"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth_smtp() -> Iterator[SmtpServer]:
    """A recording SMTP server that requires STARTTLS, then AUTH as `USER`."""
    server = SmtpServer(require_starttls=True, logins={USER: PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _login(server: SmtpServer, password: str, **overrides: Any) -> dict[str, Any]:
    """Notifier settings that log in to `server` over STARTTLS with `password`. A send cut
    short by a stop is left to the next notifier within a 3 s lease."""
    return {
        "smtp_starttls": True,
        "smtp_ca_file": str(server.ca_pem()),
        "smtp_username": USER,
        "smtp_password": password,
        "delivery_send_timeout_s": 2.0,
        "delivery_lease_s": 3.0,
        **overrides,
    }


async def _page_alice(env: Throwaway, service: Notifier) -> None:
    alice = await service.person("Alice", "alice@ops.example")
    await service.policy(("person", alice, 60))
    await inject(env, ticket_filed(), producer="intake")


async def test_the_right_password_delivers_over_starttls(
    env: Throwaway, auth_smtp: SmtpServer
) -> None:
    async with running_notifier(env, auth_smtp, **_login(auth_smtp, PASSWORD)) as service:
        await _page_alice(env, service)
        (mail,) = await auth_smtp.wait_for(1, address="alice@ops.example")
    assert (mail.tls, mail.login) == (True, USER)
    assert auth_smtp.failed_logins == 0


async def test_a_wrong_password_is_retried_and_the_email_goes_out_once_it_is_right(
    env: Throwaway, auth_smtp: SmtpServer
) -> None:
    async with running_notifier(env, auth_smtp, **_login(auth_smtp, "wrong")) as service:
        await _page_alice(env, service)

        async def retried() -> bool:
            attempts = await service.scalar(
                "SELECT attempts FROM delivery WHERE payload->>'to' = 'alice@ops.example'"
                " AND state IN ('queued', 'sending') AND last_error LIKE '%535%'"
            )
            return bool(attempts and attempts >= 2)

        await eventually(retried, timeout_s=10)
        (page,) = await service.pages()
        assert page["notified_at"] is None
    assert auth_smtp.received == []
    assert auth_smtp.failed_logins >= 2

    async with running_notifier(
        env, auth_smtp, provision=False, **_login(auth_smtp, PASSWORD)
    ) as service:
        (mail,) = await auth_smtp.wait_for(1, address="alice@ops.example", timeout_s=15)
        assert mail.login == USER

        async def sent() -> bool:
            states = await service.scalar(
                "SELECT array_agg(state) FROM delivery WHERE payload->>'to' = 'alice@ops.example'"
            )
            return bool(states == ["sent"])

        await eventually(sent, timeout_s=10)
    assert len(auth_smtp.to("alice@ops.example")) == 1


async def test_a_wrong_password_past_the_attempts_is_a_failed_delivery_on_the_timeline(
    env: Throwaway, auth_smtp: SmtpServer
) -> None:
    login = _login(auth_smtp, "wrong", delivery_max_attempts=2)
    async with running_notifier(env, auth_smtp, **login) as service:
        await _page_alice(env, service)

        async def failed() -> bool:
            state = await service.scalar(
                "SELECT state FROM delivery WHERE payload->>'to' = 'alice@ops.example'"
            )
            return bool(state == "failed")

        await eventually(failed, timeout_s=10)
        (page,) = await service.pages()
        (note,) = [
            s
            for s in (await service.page(page["id"]))["timeline"]
            if s["kind"] == "delivery_failed"
        ]
        assert "after 2 attempts" in note["detail"]
        assert "535" in note["detail"]
    assert auth_smtp.received == []

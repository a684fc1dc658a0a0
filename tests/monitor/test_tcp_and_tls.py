"""TCP port checks, and HTTPS checks that read the certificate's expiry."""

import ssl
from datetime import UTC, datetime, timedelta

import trustme

from tests.harness import Throwaway, eventually
from tests.intake.helpers import listening, next_event
from tests.monitor.helpers import prepare, running_monitor
from tests.monitor.targets import http_target, tcp_target


async def test_a_closed_tcp_port_goes_down_with_connection_refused(env: Throwaway) -> None:
    settings = await prepare(env)
    async with (
        tcp_target() as port,
        listening(env, "monitor.*") as events,
        running_monitor(settings) as service,
    ):
        created = await service.create(name="db", kind="tcp", host="127.0.0.1", port=port.port)
        await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
        await port.close()
        down = await next_event(events, "monitor.down", timeout_s=5)
        assert down.payload["reason"] == "connection_refused"
        assert down.payload["url"] == f"tcp://127.0.0.1:{port.port}"
        await port.open()
        await next_event(events, "monitor.up", timeout_s=5)


async def test_a_certificate_about_to_expire_is_warned_about_once(env: Throwaway) -> None:
    ca = trustme.CA()
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", not_after=expires).configure_cert(server_context)
    settings = await prepare(env)
    async with (
        http_target(server_context) as target,
        listening(env, "monitor.*") as events,
        running_monitor(settings) as service,
    ):
        created = await service.create(
            name="secure", url=target.url, verify_tls=False, cert_warn_days=14
        )
        warning = await next_event(events, "monitor.certificate_expiring", timeout_s=5)
        assert warning.payload["monitor_id"] == created["id"]
        assert 2.5 < warning.payload["days_left"] <= 3
        assert (await service.get(created["id"]))["cert_expires_at"] is not None
        await eventually(lambda: len(target.seen) >= 4, timeout_s=5)
        assert events.empty()


async def test_an_untrusted_certificate_is_a_tls_failure(env: Throwaway) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    settings = await prepare(env)
    async with (
        http_target(server_context) as target,
        listening(env, "monitor.*") as events,
        running_monitor(settings) as service,
    ):
        await service.create(name="untrusted", url=target.url)
        down = await next_event(events, "monitor.down", timeout_s=5)
        assert down.payload["reason"] == "tls"

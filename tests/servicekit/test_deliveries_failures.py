"""Deliveries that fail are retried with backoff, given up on visibly, and never sent twice."""

import asyncio
import logging
import time
from collections import Counter

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.deliveries import Delivery, Outcome, enqueue
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually
from tests.proxy import TcpProxy
from tests.servicekit.deliveries_support import (
    CHANNEL,
    Request,
    all_in_state,
    delivering,
    outbox_subjects,
    publish_outcome,
    recorder,
    rows,
)
from tests.servicekit.helpers import prepared, running


async def _settings(env: Throwaway, **overrides: object) -> ServiceSettings:
    return await prepared(env, relay_enabled=False, **overrides)


def _count(outcome: str) -> float:
    labels = {"service": "test", "channel": CHANNEL, "outcome": outcome}
    return REGISTRY.get_sample_value("klaxon_deliveries_total", labels) or 0.0


async def _enqueue(sessions: async_sessionmaker[AsyncSession], *keys: str) -> None:
    async with sessions() as session, session.begin():
        for key in keys:
            await enqueue(session, channel=CHANNEL, dedupe_key=key, payload={})


async def test_a_failing_send_is_retried_with_backoff_then_sent(env: Throwaway) -> None:
    """Two 503s, then 200: three attempts, each wait at least half its backoff ceiling,
    the retries found without polling (the poll interval is 30 s)."""
    settings = await _settings(
        env, delivery_poll_interval_s=30.0, delivery_retry_base_s=0.4, delivery_max_attempts=5
    )
    retried_before = _count("retried")

    def flaky(request: Request) -> int:
        return 503 if request.body["attempt"] < 3 else 200

    async with recorder(status_for=flaky) as server, delivering(settings, server.url) as runtime:
        await _enqueue(runtime.sessions, "flaky")
        await eventually(lambda: all_in_state(runtime, "sent", 1), timeout_s=10)
        row = (await rows(runtime))["flaky"]
    first, second, third = (request.received_at for request in server.requests)
    assert second - first >= 0.2  # ceiling 0.4 s, drawn from its upper half
    assert third - second >= 0.4  # ceiling 0.8 s
    assert third - first < 5
    assert row.attempts == 3
    assert row.result == {"message_id": "msg-3"}
    assert "503" in (row.last_error or "")
    assert {request.headers["idempotency-key"] for request in server.requests} == {str(row.id)}
    assert _count("retried") - retried_before == 2


async def test_a_delivery_that_keeps_failing_is_given_up_after_max_attempts(
    env: Throwaway,
) -> None:
    settings = await _settings(env, delivery_retry_base_s=0.05, delivery_max_attempts=3)
    async with (
        recorder(status_for=lambda _: 500) as server,
        delivering(settings, server.url, outcomes={CHANNEL: publish_outcome}) as runtime,
    ):
        await _enqueue(runtime.sessions, "doomed")
        await eventually(lambda: all_in_state(runtime, "failed", 1))
        await asyncio.sleep(0.5)  # no fourth attempt
        row = (await rows(runtime))["doomed"]
        assert len(server.requests) == 3
        assert row.attempts == 3
        assert await outbox_subjects(runtime) == ["failed:doomed"]


async def test_a_permanent_failure_is_recorded_failed_and_reported_through_the_outbox(
    env: Throwaway,
) -> None:
    settings = await _settings(env, delivery_retry_base_s=0.05)
    failed_before = _count("failed")
    outcomes: list[Outcome] = []

    async def on_outcome(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        outcomes.append(outcome)
        await publish_outcome(session, item, outcome)

    async with (
        recorder(status_for=lambda _: 422) as server,
        delivering(settings, server.url, outcomes={CHANNEL: on_outcome}) as runtime,
    ):
        await _enqueue(runtime.sessions, "bad-address")
        await eventually(lambda: all_in_state(runtime, "failed", 1))
        await asyncio.sleep(0.3)
        row = (await rows(runtime))["bad-address"]
        assert len(server.requests) == 1  # never retried
        assert "refused with 422" in (row.last_error or "")
        assert [(o.state, o.attempts) for o in outcomes] == [("failed", 1)]
        assert outcomes[0].error == row.last_error
        assert await outbox_subjects(runtime) == ["failed:bad-address"]
    assert _count("failed") - failed_before == 1


async def test_the_outcome_handler_runs_in_the_transaction_recording_the_outcome(
    env: Throwaway, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that publishes its event, then fails once: that event is rolled back with
    the record, the record is retried, and the delivery is neither resent nor reported twice."""
    settings = await _settings(env, reconnect_min_s=0.05)
    calls = 0

    async def fails_once(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        nonlocal calls
        calls += 1
        await publish_outcome(session, item, outcome)
        if calls == 1:
            raise RuntimeError("timeline write failed")

    async with (
        recorder() as server,
        delivering(settings, server.url, outcomes={CHANNEL: fails_once}) as runtime,
    ):
        await _enqueue(runtime.sessions, "once")
        await eventually(lambda: all_in_state(runtime, "sent", 1))
        await asyncio.sleep(0.3)
        assert calls == 2
        assert len(server.requests) == 1
        assert await outbox_subjects(runtime) == ["sent:once"]
        assert (await rows(runtime))["once"].last_error is None
    assert "timeline write failed" in caplog.text


async def test_a_broken_outcome_handler_cannot_make_a_delivery_be_sent_again(
    env: Throwaway,
) -> None:
    settings = await _settings(
        env, reconnect_min_s=0.05, delivery_lease_s=1.0, delivery_send_timeout_s=0.5
    )

    async def broken(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        await publish_outcome(session, item, outcome)
        raise RuntimeError("bug in the handler")

    async with (
        recorder() as server,
        delivering(settings, server.url, outcomes={CHANNEL: broken}) as runtime,
    ):
        await _enqueue(runtime.sessions, "stubborn")
        await eventually(lambda: all_in_state(runtime, "sent", 1))
        await asyncio.sleep(1.5)  # past the lease: a delivery left 'sending' would go again
        row = (await rows(runtime))["stubborn"]
        assert len(server.requests) == 1
        assert row.result == {"message_id": "msg-1"}
        assert "outcome handler failed" in (row.last_error or "")
        assert await outbox_subjects(runtime) == []  # every handler transaction rolled back


async def test_two_workers_share_deliveries_and_send_each_once(
    env: Throwaway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = await _settings(env, delivery_concurrency=4, delivery_batch_size=3)
    keys = [f"share-{i}" for i in range(120)]
    async with (
        recorder(delay_s=0.01) as server,
        delivering(settings, server.url, worker="a") as one,
        delivering(settings, server.url, worker="b"),
    ):
        for start in range(0, len(keys), 10):
            await _enqueue(one.sessions, *keys[start : start + 10])
        await eventually(lambda: all_in_state(one, "sent", len(keys)), timeout_s=30)
        await asyncio.sleep(0.3)
    sent = Counter(server.keys())
    assert sorted(sent) == sorted(keys)
    assert set(sent.values()) == {1}
    by_worker = Counter(request.headers["x-worker"] for request in server.requests)
    assert min(by_worker["a"], by_worker["b"]) > 10, by_worker
    assert "not recorded" not in caplog.text


async def test_a_database_outage_between_send_and_record_repeats_no_send(
    env: Throwaway,
) -> None:
    """The worker's database goes away while a send is out; the worker records the outcome
    once it is back, before the claim's lease ends, so nothing is sent twice."""
    settings = await _settings(env)
    proxy = TcpProxy("127.0.0.1", make_url(settings.database_url).port or 5432)
    await proxy.start()
    through_proxy = settings.model_copy(
        update={
            "database_url": make_url(settings.database_url)
            .set(host="127.0.0.1", port=proxy.port)
            .render_as_string(hide_password=False),
            "delivery_lease_s": 8.0,
            "delivery_send_timeout_s": 3.0,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
        }
    )
    try:
        async with (
            recorder(delay_s=0.8) as server,
            running(settings) as direct,
            delivering(through_proxy, server.url),
        ):
            await _enqueue(direct.sessions, "through-an-outage")
            await eventually(lambda: server.received(1), interval_s=0.01)
            await proxy.cut()  # while the provider is still answering
            await eventually(lambda: server.requests[0].answered, interval_s=0.01)
            await asyncio.sleep(0.5)  # the worker fails to record, and keeps trying
            assert (await rows(direct))["through-an-outage"].state == "sending"
            await proxy.start()
            await eventually(lambda: all_in_state(direct, "sent", 1), timeout_s=6)
            # Past the lease: an unrecorded send would go again by then.
            lease_ends = server.requests[0].received_at + through_proxy.delivery_lease_s
            await asyncio.sleep(lease_ends + 0.5 - time.monotonic())
            row = (await rows(direct))["through-an-outage"]
    finally:
        await proxy.close()
    assert len(server.requests) == 1, server.keys()
    assert (row.attempts, row.result) == (1, {"message_id": "msg-1"}), row

"""Deliveries are sent after commit, once per dedupe key, as soon as they are queued."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicekit.deliveries import Delivery, Outcome, Sender, delivery_backlog, enqueue
from servicekit.runtime import Runtime, create_service_app
from servicekit.settings import ServiceSettings
from tests.harness import Throwaway, eventually
from tests.servicekit.deliveries_support import (
    CHANNEL,
    all_in_state,
    delivering,
    listening,
    outbox_subjects,
    publish_outcome,
    recorder,
    rows,
    webhook_sender,
)
from tests.servicekit.helpers import prepared, running


async def _settings(env: Throwaway, **overrides: object) -> ServiceSettings:
    return await prepared(env, relay_enabled=False, **overrides)


async def test_a_delivery_enqueued_in_a_rolled_back_transaction_is_never_sent(
    env: Throwaway,
) -> None:
    settings = await _settings(env, delivery_poll_interval_s=0.1)
    async with recorder() as server, delivering(settings, server.url) as runtime:
        async with runtime.sessions() as session, session.begin():
            await enqueue(session, channel=CHANNEL, dedupe_key="rolled-back", payload={})
            await session.rollback()
        async with runtime.sessions() as session, session.begin():
            await enqueue(session, channel=CHANNEL, dedupe_key="committed", payload={})
        await eventually(lambda: server.keys() == ["committed"])
        await asyncio.sleep(0.5)  # several polls: a stray row would be sent by now
        assert server.keys() == ["committed"]
        assert list(await rows(runtime)) == ["committed"]


async def test_a_second_enqueue_with_the_same_dedupe_key_adds_nothing(env: Throwaway) -> None:
    settings = await _settings(env)
    async with recorder() as server, delivering(settings, server.url) as runtime:
        async with runtime.sessions() as session, session.begin():
            first = await enqueue(session, channel=CHANNEL, dedupe_key="ack:1", payload={"n": 1})
            again = await enqueue(session, channel=CHANNEL, dedupe_key="ack:1", payload={"n": 2})
        async with runtime.sessions() as session, session.begin():
            later = await enqueue(session, channel=CHANNEL, dedupe_key="ack:1", payload={"n": 3})
        assert (first, again, later) == (True, False, False)
        await eventually(lambda: all_in_state(runtime, "sent", 1))
        await asyncio.sleep(0.3)
        assert [(r.key, r.body["n"]) for r in server.requests] == [("ack:1", 1)]


async def test_a_queued_delivery_wakes_the_worker_at_once(env: Throwaway) -> None:
    """The worker polls every 30 s here; each delivery must go out within a fraction of that."""
    settings = await _settings(env, delivery_poll_interval_s=30.0)
    latencies = []
    async with recorder() as server, delivering(settings, server.url) as runtime:
        for i in range(5):
            await asyncio.sleep(0.2)  # let the worker settle into its long wait
            started = time.monotonic()
            async with runtime.sessions() as session, session.begin():
                await enqueue(session, channel=CHANNEL, dedupe_key=f"wake-{i}", payload={})
            await eventually(partial(server.received, i + 1), timeout_s=5, interval_s=0.005)
            latencies.append(server.requests[i].received_at - started)
    assert max(latencies) < 1.0, latencies


async def test_a_delivery_due_later_is_sent_when_due_without_a_poll(env: Throwaway) -> None:
    settings = await _settings(env, delivery_poll_interval_s=30.0)
    async with recorder() as server, delivering(settings, server.url) as runtime:
        await asyncio.sleep(0.2)
        async with runtime.sessions() as session, session.begin():
            due_at = datetime.now(UTC) + timedelta(seconds=1)
            await enqueue(session, channel=CHANNEL, dedupe_key="later", payload={}, due_at=due_at)
        started = time.monotonic()
        await eventually(lambda: server.requests, timeout_s=5, interval_s=0.01)
        waited = server.requests[0].received_at - started
    assert 0.8 <= waited < 2.5, waited


async def test_sent_delivery_records_the_provider_result_and_reports_it_through_the_outbox(
    env: Throwaway,
) -> None:
    settings = await _settings(env)
    seen: list[tuple[str, Outcome]] = []

    async def on_outcome(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
        await publish_outcome(session, item, outcome)
        seen.append((item.dedupe_key, outcome))

    async with (
        recorder() as server,
        delivering(settings, server.url, outcomes={CHANNEL: on_outcome}) as runtime,
    ):
        async with runtime.sessions() as session, session.begin():
            await enqueue(session, channel=CHANNEL, dedupe_key="hello", payload={"to": "ada"})
        await eventually(lambda: all_in_state(runtime, "sent", 1))
        row = (await rows(runtime))["hello"]
        assert row.result == {"message_id": "msg-1"}
        assert row.attempts == 1
        assert server.requests[0].headers["idempotency-key"] == str(row.id)
        assert server.requests[0].body == {
            "dedupe_key": "hello",
            "attempt": 1,
            "correlation_id": "None",  # enqueued outside any request or event
            "to": "ada",
        }
        assert [(key, o.state, o.result) for key, o in seen] == [
            ("hello", "sent", {"message_id": "msg-1"})
        ]
        assert await outbox_subjects(runtime) == ["sent:hello"]
        async with runtime.sessions() as session:
            assert await delivery_backlog(session) == {"due": 0, "oldest_due_age_s": None}


async def test_the_backlog_figure_counts_deliveries_due_and_unsent(env: Throwaway) -> None:
    settings = await _settings(env)
    async with running(settings) as runtime:  # no senders, so no worker: all stays queued
        assert runtime.deliveries is None
        async with runtime.sessions() as session, session.begin():
            for i in range(3):
                await enqueue(session, channel=CHANNEL, dedupe_key=f"due-{i}", payload={})
            await enqueue(
                session,
                channel=CHANNEL,
                dedupe_key="not-yet",
                payload={},
                due_at=datetime.now(UTC) + timedelta(hours=1),
            )
        await asyncio.sleep(0.2)
        async with runtime.sessions() as session:
            figure = await delivery_backlog(session)
        sample = await runtime.sampler.refresh()  # what /health and /metrics answer from
    assert figure["due"] == 3
    assert 0.1 < figure["oldest_due_age_s"] < 5
    assert sample.body["deliveries"]["due"] == 3
    labels = {"service": "test", "figure": "deliveries", "field": "due"}
    assert REGISTRY.get_sample_value("klaxon_figure", labels) == 3


async def test_old_sent_and_failed_deliveries_are_pruned_and_the_rest_kept(env: Throwaway) -> None:
    settings = await _settings(env, delivery_retention_s=3600.0)
    async with running(settings) as runtime:
        async with runtime.sessions() as session, session.begin():
            for key in ("old-sent", "old-failed", "old-queued", "new-sent"):
                await enqueue(session, channel=CHANNEL, dedupe_key=key, payload={})
            await session.execute(
                text(
                    "UPDATE delivery SET state = split_part(dedupe_key, '-', 2)"
                    " WHERE dedupe_key <> 'old-queued'"
                )
            )
            await session.execute(
                text(
                    "UPDATE delivery SET created_at = now() - interval '2 hours'"
                    " WHERE dedupe_key LIKE 'old-%'"
                )
            )
        # The runtime's own maintenance round may prune them first; either way they go.
        await runtime.prune(
            "sent and failed deliveries", runtime.prunes["sent and failed deliveries"]
        )
        assert sorted(await rows(runtime)) == ["new-sent", "old-queued"]


async def test_a_service_app_sends_through_a_client_its_runtime_opened(env: Throwaway) -> None:
    """``create_service_app(senders=..., delivery_outcomes=...)``: the sender is built from the
    runtime once its resources are open, and the outcome handler is the channel's."""
    settings = await _settings(env)

    def http_client(_: object) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    def sender(runtime: Runtime) -> Sender:
        return webhook_sender(runtime.resources["http"], server.url)

    async with recorder() as server:
        app = create_service_app(
            settings,
            title="deliveries",
            resources={"http": http_client},
            senders={CHANNEL: sender},
            delivery_outcomes={CHANNEL: publish_outcome},
        )
        async with LifespanManager(app):
            runtime: Runtime = app.state.runtime
            await listening(runtime)
            async with runtime.sessions() as session, session.begin():
                await enqueue(session, channel=CHANNEL, dedupe_key="from-the-app", payload={})
            await eventually(lambda: all_in_state(runtime, "sent", 1))
            assert await outbox_subjects(runtime) == ["sent:from-the-app"]
    assert server.keys() == ["from-the-app"]

"""A real HTTP server that records requests, and a webhook sender that calls it, for the
delivery tests."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope
from servicekit.consumer import Handler
from servicekit.deliveries import Delivery, Outcome, OutcomeHandler, PermanentFailure, Sender
from servicekit.outbox import publish
from servicekit.runtime import Runtime
from servicekit.settings import ServiceSettings
from tests.servicekit.helpers import PRODUCER, ticket_filed

CHANNEL = "webhook"


@dataclass
class Request:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    answered: bool = False

    @property
    def key(self) -> str:
        """The dedupe key the sender put in the body."""
        return str(self.body["dedupe_key"])


@dataclass
class Recorder:
    """An HTTP/1.1 server on loopback: records each request, waits `delay_s`, answers
    with the status `status_for` picks (200 and a message id by default)."""

    delay_s: float = 0.0
    status_for: Callable[[Request], int] = lambda _: 200
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def received(self, n: int) -> bool:
        """True once at least `n` requests have arrived."""
        return len(self.requests) >= n

    def keys(self) -> list[str]:
        """Dedupe keys of every request received, in order."""
        return [request.key for request in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(path, headers, json.loads(raw) if raw else {})
                self.requests.append(request)
                await asyncio.sleep(self.delay_s)
                status = self.status_for(request)
                body = json.dumps({"id": f"msg-{len(self.requests)}"}).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                request.answered = True
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def recorder(**options: Any) -> AsyncIterator[Recorder]:
    """A running `Recorder` on a free loopback port."""
    server_state = Recorder(**options)
    server = await asyncio.start_server(server_state._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state.url = f"http://127.0.0.1:{port}"
    async with server:
        yield server_state
        server.close()


def webhook_sender(client: httpx.AsyncClient, url: str, *, worker: str = "") -> Sender:
    """POSTs the payload and dedupe key to `url` with the delivery's idempotency key;
    a 4xx answer is a permanent failure, a 5xx one is retried."""

    async def send(item: Delivery) -> Mapping[str, Any]:
        response = await client.post(
            f"{url}/{item.channel}",
            json={
                "dedupe_key": item.dedupe_key,
                "attempt": item.attempt,
                "correlation_id": str(item.correlation_id),
                **item.payload,
            },
            headers={"Idempotency-Key": item.idempotency_key, "X-Worker": worker},
        )
        if 400 <= response.status_code < 500:
            raise PermanentFailure(f"refused with {response.status_code}")
        response.raise_for_status()
        return {"message_id": response.json()["id"]}

    return send


def webhook(client: httpx.AsyncClient, url: str, *, worker: str = "") -> dict[str, Any]:
    """``senders=`` for a runtime whose webhook channel calls `url`."""
    sender = webhook_sender(client, url, worker=worker)

    def factory(_: Runtime) -> Sender:
        return sender

    return {CHANNEL: factory}


async def listening(runtime: Runtime, timeout_s: float = 10.0) -> None:
    """Wait until the runtime's delivery worker hears notifications."""
    async with asyncio.timeout(timeout_s):
        while runtime.deliveries is None or not runtime.deliveries.listening:
            await asyncio.sleep(0.01)


@dataclass(frozen=True)
class Row:
    """A delivery row as stored."""

    id: uuid.UUID
    dedupe_key: str
    state: str
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None


async def rows(runtime: Runtime) -> dict[str, Row]:
    """Every delivery row, by dedupe key."""
    async with runtime.sessions() as session:
        found = await session.execute(
            text("SELECT id, dedupe_key, state, attempts, last_error, result FROM delivery")
        )
        return {row.dedupe_key: Row(*row) for row in found}


async def all_in_state(runtime: Runtime, state: str, n: int) -> bool:
    """True once `n` deliveries exist and all are in `state`."""
    found = await rows(runtime)
    return len(found) == n and all(row.state == state for row in found.values())


@contextlib.asynccontextmanager
async def delivering(
    settings: ServiceSettings,
    url: str,
    *,
    outcomes: Mapping[str, OutcomeHandler] | None = None,
    worker: str = "",
    handlers: Mapping[str, Handler] | None = None,
) -> AsyncIterator[Runtime]:
    """A started runtime whose worker sends the webhook channel to `url`, listening."""
    async with httpx.AsyncClient() as client:
        runtime = Runtime(
            settings,
            senders=webhook(client, url, worker=worker),
            delivery_outcomes=outcomes,
            handlers=handlers,
        )
        await runtime.start()
        try:
            await listening(runtime)
            yield runtime
        finally:
            await runtime.stop()


async def publish_outcome(session: AsyncSession, item: Delivery, outcome: Outcome) -> None:
    """An outcome handler's typical work: an event through the outbox (its subject says
    which delivery ended how)."""
    await publish(session, ticket_filed(f"{outcome.state}:{item.dedupe_key}"), producer=PRODUCER)


async def outbox_subjects(runtime: Runtime) -> list[str]:
    """Subjects of the events waiting in the outbox (the relay is off in these tests)."""
    async with runtime.sessions() as session:
        bodies = (await session.scalars(text("SELECT body FROM outbox_event ORDER BY seq"))).all()
    return [str(Envelope.from_json(body).payload["subject"]) for body in bodies]

"""Benchmark: from a CRITICAL ``ticket.filed`` event to the on-call email and to the
reporter's email, with the notifier as a real process, beside bare aiosmtplib.

The notifier runs as ``python -m notifier serve`` on a throwaway database (created and
dropped here) and a unique exchange, with a default escalation policy paging one person.
A local SMTP server (aiosmtpd, in this process) records when each message arrives.
Tickets are published to the exchange at a fixed rate (default 50/s), each about a
different product, so each opens a page: one on-call email, then, once that email was
accepted, the reporter's. Latency is measured from each event's scheduled publish time
to the arrival of the message at the SMTP server, so a stall is not hidden.

Baseline, in the same run: as many emails sent by bare aiosmtplib (a few reused
connections, as the notifier keeps) to the same server at the same rate, measured the
same way. Lost and duplicate messages are counted by delivery key: ``lost`` is the
expected emails that had not arrived when the run ended (it waits until all arrived, none
arrived for 10 s, or ``--drain-s``), so a notifier that falls behind shows up there too.
``notifier_cpu_ms_per_ticket`` is the notifier process's CPU over the run divided by the
tickets, a figure that does not depend on what else the machine is doing.

Targets: on-call email p99 < 300 ms, reporter email p99 < 500 ms at 50/s; nothing lost,
nothing duplicated. The last line printed is one JSON object.
Usage: ``uv run python bench/notifier.py [--quick] [--rate 50] [--seconds 20]``.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path
from typing import Any

import aio_pika

# This file is named like the service package; keep its folder off the import path so
# ``import notifier`` finds the service, and put the repository root on it for ``bench``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from aiosmtpd.controller import Controller  # noqa: E402

from bench.measure import (  # noqa: E402
    AMQP_URL,
    broker_prefix,
    machine_busy_s,
    percentile,
    process_cpu_s,
    server,
    service_environment,
    settings_from,
    throwaway_database,
)
from tests.harness import free_port  # noqa: E402

ONCALL = "oncall@bench.example"
TARGET_PAGE_P99_MS = 300.0
TARGET_REPORTER_P99_MS = 500.0


@dataclass
class Recorder:
    """An SMTP handler that notes when each message arrived (perf_counter) and for what."""

    arrivals: list[tuple[float, str, str, str]] = field(default_factory=list)
    """(arrived, recipient, subject, delivery key)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        arrived = time.perf_counter()
        headers = BytesHeaderParser(policy=default).parsebytes(envelope.content)
        subject, key = str(headers["Subject"] or ""), str(headers["X-Klaxon-Delivery"] or "")
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrivals.append((arrived, rcpt, subject, key))
        return "250 OK"

    def snapshot(self) -> list[tuple[float, str, str, str]]:
        """What arrived so far."""
        with self.lock:
            return list(self.arrivals)


async def prepare_notifier(
    db_url: str, prefix: str, smtp_port: int, http_port: int
) -> dict[str, str]:
    """Provision and migrate the notifier, declare the broker, add the on-call person and
    the default policy; returns the service's environment."""
    from notifier import directory, policies, schemas
    from notifier.__main__ import SERVICE
    from notifier.settings import Settings
    from servicekit.cli import migrate
    from servicekit.db import create_engine, session_factory

    environment = await service_environment(
        db_url,
        schema="notifier",
        prefix=prefix,
        smtp_port=str(smtp_port),
        http_port=str(http_port),
        link_secret="bench-secret",
    )
    settings = settings_from(environment, Settings)
    await migrate(settings, SERVICE.migrations)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            person = await directory.create_person(
                session, schemas.PersonCreate(name="On-call", email=ONCALL)
            )
            policy = {
                "name": "Bench",
                "is_default": True,
                "levels": [
                    {"target_type": "person", "target_id": str(person.id), "timeout_s": 3600}
                ],
            }
            await policies.create_policy(session, schemas.PolicyCreate.model_validate(policy))
    finally:
        await engine.dispose()
    return environment


def ticket_event(index: int, run: str) -> tuple[str, bytes, str]:
    """(product name, envelope JSON, reporter address) of the `index`-th ticket."""
    from contracts import Envelope
    from contracts.common import HealthState, Person, ProductRef, Severity
    from contracts.intake import TicketFiled

    name = f"Bench {run} {index}"
    reporter = f"r{index}@bench.example"
    payload = TicketFiled(
        ticket_id=uuid.uuid4(),
        number=f"KLX-{index}",
        organization="Bench Org",
        reporter=Person(name="Bench Reporter", email=reporter),
        product=ProductRef(slug=f"bench-{run}-{index}", name=name),
        severity=Severity.CRITICAL,
        subject="Every page returns 502",
        description="Since 09:12 UTC the site returns 502 for every page.",
        monitoring_state=HealthState.UNKNOWN,
        filed_at=datetime.now(UTC),
    )
    return name, Envelope.wrap(payload, producer="intake").to_json(), reporter


async def publish_at_rate(
    exchange: aio_pika.abc.AbstractExchange, bodies: list[bytes], rate: float
) -> list[float]:
    """Publish `bodies` at `rate`/s (persistent, confirmed); returns each scheduled time."""
    start = time.perf_counter() + 0.05
    scheduled = [start + i / rate for i in range(len(bodies))]

    async def one(at: float, body: bytes) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        message = aio_pika.Message(
            body,
            message_id=str(uuid.uuid4()),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key="ticket.filed")

    await asyncio.gather(*(one(at, body) for at, body in zip(scheduled, bodies, strict=True)))
    return scheduled


async def baseline(port: int, count: int, rate: float, recorder: Recorder) -> list[float]:
    """`count` emails by bare aiosmtplib at `rate`/s on 4 reused connections; ms from each
    scheduled time to its arrival."""
    import aiosmtplib

    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) for _ in range(4)]
    for client in clients:
        await client.connect()
    idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for client in clients:
        idle.put_nowait(client)
    start = time.perf_counter() + 0.05
    scheduled = {f"baseline-{i}": start + i / rate for i in range(count)}

    async def one(key: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        message = EmailMessage()
        message["From"] = "klaxon@bench.example"
        message["To"] = "baseline@bench.example"
        message["Subject"] = "Baseline"
        message["X-Klaxon-Delivery"] = key
        message.set_content("The on-call engineer has been notified.")
        message.add_alternative("<p>The on-call engineer has been notified.</p>", subtype="html")
        client = await idle.get()
        try:
            await client.send_message(message)
        finally:
            idle.put_nowait(client)

    await asyncio.gather(*(one(k, at) for k, at in scheduled.items()))
    for client in clients:
        with contextlib.suppress(Exception):
            await client.quit()
    arrived = {key: t for t, _, _, key in recorder.snapshot() if key in scheduled}
    return [(arrived[k] - at) * 1000 for k, at in scheduled.items() if k in arrived]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run: warm up, measure the notifier, then the baseline."""
    count = int(args.rate * args.seconds)
    recorder = Recorder()
    smtp_port, http_port = free_port(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        async with throwaway_database() as db_url, broker_prefix() as prefix:
            environment = await prepare_notifier(db_url, prefix, smtp_port, http_port)
            environment.update(dict(item.split("=", 1) for item in args.env))
            connection = await aio_pika.connect(AMQP_URL)
            serve = ["-m", "notifier", "serve"]
            async with connection, server(serve, environment, http_port) as pid:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.get_exchange(f"{prefix}.events")
                run_id = uuid.uuid4().hex[:6]
                warm = [ticket_event(i, "warm" + run_id) for i in range(20)]
                await publish_at_rate(exchange, [b for _, b, _ in warm], 20)
                await _wait(recorder, 40, timeout_s=30)
                recorder.arrivals.clear()

                tickets = [ticket_event(i, run_id) for i in range(count)]
                cpu_before, busy_before = process_cpu_s(pid), machine_busy_s()
                wall_before = time.perf_counter()
                scheduled = await publish_at_rate(exchange, [b for _, b, _ in tickets], args.rate)
                await _wait(recorder, 2 * count, timeout_s=args.drain_s)
                cpu_ms = (process_cpu_s(pid) - cpu_before) * 1000 / count
                busy = (machine_busy_s() - busy_before) / (time.perf_counter() - wall_before)
                await asyncio.sleep(1.0)  # let any duplicate arrive
                arrivals = recorder.snapshot()
            if args.debug:
                for arrival in arrivals[:4]:
                    print(arrival)
            page_ms, reporter_ms = [], []
            by_subject: dict[str, float] = {}
            by_reporter: dict[str, float] = {}
            for arrived, rcpt, subject, _ in arrivals:
                if rcpt == ONCALL:
                    product = subject.strip().split(":", 1)[0].removeprefix("[Klaxon] ")
                    by_subject.setdefault(product, arrived)
                else:
                    by_reporter.setdefault(rcpt, arrived)
            for (name, _, reporter), at in zip(tickets, scheduled, strict=True):
                if name in by_subject:
                    page_ms.append((by_subject[name] - at) * 1000)
                if reporter in by_reporter:
                    reporter_ms.append((by_reporter[reporter] - at) * 1000)
            keys = Counter(key for _, _, _, key in arrivals)
            received = len(keys)
            duplicates = sum(n - 1 for n in keys.values())
            recorder.arrivals.clear()
            base_ms = await baseline(smtp_port, count, args.rate, recorder)
    finally:
        controller.stop()
    return {
        "rate_per_s": args.rate,
        "tickets": count,
        "page_p50_ms": round(percentile(page_ms, 0.5), 1),
        "page_p99_ms": round(percentile(page_ms, 0.99), 1),
        "page_max_ms": round(max(page_ms, default=float("nan")), 1),
        "reporter_p50_ms": round(percentile(reporter_ms, 0.5), 1),
        "reporter_p99_ms": round(percentile(reporter_ms, 0.99), 1),
        "lost": 2 * count - received,
        "duplicates": duplicates,
        "notifier_cpu_ms_per_ticket": round(cpu_ms, 2),
        "machine_busy_cores": round(busy, 2),
        "machine_cores": os.cpu_count(),
        "baseline_p50_ms": round(percentile(base_ms, 0.5), 1),
        "baseline_p99_ms": round(percentile(base_ms, 0.99), 1),
        "target_page_p99_ms": TARGET_PAGE_P99_MS,
        "target_reporter_p99_ms": TARGET_REPORTER_P99_MS,
        "met": percentile(page_ms, 0.99) < TARGET_PAGE_P99_MS
        and percentile(reporter_ms, 0.99) < TARGET_REPORTER_P99_MS
        and received == 2 * count
        and duplicates == 0,
    }


async def _wait(recorder: Recorder, count: int, *, timeout_s: float, stall_s: float = 10.0) -> None:
    """Wait until `count` messages arrived, none arrived for `stall_s`, or `timeout_s`."""
    deadline = time.perf_counter() + timeout_s
    seen, last_change = 0, time.perf_counter()
    while time.perf_counter() < deadline:
        now_seen = len(recorder.snapshot())
        if now_seen >= count:
            return
        if now_seen != seen:
            seen, last_change = now_seen, time.perf_counter()
        elif time.perf_counter() - last_change > stall_s:
            return
        await asyncio.sleep(0.05)


def main() -> None:
    """Parse arguments, run, print the figures (the last line is JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--rate", type=float, default=50.0, help="tickets per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish")
    parser.add_argument("--debug", action="store_true", help="print a few arrivals")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KLAXON_X=value",
        help="an extra setting for the notifier (repeatable), e.g. KLAXON_CONSUMER_WORKERS=1",
    )
    parser.add_argument(
        "--drain-s", type=float, default=180.0, help="longest wait for the last emails"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
        args.drain_s = min(args.drain_s, 30.0)
    result = asyncio.run(run(args))
    print(
        f"on-call email p50 {result['page_p50_ms']} ms, p99 {result['page_p99_ms']} ms"
        f" (target < {TARGET_PAGE_P99_MS:.0f}); reporter p50 {result['reporter_p50_ms']} ms,"
        f" p99 {result['reporter_p99_ms']} ms (target < {TARGET_REPORTER_P99_MS:.0f});"
        f" bare aiosmtplib p50 {result['baseline_p50_ms']} ms, p99 {result['baseline_p99_ms']} ms;"
        f" lost {result['lost']}, duplicates {result['duplicates']};"
        f" notifier CPU {result['notifier_cpu_ms_per_ticket']} ms per ticket; machine busy"
        f" {result['machine_busy_cores']} of {result['machine_cores']} cores"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

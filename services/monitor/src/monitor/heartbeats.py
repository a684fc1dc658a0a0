"""Heartbeat pings: a cron job or service says it ran (or failed).

A ping moves the heartbeat's deadline to now + period + grace; the scheduler judges
the heartbeat when the deadline passes without one. ``?status=fail`` reports a
failure at once: the monitor goes down in the ping's transaction (the job itself
said so; there is nothing to re-check). Pings of one token closer together than
``heartbeat_min_gap_s`` are refused (429).

The limit is kept per process, in memory: with N replicas behind a load balancer a
token may be pinged up to N times per gap, and a restart forgets it. That is the
intended trade: the limit only shields the database from a runaway job (a ping is
one indexed update), and a shared counter would cost a write per ping itself.
"""

import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.checks import Outcome
from monitor.models import check_state, monitor
from monitor.settings import Settings
from monitor.transitions import evaluate, live_regions
from servicekit.problems import NotFound, Problem


class TooManyPings(Problem):
    """The heartbeat was pinged too often."""

    status = 429
    title = "Too many requests"


class HeartbeatNotFound(NotFound):
    """No heartbeat monitor has that token."""

    title = "Heartbeat not found"


class PingLimiter:
    """Remembers each token's last ping (the most recent 100,000 tokens)."""

    def __init__(self, min_gap_s: float, size: int = 100_000) -> None:
        self.min_gap_s = min_gap_s
        self.size = size
        self._last: OrderedDict[str, float] = OrderedDict()

    def admit(self, token: str) -> None:
        """Raise `TooManyPings` if `token` was pinged less than the gap ago."""
        now = time.monotonic()
        last = self._last.pop(token, None)
        self._last[token] = now if last is None or now - last >= self.min_gap_s else last
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        if last is not None and now - last < self.min_gap_s:
            raise TooManyPings(
                f"a heartbeat may be pinged once every {self.min_gap_s:g} s",
                retry_after_s=round(self.min_gap_s - (now - last), 3),
            )


async def ping(session: AsyncSession, token: str, *, failed: bool, settings: Settings) -> str:
    """Record a ping; returns the monitor's state afterwards."""
    monitor_id = await session.scalar(
        select(monitor.c.id).where(monitor.c.heartbeat_token == token)
    )
    if monitor_id is None:
        raise HeartbeatNotFound("no heartbeat has this token")
    # Check state first, then the monitor: the order the scheduler locks them in.
    state = (
        await session.execute(
            select(check_state)
            .where(check_state.c.monitor_id == monitor_id, check_state.c.region == "_")
            .with_for_update()
        )
    ).first()
    row = (
        await session.execute(select(monitor).where(monitor.c.id == monitor_id).with_for_update())
    ).one()
    now = datetime.now(UTC)
    await session.execute(update(monitor).where(monitor.c.id == row.id).values(last_ping_at=now))
    if row.paused:
        return "paused"
    period = float(row.target["period_s"]) + float(row.target.get("grace_s", 0))
    due = now + timedelta(seconds=period)
    if state is None:
        await session.execute(
            check_state.insert().values(monitor_id=row.id, region="_", due_at=due)
        )
        state = (
            await session.execute(
                select(check_state).where(
                    check_state.c.monitor_id == row.id, check_state.c.region == "_"
                )
            )
        ).one()
    outcome = Outcome.HEARTBEAT_FAILED if failed else Outcome.UP
    if failed:
        values = {
            "state": "down",
            "failures": state.failures + 1,
            "successes": 0,
            "first_failure_at": state.first_failure_at or now,
            "last_error": "the job reported a failure (status=fail)",
            "last_reason": outcome.reason,
        }
    else:
        successes = state.successes + 1
        recovered = state.state != "down" or successes >= row.successes_to_up
        values = {
            "state": "up" if recovered else "down",
            "failures": 0,
            "successes": successes,
            "first_failure_at": None if recovered else state.first_failure_at,
            "last_error": None,
            "last_reason": outcome.reason,
        }
    await session.execute(
        update(check_state)
        .where(check_state.c.monitor_id == row.id, check_state.c.region == "_")
        .values(**values, due_at=due, lease_until=None, leased_by=None, last_checked_at=now)
    )
    await session.execute(
        text(
            "INSERT INTO check_result (monitor_key, at_s, latency_ms, region_key, outcome, error)"
            " SELECT :key, :at, 0, coalesce((SELECT key FROM region WHERE name = '_'), 0),"
            " :outcome, :error"
        ),
        {
            "key": row.key,
            "at": int(now.timestamp()),
            "outcome": int(outcome),
            "error": values["last_error"] if failed else None,
        },
    )
    if values["state"] != state.state or row.state == "pending":
        live = await live_regions(session, settings.replica_ttl_s)
        changed = await evaluate(session, row.id, live, now)
        return changed or str(values["state"])
    return str(row.state)

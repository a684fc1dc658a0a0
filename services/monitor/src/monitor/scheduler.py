"""The scheduler: every replica claims the checks due in its region and runs them.

Guarantees: due times live in Postgres (`check_state.due_at`), so a restart loses
nothing and every overdue check is claimed at once, in batches, not one by one.
A replica claims a batch with ``FOR UPDATE SKIP LOCKED`` and a lease (the check's
timeout plus `scheduler_lease_margin_s`); if it dies, the lease runs out and another
replica of the region takes the checks over. A result is recorded only by the
replica holding the lease and only for the due time it claimed (the update is
fenced on both), so no check is recorded twice for one due time. Checks run
concurrently up to `scheduler_concurrency`, on one shared HTTP client, each at its
due time (claimed up to `scheduler_lookahead_s` early); results, state changes and
their events are written in one transaction per `scheduler_flush_interval_s`.
"""

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.certificates import note_certificates
from monitor.checks import Clients, Result, check_heartbeat, check_http, check_tcp
from monitor.confirmation import RegionCounters, advance, next_due
from monitor.settings import Settings
from monitor.transitions import evaluate_many, live_regions

log = logging.getLogger(__name__)

ANY_REGION = "_"

STOP_GRACE_S = 1.5
"""How long a stopping replica lets its checks in flight finish (within the runtime's 3 s)."""

LAG = Histogram(
    "klaxon_monitor_schedule_lag_seconds",
    "Start of a check minus its due time",
    ["service", "region"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
CHECKS = Counter(
    "klaxon_monitor_checks_total", "Checks run, by outcome", ["service", "region", "outcome"]
)

_CLAIM = text(
    """
    WITH due AS (
        SELECT monitor_id, region FROM check_state
        WHERE region IN (CAST(:region AS varchar), '_')
          AND due_at <= now() + make_interval(secs => :ahead)
          AND (lease_until IS NULL OR lease_until < now())
        ORDER BY due_at
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE check_state c
    SET lease_until = greatest(c.due_at, now()) + make_interval(secs => m.timeout_s + :margin),
        leased_by = :me
    FROM due JOIN monitor m ON m.id = due.monitor_id
    WHERE c.monitor_id = due.monitor_id AND c.region = due.region
    RETURNING c.monitor_id, c.region, c.due_at, c.state, c.failures, c.successes, c.slow,
        c.first_failure_at, m.key, m.kind, m.target, m.timeout_s, m.interval_s, m.recheck_s,
        m.failures_to_down, m.successes_to_up, m.last_ping_at, m.cert_expires_at,
        m.cert_warned_for
    """
)

_RECORD = text(
    """
    UPDATE check_state c
    SET due_at = v.next_due, lease_until = NULL, leased_by = NULL, state = v.state,
        failures = v.failures, successes = v.successes, slow = v.slow,
        first_failure_at = v.first_failure_at, last_error = v.error, last_reason = v.reason,
        last_checked_at = v.checked_at
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:regions AS text[]), CAST(:claimed AS timestamptz[]),
        CAST(:next AS timestamptz[]), CAST(:states AS text[]), CAST(:failures AS int[]),
        CAST(:successes AS int[]), CAST(:slow AS int[]), CAST(:firsts AS timestamptz[]),
        CAST(:errors AS text[]), CAST(:reasons AS text[]), CAST(:checked AS timestamptz[])
    ) AS v(monitor_id, region, claimed, next_due, state, failures, successes, slow,
           first_failure_at, error, reason, checked_at)
    WHERE c.monitor_id = v.monitor_id AND c.region = v.region
      AND c.leased_by = :me AND c.due_at = v.claimed
    RETURNING c.monitor_id, c.region
    """
)

_RESULTS = text(
    """
    INSERT INTO check_result (monitor_key, at_s, latency_ms, region_key, outcome, error)
    SELECT * FROM unnest(CAST(:keys AS int[]), CAST(:at AS int[]), CAST(:latency AS int[]),
        CAST(:region_keys AS smallint[]), CAST(:outcomes AS smallint[]), CAST(:errors AS text[]))
    """
)

_ENSURE = text(
    """
    INSERT INTO check_state (monitor_id, region, due_at)
    SELECT m.id, CAST(:region AS varchar), now() + random() * least(m.interval_s, :spread)
        * interval '1 second'
    FROM monitor m
    WHERE NOT m.paused AND m.kind <> 'heartbeat'
      AND (cardinality(m.regions) = 0 OR CAST(:region AS varchar) = ANY(m.regions))
      AND NOT EXISTS (SELECT 1 FROM check_state c
                      WHERE c.monitor_id = m.id AND c.region = CAST(:region AS varchar))
    ON CONFLICT DO NOTHING
    """
)


@dataclass
class Done:
    """A finished check waiting to be recorded."""

    claim: Any
    result: Result
    started_at: datetime


class Scheduler:
    """Claims, runs and records the checks of one replica's region."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], clients: Clients
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clients = clients
        self.region = settings.monitor_region
        self.me = settings.replica_id
        self.slots = asyncio.Semaphore(settings.scheduler_concurrency)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.done: list[Done] = []
        self.region_keys: dict[str, int] = {}
        self.lags: deque[float] = deque(maxlen=10_000)
        self.checks_run = 0
        self._live: set[str] | None = None
        self._flushing: asyncio.Future[None] | None = None
        self._lag = LAG.labels(settings.service_name, self.region)

    async def run(self) -> None:
        """Run until cancelled. On the way out, checks in flight get `STOP_GRACE_S` to finish
        and are recorded; the leases of any still running are released."""
        await self.heartbeat()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeat_forever())
                group.create_task(self._flush_forever())
                group.create_task(self._claim_forever())
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_GRACE_S + 1):
                    await self._wind_down()

    async def _wind_down(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            with contextlib.suppress(Exception):
                await self._flushing
        if self.in_flight:
            _, pending = await asyncio.wait(self.in_flight, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
        batch, self.done = self.done, []
        if batch:
            await self.record(batch)
        await self._release()

    async def heartbeat(self) -> None:
        """Say this replica is alive, and make sure its region has a row for every monitor."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO replica (id, region) VALUES (:me, :region)"
                    " ON CONFLICT (id) DO UPDATE SET seen_at = now(), region = :region"
                ),
                {"me": self.me, "region": self.region},
            )
            for name in (self.region, ANY_REGION):
                await session.execute(
                    text("INSERT INTO region (name) VALUES (:n) ON CONFLICT (name) DO NOTHING"),
                    {"n": name},
                )
            await session.execute(
                _ENSURE, {"region": self.region, "spread": self.settings.scheduler_jitter_s}
            )
            await session.execute(
                text("DELETE FROM replica WHERE seen_at < now() - make_interval(secs => :s)"),
                {"s": self.settings.replica_ttl_s * 10},
            )
            rows = await session.execute(text("SELECT name, key FROM region"))
            self.region_keys = {name: key for name, key in rows}
            live = await live_regions(session, self.settings.replica_ttl_s)
            if self._live is not None and live != self._live:
                await self._reevaluate(session, live)
            self._live = live

    async def _reevaluate(self, session: AsyncSession, live: set[str]) -> None:
        """A region came or went: judge again every monitor a region disagrees about."""
        rows = await session.execute(
            text(
                "SELECT DISTINCT monitor_id FROM check_state WHERE state IN ('down', 'degraded')"
                " UNION SELECT id FROM monitor WHERE state IN ('down', 'degraded')"
                " ORDER BY 1"
            )
        )
        await evaluate_many(
            session, [monitor_id for (monitor_id,) in rows], live, datetime.now(UTC)
        )

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_heartbeat_s)
            try:
                await self.heartbeat()
            except Exception:
                log.warning("replica heartbeat failed; retrying", exc_info=True)

    async def _release(self) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(text("DELETE FROM replica WHERE id = :me"), {"me": self.me})
            await session.execute(
                text(
                    "UPDATE check_state SET lease_until = NULL, leased_by = NULL WHERE leased_by = :me"
                ),
                {"me": self.me},
            )

    async def _claim_forever(self) -> None:
        settings = self.settings
        while True:
            free = settings.scheduler_concurrency - len(self.in_flight)
            claimed: list[Any] = []
            if free > 0:
                try:
                    claimed = await self._claim(min(free, settings.scheduler_batch_size))
                except Exception:
                    log.warning("claiming due checks failed; retrying", exc_info=True)
                    await asyncio.sleep(settings.scheduler_poll_interval_s)
                    continue
                for claim in claimed:
                    task = asyncio.create_task(self._check(claim))
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
            if free > 0 and len(claimed) == min(free, settings.scheduler_batch_size):
                await asyncio.sleep(0)
                continue
            await asyncio.sleep(settings.scheduler_poll_interval_s)

    async def _claim(self, n: int) -> list[Any]:
        async with self.sessions() as session, session.begin():
            rows = await session.execute(
                _CLAIM,
                {
                    "region": self.region,
                    "ahead": self.settings.scheduler_lookahead_s,
                    "n": n,
                    "margin": self.settings.scheduler_lease_margin_s,
                    "me": self.me,
                },
            )
            return list(rows)

    async def _check(self, claim: Any) -> None:
        delay = (claim.due_at - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        started = datetime.now(UTC)
        lag = max(0.0, (started - claim.due_at).total_seconds())
        self.lags.append(lag)
        self._lag.observe(lag)
        target = claim.target
        timeout_s = float(claim.timeout_s)
        if claim.kind == "http":
            result = await check_http(
                self.clients, target, timeout_s=timeout_s, region=self.region, due=claim.due_at
            )
        elif claim.kind == "tcp":
            result = await check_tcp(self.clients, target, timeout_s=timeout_s)
        else:
            result = check_heartbeat(claim.last_ping_at, target, started)
        self.checks_run += 1
        CHECKS.labels(self.settings.service_name, self.region, result.outcome.reason).inc()
        self.done.append(Done(claim, result, started))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.scheduler_flush_interval_s)
            if not self.done:
                continue
            batch, self.done = self.done, []
            # Shielded: a stopping replica waits for this batch (see `_wind_down`) rather than
            # roll it back and hand its checks to another replica to run again.
            self._flushing = asyncio.ensure_future(self.record(batch))
            try:
                await asyncio.shield(self._flushing)
            except Exception:
                log.warning(
                    "recording %d check results failed; their leases expire and they run again",
                    len(batch),
                    exc_info=True,
                )

    async def record(self, batch: list[Done]) -> None:
        """Write a batch of results and the state changes they cause, in one transaction."""
        now = datetime.now(UTC)
        rows: list[tuple[Done, RegionCounters]] = []
        for done in batch:
            claim = done.claim
            before = RegionCounters(
                claim.state, claim.failures, claim.successes, claim.slow, claim.first_failure_at
            )
            after = advance(
                before,
                done.result.outcome,
                done.started_at,
                failures_to_down=claim.failures_to_down,
                successes_to_up=claim.successes_to_up,
            )
            rows.append((done, after))
        params: dict[str, Any] = {
            "me": self.me,
            "ids": [d.claim.monitor_id for d, _ in rows],
            "regions": [d.claim.region for d, _ in rows],
            "claimed": [d.claim.due_at for d, _ in rows],
            "next": [
                next_due(
                    after,
                    d.claim.due_at,
                    now,
                    d.claim._mapping,
                    jitter_s=self.settings.scheduler_jitter_s,
                )
                for d, after in rows
            ],
            "states": [after.state for _, after in rows],
            "failures": [after.failures for _, after in rows],
            "successes": [after.successes for _, after in rows],
            "slow": [after.slow for _, after in rows],
            "firsts": [after.first_failure_at for _, after in rows],
            "errors": [d.result.error for d, _ in rows],
            "reasons": [d.result.outcome.reason for d, _ in rows],
            "checked": [d.started_at for d, _ in rows],
        }
        async with self.sessions() as session, session.begin():
            accepted = {(r.monitor_id, r.region) for r in await session.execute(_RECORD, params)}
            kept = [(d, a) for d, a in rows if (d.claim.monitor_id, d.claim.region) in accepted]
            if not kept:
                return
            await session.execute(
                _RESULTS,
                {
                    "keys": [d.claim.key for d, _ in kept],
                    "at": [int(d.started_at.timestamp()) for d, _ in kept],
                    "latency": [d.result.latency_ms for d, _ in kept],
                    "region_keys": [self.region_keys.get(d.claim.region, 0) for d, _ in kept],
                    "outcomes": [int(d.result.outcome) for d, _ in kept],
                    "errors": [
                        d.result.error if d.result.outcome.failed else None for d, _ in kept
                    ],
                },
            )
            changed = sorted(
                {d.claim.monitor_id for d, after in kept if after.state != d.claim.state}
            )
            if changed:
                live = await live_regions(session, self.settings.replica_ttl_s)
                await evaluate_many(session, changed, live, now)
            await note_certificates(
                session, [(d.claim, d.result) for d, _ in kept if d.result.cert_expires_at]
            )

    def lag_figures(self) -> dict[str, Any]:
        """Recent schedule lag percentiles (seconds) and checks run."""
        lags = sorted(self.lags)
        if not lags:
            return {"lag_p50_s": None, "lag_p99_s": None, "checks_run": self.checks_run}
        return {
            "lag_p50_s": round(lags[len(lags) // 2], 4),
            "lag_p99_s": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 4),
            "checks_run": self.checks_run,
            "in_flight": len(self.in_flight),
        }

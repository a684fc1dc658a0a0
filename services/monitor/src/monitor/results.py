"""Check results, uptime, hourly and daily rollups, and their retention.

Raw results are kept `result_retention_s` (7 days by default) and pruned in
batches; hourly and daily rollups (checks, failures, latency percentiles) are
kept `rollup_retention_s` (400 days). Uptime over 24 h and 7 d is computed from raw
results; over 30 d and 90 d from hourly rollups, plus raw results of the hours
not rolled up yet. Rollups of a window's older days use the hourly percentiles'
median and maximum (p50 is the median of hourly p50s; p95 and p99 the maxima),
an upper bound rather than an exact figure.
"""

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.checks import Outcome
from monitor.models import check_result, monitor, region
from monitor.monitors import MonitorNotFound
from monitor.schemas import CheckResultRead, UptimeRead

WINDOWS_S = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}


async def _key(session: AsyncSession, monitor_id: uuid.UUID) -> int:
    key = await session.scalar(select(monitor.c.key).where(monitor.c.id == monitor_id))
    if key is None:
        raise MonitorNotFound(f"no monitor {monitor_id}")
    return int(key)


async def recent(session: AsyncSession, monitor_id: uuid.UUID, limit: int) -> list[CheckResultRead]:
    """The monitor's latest checks, newest first."""
    key = await _key(session, monitor_id)
    rows = await session.execute(
        select(check_result, region.c.name)
        .outerjoin(region, region.c.key == check_result.c.region_key)
        .where(check_result.c.monitor_key == key)
        .order_by(check_result.c.at_s.desc())
        .limit(limit)
    )
    return [
        CheckResultRead(
            at=datetime.fromtimestamp(r.at_s, UTC),
            region=r.name or "?",
            outcome=Outcome(r.outcome).reason,
            latency_ms=r.latency_ms,
            error=r.error,
        )
        for r in rows
    ]


_RAW = text(
    """
    SELECT count(*) AS checks, count(*) FILTER (WHERE outcome >= 2) AS failures,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
        percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99
    FROM check_result WHERE monitor_key = :key AND at_s >= :since
    """
)

_ROLLED = text(
    """
    SELECT coalesce(sum(checks), 0) AS checks, coalesce(sum(failures), 0) AS failures,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_p50_ms) AS p50,
        max(latency_p95_ms) AS p95, max(latency_p99_ms) AS p99,
        max(hour_at) AS last_hour
    FROM rollup_hourly WHERE monitor_key = :key AND hour_at >= to_timestamp(:since)
    """
)


async def uptime(session: AsyncSession, monitor_id: uuid.UUID, window: str) -> UptimeRead:
    """Uptime % and latency percentiles over `window` (24h, 7d, 30d or 90d)."""
    key = await _key(session, monitor_id)
    since = int(time.time()) - WINDOWS_S[window]
    if WINDOWS_S[window] <= WINDOWS_S["7d"]:
        raw = (await session.execute(_RAW, {"key": key, "since": since})).one()
        checks, failures, p50, p95, p99 = raw.checks, raw.failures, raw.p50, raw.p95, raw.p99
    else:
        rolled = (await session.execute(_ROLLED, {"key": key, "since": since})).one()
        after = int(rolled.last_hour.timestamp()) + 3600 if rolled.last_hour else since
        raw = (await session.execute(_RAW, {"key": key, "since": after})).one()
        checks = rolled.checks + raw.checks
        failures = rolled.failures + raw.failures
        p50 = rolled.p50 if rolled.p50 is not None else raw.p50
        p95 = max((v for v in (rolled.p95, raw.p95) if v is not None), default=None)
        p99 = max((v for v in (rolled.p99, raw.p99) if v is not None), default=None)
    pct = round(100.0 * (checks - failures) / checks, 4) if checks else None
    return UptimeRead(
        window=window,
        checks=checks,
        failures=failures,
        uptime_pct=pct,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
    )


_ROLLUP_HOURS = text(
    """
    INSERT INTO rollup_hourly AS r (monitor_key, hour_at, checks, failures,
        latency_p50_ms, latency_p95_ms, latency_p99_ms)
    SELECT monitor_key, to_timestamp(at_s - at_s % 3600), count(*),
        count(*) FILTER (WHERE outcome >= 2),
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms),
        percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms),
        percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms)
    FROM check_result WHERE at_s >= :since AND at_s < :until
    GROUP BY 1, 2
    ON CONFLICT (monitor_key, hour_at) DO UPDATE SET checks = excluded.checks,
        failures = excluded.failures, latency_p50_ms = excluded.latency_p50_ms,
        latency_p95_ms = excluded.latency_p95_ms, latency_p99_ms = excluded.latency_p99_ms
    """
)

_ROLLUP_DAYS = text(
    """
    INSERT INTO rollup_daily AS r (monitor_key, day_at, checks, failures,
        latency_p50_ms, latency_p95_ms, latency_p99_ms)
    SELECT monitor_key, date_trunc('day', hour_at, 'UTC'), sum(checks), sum(failures),
        percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_p50_ms),
        max(latency_p95_ms), max(latency_p99_ms)
    FROM rollup_hourly WHERE hour_at >= to_timestamp(:since)
    GROUP BY 1, 2
    ON CONFLICT (monitor_key, day_at) DO UPDATE SET checks = excluded.checks,
        failures = excluded.failures, latency_p50_ms = excluded.latency_p50_ms,
        latency_p95_ms = excluded.latency_p95_ms, latency_p99_ms = excluded.latency_p99_ms
    """
)


async def roll_up(session: AsyncSession, now_s: int | None = None) -> None:
    """Roll up the previous hour and the current one so far, and their days (idempotent:
    every replica may run it; the rollup loop runs it more than once an hour)."""
    now_s = int(time.time()) if now_s is None else now_s
    hour = now_s - now_s % 3600
    await session.execute(_ROLLUP_HOURS, {"since": hour - 3600, "until": now_s + 1})
    day = now_s - now_s % 86400
    await session.execute(_ROLLUP_DAYS, {"since": day - 86400})


async def prune_results(session: AsyncSession, batch: int, *, older_than_s: float) -> int:
    """Delete up to `batch` raw results older than the retention."""
    result: Any = await session.execute(
        text(
            "DELETE FROM check_result WHERE ctid = ANY(ARRAY("
            " SELECT ctid FROM check_result WHERE at_s < :cut LIMIT :n))"
        ),
        {"cut": int(time.time() - older_than_s), "n": batch},
    )
    return int(result.rowcount)


_PRUNE_ROLLUPS = (
    text(
        "DELETE FROM rollup_hourly WHERE ctid = ANY(ARRAY(SELECT ctid FROM rollup_hourly"
        " WHERE hour_at < now() - make_interval(secs => :age) LIMIT :n))"
    ),
    text(
        "DELETE FROM rollup_daily WHERE ctid = ANY(ARRAY(SELECT ctid FROM rollup_daily"
        " WHERE day_at < now() - make_interval(secs => :age) LIMIT :n))"
    ),
)


async def prune_rollups(session: AsyncSession, batch: int, *, older_than_s: float) -> int:
    """Delete up to `batch` hourly and daily rollups older than the retention."""
    deleted = 0
    for statement in _PRUNE_ROLLUPS:
        result: Any = await session.execute(statement, {"age": older_than_s, "n": batch})
        deleted += int(result.rowcount)
    return deleted

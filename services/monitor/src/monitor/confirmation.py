"""Confirmation, not flapping: each region's state from its run of checks, and a monitor's
state from its regions (quorum).

A region calls a target down after `failures_to_down` failed checks in a row (re-checked
every `recheck_s` meanwhile), degraded after as many slow answers in a row, and up again
after `successes_to_up` passes. A monitor is down when at least half of its live regions
are down; a region with no live replica does not count.
"""

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.checks import Outcome

_random = secrets.SystemRandom()


@dataclass(frozen=True)
class RegionCounters:
    """One region's confirmed state and the runs of checks behind it."""

    state: str
    failures: int
    successes: int
    slow: int
    first_failure_at: datetime | None


def advance(
    counters: RegionCounters,
    outcome: Outcome,
    at: datetime,
    *,
    failures_to_down: int,
    successes_to_up: int,
) -> RegionCounters:
    """The region's counters after one more check."""
    if outcome.failed:
        failures = counters.failures + 1
        first = counters.first_failure_at if counters.failures or counters.state == "down" else at
        state = "down" if failures >= failures_to_down else counters.state
        return RegionCounters(state, failures, 0, 0, first)
    successes = counters.successes + 1
    slow = counters.slow + 1 if outcome is Outcome.SLOW else 0
    if counters.state == "down" and successes < successes_to_up:
        return replace(counters, failures=0, successes=successes, slow=slow)
    if slow >= failures_to_down or (slow and counters.state == "degraded"):
        state = "degraded"
    else:
        state = "up"
    return RegionCounters(state, 0, successes, slow, None)


def next_due(
    counters: RegionCounters,
    claimed_due: datetime,
    now: datetime,
    monitor: dict[str, Any],
    *,
    jitter_s: float,
) -> datetime:
    """When the region checks again: soon while a failure is unconfirmed, else an interval on."""
    if monitor["kind"] == "heartbeat":
        target = monitor["target"]
        return now + timedelta(seconds=float(target["period_s"]) + float(target.get("grace_s", 0)))
    if counters.failures > 0 and counters.state != "down":
        return now + timedelta(seconds=monitor["recheck_s"])
    interval = float(monitor["interval_s"])
    spread = min(jitter_s, interval / 10)
    due = claimed_due + timedelta(seconds=interval + _random.uniform(-spread, spread))
    if due < now - timedelta(seconds=interval):
        # a whole interval behind (the replicas were down): skip the missed checks
        due = now + timedelta(seconds=_random.uniform(0, spread))
    return due


def overall(states: list[str]) -> str | None:
    """A monitor's state from its live regions' states (None: no region to judge by)."""
    if not states:
        return None
    n = len(states)
    if states.count("down") * 2 >= n:
        return "down"
    if all(state == "pending" for state in states):
        return "pending"
    if states.count("degraded") * 2 >= n:
        return "degraded"
    return "up"

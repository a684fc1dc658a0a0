"""Tables of the monitor schema.

- `monitor`: what to check and how, and its overall state (across regions).
- `check_state`: one row per monitor and region that checks it: the next due time,
  the lease of the replica checking it now, and that region's confirmation counters.
- `check_result`: every check's outcome, compact (integer keys, times in epoch
  seconds) so a monitor at a 60 s interval costs under 100 KB a day.
- `rollup_hourly` / `rollup_daily`: uptime and latency percentiles kept for 400 days.
- `region`, `replica`: the regions that have (had) replicas, and each live replica.
- `patch_window`, `verification_run`: windows that must raise an alert, and each
  window's verdict with its evidence.
"""

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from servicekit.tables import new_metadata

metadata = new_metadata()

_EMPTY = text("'{}'")

monitor = Table(
    "monitor",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("key", Integer, Identity(always=True), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("product", String(100), nullable=False, index=True),
    Column("component", String(200)),
    Column("kind", String(10), nullable=False),
    Column("target", JSONB, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("recheck_s", Float, nullable=False),
    Column("failures_to_down", Integer, nullable=False),
    Column("successes_to_up", Integer, nullable=False),
    Column("regions", ARRAY(String(50)), nullable=False, server_default=_EMPTY),
    Column("tags", ARRAY(String(50)), nullable=False, server_default=_EMPTY),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("state", String(10), nullable=False, server_default=text("'pending'")),
    Column("state_changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("first_failure_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("heartbeat_token", String(64), unique=True),
    Column("last_ping_at", DateTime(timezone=True)),
    Column("cert_expires_at", DateTime(timezone=True)),
    Column("cert_warned_for", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_monitor_tags", "tags", postgresql_using="gin"),
)

check_state = Table(
    "check_state",
    metadata,
    Column("monitor_id", Uuid, ForeignKey("monitor.id", ondelete="CASCADE"), primary_key=True),
    Column("region", String(50), primary_key=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("leased_by", Uuid),
    Column("state", String(10), nullable=False, server_default=text("'pending'")),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("successes", Integer, nullable=False, server_default=text("0")),
    Column("slow", Integer, nullable=False, server_default=text("0")),
    Column("first_failure_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_reason", String(30)),
    Column("last_checked_at", DateTime(timezone=True)),
    Index("ix_check_state_region_due_at", "region", "due_at"),
)
"""Region ``_`` is any region: heartbeats, which nobody polls, are evaluated by whichever
replica claims them."""

check_result = Table(
    "check_result",
    metadata,
    Column("monitor_key", Integer, nullable=False),
    Column("at_s", Integer, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("region_key", SmallInteger, nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    Column("error", Text),
    Index("ix_check_result_monitor_key", "monitor_key"),
    Index("ix_check_result_at_s", "at_s", postgresql_using="brin"),
)
"""One row per check: `monitor.key`, start time in epoch seconds, `region.key`, the
outcome code (`monitor.checks.Outcome`) and, for failures only, the error.

Its one B-tree is on `monitor_key` alone: Postgres stores a key's row pointers in one
deduplicated posting list, a few bytes a row, where an index on (monitor_key, at_s)
costs some 30 bytes a row once random inserts have split its pages. A monitor's
recent results are read through it and sorted (a week at 60 s is 10,080 rows); time
ranges across monitors (pruning, rollups) use the BRIN index on `at_s`."""

rollup_hourly = Table(
    "rollup_hourly",
    metadata,
    Column("monitor_key", Integer, primary_key=True),
    Column("hour_at", DateTime(timezone=True), primary_key=True),
    Column("checks", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("latency_p50_ms", Integer),
    Column("latency_p95_ms", Integer),
    Column("latency_p99_ms", Integer),
)

rollup_daily = Table(
    "rollup_daily",
    metadata,
    Column("monitor_key", Integer, primary_key=True),
    Column("day_at", DateTime(timezone=True), primary_key=True),
    Column("checks", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("latency_p50_ms", Integer),
    Column("latency_p95_ms", Integer),
    Column("latency_p99_ms", Integer),
)

region = Table(
    "region",
    metadata,
    Column("key", SmallInteger, Identity(always=True), primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
)

replica = Table(
    "replica",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("region", String(50), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

patch_window = Table(
    "patch_window",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("cron", String(200)),
    Column("timezone", String(64), nullable=False, server_default=text("'UTC'")),
    Column("duration_s", Integer),
    Column("starts_at", DateTime(timezone=True)),
    Column("ends_at", DateTime(timezone=True)),
    Column("monitor_ids", ARRAY(Uuid), nullable=False, server_default=_EMPTY),
    Column("products", ARRAY(String(100)), nullable=False, server_default=_EMPTY),
    Column("tags", ARRAY(String(50)), nullable=False, server_default=_EMPTY),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""One-off (`starts_at`..`ends_at`) or recurring (`cron` in `timezone`, lasting `duration_s`)."""

verification_run = Table(
    "verification_run",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("patch_window_id", Uuid, nullable=False),
    Column("window_name", String(200), nullable=False),
    Column("product", String(100), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("monitor_ids", ARRAY(Uuid), nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("patch_window_id", "product", "starts_at"),
    Index("ix_verification_run_decided_at", "decided_at"),
)

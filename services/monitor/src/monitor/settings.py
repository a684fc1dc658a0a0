"""Settings of the monitor service (``KLAXON_*`` environment variables)."""

import uuid

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Monitor settings; every duration in seconds, so tests run in seconds."""

    service_name: str = "monitor"
    db_schema: str = "monitor"
    http_port: int = 8002

    monitor_region: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,49}$")
    """The region this replica checks from (sent to targets as ``X-Klaxon-Region``)."""
    replica_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    scheduler_enabled: bool = True
    scheduler_concurrency: int = 500
    """Checks in flight at once in this replica."""
    scheduler_batch_size: int = 200
    scheduler_poll_interval_s: float = 0.5
    scheduler_lookahead_s: float = 0.5
    """Checks due this soon are claimed now and started at their due time."""
    scheduler_lease_margin_s: float = 30.0
    """A claimed check's lease lasts its timeout plus this; then another replica may take it."""
    scheduler_flush_interval_s: float = 0.25
    """Results are written (with the state changes they cause) in one batch this often."""
    scheduler_jitter_s: float = 1.0
    """Most a check's start is spread by (never more than a tenth of its interval)."""
    replica_heartbeat_s: float = 5.0
    replica_ttl_s: float = 30.0
    """A replica not seen for this long is gone; a region with none left is reported."""

    min_interval_s: float = 10.0
    default_interval_s: float = 60.0
    default_timeout_s: float = 10.0
    default_recheck_s: float = 10.0
    default_failures_to_down: int = 2
    default_successes_to_up: int = 1
    max_response_bytes: int = 1_000_000
    max_redirects: int = 5
    outgoing_allow: list[str] = []
    """Networks checks may reach although the address guard refuses them (e.g. 10.0.0.0/8)."""

    heartbeat_min_gap_s: float = 1.0
    """Pings of one heartbeat closer together than this are refused with 429 (counted per
    process: N replicas admit up to N pings per gap)."""
    result_retention_s: float = 7 * 24 * 3600.0
    rollup_retention_s: float = 400 * 24 * 3600.0
    verification_settle_s: float = 5.0
    """A patch window is judged this long after it closes, once its last results are written."""
    apply_max_bytes: int = 20_000_000

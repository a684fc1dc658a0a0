"""Settings every Klaxon service shares, read from ``KLAXON_*`` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import topology


class ServiceSettings(BaseSettings):
    """Common settings; a service subclasses this and adds its own.

    Every duration is configurable (and says its unit) so tests can run
    thirty-minute rules in seconds.
    """

    model_config = SettingsConfigDict(env_prefix="KLAXON_", env_file=None, extra="ignore")

    service_name: str = "klaxon"
    version: str = "0.1.0"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/klaxon"
    db_schema: str = Field(default="klaxon", pattern=r"^[a-z_][a-z0-9_]*$")
    db_pool_size: int = 10
    db_max_overflow: int = 10
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = topology.EVENTS_EXCHANGE
    queue_prefix: str = "klaxon"

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True

    relay_enabled: bool = True
    relay_batch_size: int = 200
    relay_poll_interval_s: float = 1.0
    relay_recheck_s: float = 0.001
    """After publishing, the relay looks again after this long, doubling up to the poll
    interval: events committed without a NOTIFY (see `servicekit.tables`) are found."""
    relay_io_timeout_s: float = 10.0
    """The relay gives up on a database statement, a connection attempt or a batch's broker
    confirms after this long and reconnects: a connection that went silent (a network
    partition, a host gone without a reset) would otherwise hold it for good."""
    relay_vacuum_every: int = 5000
    """The relay vacuums the outbox after deleting this many published rows (see
    `servicekit.outbox.vacuum`)."""
    relay_max_attempts: int = Field(default=10, ge=1)
    """A row the broker refuses (nack or return) this many times is parked: left in the
    outbox, skipped by the relays, listed by the ``parked`` command (see `servicekit.parking`)."""
    relay_retry_base_s: float = 1.0
    relay_retry_max_s: float = 60.0
    """A refused row is tried again after ``base * 2**(attempts - 1)`` seconds, at most this."""
    consumer_enabled: bool = True
    consumer_prefetch: int = 64
    consumer_delivery_limit: int = Field(default=5, ge=0)
    """A failed event is returned for another try this many times, then dead-lettered
    (RabbitMQ's ``x-delivery-limit`` meaning: 5 is up to 6 deliveries). Enforced by the
    consumer, not the queue, so it may change between starts (see `servicekit.bus`)."""
    consumer_batch_size: int = 50
    consumer_workers: int = 1
    """Batches handled at once. One is fastest when handlers only touch the database (as
    Klaxon's do): events that arrive while a batch commits make the next batch, and a
    batch is acked with one frame. More workers split the queue into smaller batches."""
    consumer_retry_delay_s: float = 0.5
    timers_enabled: bool = True
    timer_poll_interval_s: float = 0.5
    timer_batch_size: int = 50
    timer_retry_base_s: float = 5.0
    timer_retry_max_s: float = 300.0
    timer_max_attempts: int = Field(default=20, ge=1)
    """A timer whose handler failed (or timed out) this many times is parked."""
    timer_concurrency: int = Field(default=8, ge=1)
    """Timer handlers one worker runs at once, each on a pooled connection of its own."""
    timer_handler_timeout_s: float = 30.0
    """A handler still running after this long is cancelled, rolled back and retried."""
    timer_lease_s: float = 60.0
    """A claimed timer is not claimed again for this long (it must exceed the handler
    timeout): a worker that died mid-handler leaves its timers to others after it."""
    deliveries_enabled: bool = True
    delivery_poll_interval_s: float = 5.0
    """A delivery worker looks for due deliveries at least this often (a NOTIFY wakes it at
    once, and it wakes by itself when the next retry falls due: see `servicekit.deliveries`)."""
    delivery_batch_size: int = Field(default=50, ge=1)
    delivery_concurrency: int = Field(default=20, ge=1)
    """Sends one worker has in flight at once."""
    delivery_send_timeout_s: float = 30.0
    delivery_lease_s: float = 120.0
    """A claimed delivery is not claimed again for this long (it must exceed the send
    timeout): a worker that stopped mid-send leaves it to another, which sends it again."""
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_retry_base_s: float = 5.0
    delivery_retry_max_s: float = 900.0
    delivery_retention_s: float = 30 * 24 * 3600.0
    """Sent and failed deliveries (and so their dedupe keys) are kept this long."""
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    inbox_retention_s: float = 7 * 24 * 3600.0
    maintenance_interval_s: float = 3600.0
    health_sample_interval_s: float = 2.0
    """How often the figures behind /health, /readyz and /metrics are gathered; the
    endpoints answer from the last sample (see `servicekit.sampler`)."""

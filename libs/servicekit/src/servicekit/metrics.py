"""Prometheus metrics shared by the plumbing; each is labelled with the service name."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "klaxon_events_published_total", "Events the outbox relay published", ["service"]
)
EVENTS_CONSUMED = Counter(
    "klaxon_events_consumed_total",
    "Events the consumer finished, by outcome (handled, duplicate, failed, dead_lettered)",
    ["service", "event_type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "klaxon_event_handler_seconds",
    "Time to handle one event: its handler's time and its share of the batch's inbox"
    " write and commit",
    ["service", "event_type"],
)
TIMERS_FIRED = Counter(
    "klaxon_timers_fired_total",
    "Timers run, by outcome (done, failed)",
    ["service", "kind", "outcome"],
)
DELIVERIES = Counter(
    "klaxon_deliveries_total",
    "Delivery attempts recorded, by outcome (sent, failed, retried, lease_expired)",
    ["service", "channel", "outcome"],
)
OUTBOX_BACKLOG = Gauge("klaxon_outbox_backlog", "Unsent outbox events", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "klaxon_outbox_oldest_age_seconds", "Age of the oldest unsent outbox event", ["service"]
)
QUEUE_DEPTH = Gauge("klaxon_queue_depth", "Messages waiting in the service's queue", ["service"])
PARKINGS = Counter(
    "klaxon_parkings",
    "Times an outbox event or a timer was parked, by what (outbox, timer)",
    ["service", "what"],
)
DEPENDENCY_UP = Gauge(
    "klaxon_dependency_up",
    "1 while the dependency (database, broker) answered the last health sample, else 0",
    ["service", "dependency"],
)
BROKER_CONNECTED = Gauge(
    "klaxon_broker_connected",
    "1 while the loop (relay, consumer) is connected to the broker, else 0",
    ["service", "loop"],
)
FIGURE = Gauge(
    "klaxon_figure",
    "A numeric field of a /health figure (e.g. figure=outbox, field=backlog)",
    ["service", "figure", "field"],
)

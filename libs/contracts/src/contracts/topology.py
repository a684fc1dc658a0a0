"""Broker names: the one topic exchange, each service's queue, dead-letter names."""

EVENTS_EXCHANGE = "klaxon.events"
"""Durable topic exchange; the routing key of every message is its event type."""


def unrouted_name(exchange: str) -> str:
    """Alternate exchange (and queue) of `exchange`: events no service is bound to are kept."""
    return f"{exchange}.unrouted"


UNROUTED_EXCHANGE = unrouted_name(EVENTS_EXCHANGE)
UNROUTED_QUEUE = UNROUTED_EXCHANGE

SERVICES = ("intake", "monitor", "notifier", "statuspage")


def service_queue(service: str, *, prefix: str = "klaxon") -> str:
    """The quorum queue a service consumes from, e.g. ``klaxon.notifier``."""
    return f"{prefix}.{service}"


def dead_letter_name(service: str, *, prefix: str = "klaxon") -> str:
    """Dead-letter exchange and queue name of a service, e.g. ``klaxon.notifier.dead``."""
    return f"{prefix}.{service}.dead"

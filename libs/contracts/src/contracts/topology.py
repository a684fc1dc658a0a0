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


CONSUMES: dict[str, frozenset[str]] = {
    "intake": frozenset(
        {
            "page.notified",
            "page.acknowledged",
            "page.resolved",
            "page.escalated",
            "page.reporter_acknowledged",
            "monitor.down",
            "monitor.up",
            "incident.opened",
            "incident.resolved",
            "component.status_changed",
            "product.catalogue_requested",
        }
    ),
    "monitor": frozenset({"product.changed"}),
    "notifier": frozenset(
        {
            "ticket.filed",
            "monitor.down",
            "monitor.up",
            "monitor.verification_failed",
            "statuspage.update_overdue",
            "incident.notice_posted",
            "product.changed",
            "statuspage.published",
            "statuspage.update_due_soon",
        }
    ),
    "statuspage": frozenset(
        {
            "ticket.filed",
            "monitor.down",
            "monitor.degraded",
            "monitor.up",
            "page.notified",
            "page.acknowledged",
            "product.changed",
        }
    ),
}
"""The routing table: which event types each service's queue is bound to.

`migrate` declares every service's queue and bindings from it, so an event is never
published before the queue of the service that must receive it exists. A service adds
an event type here when it adds a handler for it.
"""

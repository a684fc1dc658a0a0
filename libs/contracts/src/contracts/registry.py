"""Every event type Klaxon knows, by routing key."""

from contracts.envelope import EventPayload, UnknownEventType
from contracts.intake import TicketFiled, TicketStatusChanged
from contracts.monitor import (
    MonitorCameUp,
    MonitorVerificationFailed,
    MonitorVerificationPassed,
    MonitorWentDown,
)
from contracts.notifier import (
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
    PageAcknowledged,
    PageEscalated,
    PageNotified,
    PageOpened,
    PageResolved,
    ReporterAcknowledged,
)
from contracts.products import CatalogueRequested, ProductChanged
from contracts.statuspage import (
    ComponentStatusChanged,
    IncidentNoticePosted,
    IncidentOpened,
    IncidentResolved,
    StatusPagePublished,
    StatusUpdateDueSoon,
    StatusUpdateOverdue,
)

_ALL: tuple[type[EventPayload], ...] = (
    TicketFiled,
    TicketStatusChanged,
    ProductChanged,
    CatalogueRequested,
    MonitorWentDown,
    MonitorCameUp,
    MonitorVerificationPassed,
    MonitorVerificationFailed,
    PageOpened,
    PageNotified,
    PageEscalated,
    PageAcknowledged,
    PageResolved,
    ReporterAcknowledged,
    NotificationRequested,
    NotificationDelivered,
    NotificationFailed,
    IncidentOpened,
    IncidentNoticePosted,
    IncidentResolved,
    ComponentStatusChanged,
    StatusUpdateOverdue,
    StatusUpdateDueSoon,
    StatusPagePublished,
)

EVENT_TYPES: dict[str, type[EventPayload]] = {model.event_type: model for model in _ALL}
if len(EVENT_TYPES) != len(_ALL):
    raise RuntimeError("two payload models share one event type")


def payload_model(event_type: str, version: int = 1) -> type[EventPayload]:
    """The payload model for a routing key and version."""
    model = EVENT_TYPES.get(event_type)
    if model is None or model.event_version != version:
        raise UnknownEventType(f"unknown event type {event_type!r} version {version}")
    return model

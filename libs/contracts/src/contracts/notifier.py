"""Events published by the notifier service (pages, escalations, outgoing messages)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from contracts.common import Person, ProductRef
from contracts.envelope import EventPayload


class PageSource(StrEnum):
    """What opened a page."""

    TICKET = "ticket"
    MONITOR = "monitor"
    VERIFICATION = "verification"
    OVERDUE = "overdue"


class Urgency(StrEnum):
    """How hard a page pushes: high escalates until acknowledged; low (an outage inside a
    patch window) emails level 1 only."""

    HIGH = "high"
    LOW = "low"


class Channel(StrEnum):
    """Ways the notifier can reach someone."""

    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    SLACK = "slack"
    WEBHOOK = "webhook"
    PAGERDUTY = "pagerduty"


class PageOpened(EventPayload):
    """A page was opened for a product (tickets and alerts for it are grouped into it)."""

    event_type: ClassVar[str] = "page.opened"

    page_id: uuid.UUID
    product: ProductRef
    source: PageSource
    summary: str
    urgency: Urgency = Urgency.HIGH
    ticket_ids: tuple[uuid.UUID, ...] = ()
    monitor_ids: tuple[uuid.UUID, ...] = ()
    opened_at: datetime


class PageNotified(EventPayload):
    """The on-call engineer was notified of a page (first notice or a new grouped ticket)."""

    event_type: ClassVar[str] = "page.notified"

    page_id: uuid.UUID
    product: ProductRef
    level: int = Field(ge=1)
    oncall: Person
    channels: tuple[Channel, ...]
    ticket_ids: tuple[uuid.UUID, ...] = ()
    notified_at: datetime


class PageEscalated(EventPayload):
    """Nobody acknowledged in time (or a deadline passed): the next level was paged."""

    event_type: ClassVar[str] = "page.escalated"

    page_id: uuid.UUID
    product: ProductRef
    from_level: int = Field(ge=1)
    to_level: int = Field(ge=1)
    oncall: Person
    reason: str
    ticket_ids: tuple[uuid.UUID, ...] = ()
    escalated_at: datetime


class PageAcknowledged(EventPayload):
    """An engineer acknowledged the page: someone is working on it."""

    event_type: ClassVar[str] = "page.acknowledged"

    page_id: uuid.UUID
    product: ProductRef
    by: Person
    ticket_ids: tuple[uuid.UUID, ...] = ()
    acknowledged_at: datetime


class PageResolved(EventPayload):
    """The page was resolved (by an engineer or by the monitor coming back up)."""

    event_type: ClassVar[str] = "page.resolved"

    page_id: uuid.UUID
    product: ProductRef
    ticket_ids: tuple[uuid.UUID, ...] = ()
    resolved_at: datetime
    note: str = ""


class ReporterAcknowledged(EventPayload):
    """The reporter of a ticket was sent the acknowledgement email."""

    event_type: ClassVar[str] = "page.reporter_acknowledged"

    page_id: uuid.UUID
    ticket_id: uuid.UUID
    reporter: Person
    sent_at: datetime


class NotificationRequested(EventPayload):
    """Another service asks the notifier to send a message (it owns every outgoing one)."""

    event_type: ClassVar[str] = "notification.requested"

    notification_id: uuid.UUID
    channel: Channel
    recipient: str
    template: str
    data: dict[str, Any] = Field(default_factory=dict)
    dedupe_key: str


class NotificationDelivered(EventPayload):
    """An outgoing message was accepted by its provider."""

    event_type: ClassVar[str] = "notification.delivered"

    notification_id: uuid.UUID
    channel: Channel
    recipient: str
    attempts: int = Field(ge=1)
    delivered_at: datetime


class NotificationFailed(EventPayload):
    """An outgoing message could not be delivered after every retry."""

    event_type: ClassVar[str] = "notification.failed"

    notification_id: uuid.UUID
    channel: Channel
    recipient: str
    attempts: int = Field(ge=1)
    error: str
    failed_at: datetime

"""Events published by the statuspage-sync service (incidents, notices, deadlines)."""

import uuid
from datetime import datetime
from typing import ClassVar

from contracts.common import ComponentStatus, Person, ProductRef
from contracts.envelope import EventPayload


class IncidentOpened(EventPayload):
    """An incident was opened on a status page."""

    event_type: ClassVar[str] = "incident.opened"

    incident_id: uuid.UUID
    status_page: str
    product: ProductRef
    title: str
    opened_at: datetime


class IncidentNoticePosted(EventPayload):
    """A notice was posted on an incident; subscribers are to be told."""

    event_type: ClassVar[str] = "incident.notice_posted"

    incident_id: uuid.UUID
    notice_id: uuid.UUID
    status_page: str
    status_page_url: str
    product: ProductRef
    incident_status: str
    message: str
    expected_resolution_at: datetime | None = None
    posted_at: datetime


class IncidentResolved(EventPayload):
    """An incident was resolved."""

    event_type: ClassVar[str] = "incident.resolved"

    incident_id: uuid.UUID
    status_page: str
    product: ProductRef
    resolved_at: datetime


class ComponentStatusChanged(EventPayload):
    """A status-page component changed status."""

    event_type: ClassVar[str] = "component.status_changed"

    component_id: uuid.UUID
    status_page: str
    product: ProductRef
    component: str
    old_status: ComponentStatus
    new_status: ComponentStatus
    changed_at: datetime


class StatusUpdateOverdue(EventPayload):
    """A CRITICAL report saw no status-page update within the promised time."""

    event_type: ClassVar[str] = "statuspage.update_overdue"

    ticket_id: uuid.UUID
    page_id: uuid.UUID | None = None
    product: ProductRef
    reporter: Person
    reported_at: datetime
    deadline_at: datetime

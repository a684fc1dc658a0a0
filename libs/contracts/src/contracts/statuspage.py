"""Events published by the statuspage-sync service: status pages, incidents, notices, deadlines.

Identifiers: ``status_page`` is a status page's slug (stable, part of its URL) and
``status_page_url`` its public address. ``page_id`` is always the *notifier's*
page (an alert to the on-call engineer), never a status page.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.common import ComponentStatus, Person, ProductRef
from contracts.envelope import EventPayload


class IncidentStatus(StrEnum):
    """Statuspage-style incident status (maintenances use their own four values)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class IncidentImpact(StrEnum):
    """Statuspage-style incident impact."""

    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class AffectedComponent(BaseModel):
    """A component a notice changed, as Statuspage's ``affected_components`` lists it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    component_id: uuid.UUID
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


class StatusPagePublished(EventPayload):
    """A status page's address and the products it covers, as they are now.

    Published when a page is created and whenever its slug, title, products or
    availability change; the newest ``changed_at`` wins. The notifier keeps a read
    model of it to put the right links in a reporter's acknowledgement email.
    """

    event_type: ClassVar[str] = "statuspage.published"

    status_page_id: uuid.UUID
    status_page: str
    title: str
    status_page_url: str
    products: tuple[str, ...] = Field(description="Slugs of the products the page covers.")
    active: bool = True
    changed_at: datetime


class IncidentOpened(EventPayload):
    """An incident was opened on a status page."""

    event_type: ClassVar[str] = "incident.opened"

    incident_id: uuid.UUID
    status_page: str
    status_page_url: str = ""
    product: ProductRef
    title: str
    impact: IncidentImpact = IncidentImpact.MAJOR
    automatic: bool = Field(
        default=False, description="Opened by Klaxon from a monitor's verdict, not by a person."
    )
    opened_at: datetime


class IncidentNoticePosted(EventPayload):
    """A notice was posted on an incident; subscribers are to be told."""

    event_type: ClassVar[str] = "incident.notice_posted"

    incident_id: uuid.UUID
    notice_id: uuid.UUID
    status_page: str
    status_page_url: str
    status_page_title: str = ""
    product: ProductRef
    incident_name: str = ""
    incident_status: str
    impact: IncidentImpact = IncidentImpact.MAJOR
    message: str
    expected_resolution_at: datetime | None = None
    affected_components: tuple[AffectedComponent, ...] = ()
    automatic: bool = Field(
        default=False, description="Written by Klaxon from a monitor's verdict, not by a person."
    )
    posted_at: datetime


class IncidentResolved(EventPayload):
    """An incident was resolved."""

    event_type: ClassVar[str] = "incident.resolved"

    incident_id: uuid.UUID
    status_page: str
    status_page_url: str = ""
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
    source: str = Field(
        default="monitor", description="What set the status: monitor, manual or maintenance."
    )
    changed_at: datetime


class DueReason(StrEnum):
    """Which promise a reminder is about."""

    NO_UPDATE_AFTER_REPORT = "no_update_after_report"
    """A CRITICAL report has seen no status-page notice yet."""
    NO_ETA_NOTICE = "no_eta_notice"
    """An incident has been open a while with no notice saying when it should be resolved."""


class StatusUpdateDueSoon(EventPayload):
    """A status-page promise is about to be broken: remind the on-call engineer.

    For ``no_update_after_report`` it comes before ``statuspage.update_overdue``
    (by default 20 of the 30 minutes); ``no_eta_notice`` has no overdue event of
    its own. Published at most once per deadline and reason.
    """

    event_type: ClassVar[str] = "statuspage.update_due_soon"

    deadline_id: uuid.UUID
    reason: DueReason
    status_page: str
    status_page_url: str
    product: ProductRef
    ticket_id: uuid.UUID | None = None
    incident_id: uuid.UUID | None = None
    page_id: uuid.UUID | None = None
    reporter: Person | None = None
    started_at: datetime = Field(description="The report's time, or when the incident opened.")
    due_at: datetime
    message: str = Field(description="What is due, in plain words, for the engineer.")


class StatusUpdateOverdue(EventPayload):
    """A CRITICAL report saw no status-page update within the promised time."""

    event_type: ClassVar[str] = "statuspage.update_overdue"

    ticket_id: uuid.UUID
    page_id: uuid.UUID | None = None
    product: ProductRef
    reporter: Person
    reported_at: datetime
    deadline_at: datetime
    deadline_id: uuid.UUID | None = None
    status_page: str = ""
    status_page_url: str = ""

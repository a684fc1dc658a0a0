"""Request and response models of the admin API (``/v1``)."""

import unicodedata
import uuid
import zoneinfo
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from contracts.common import ComponentStatus
from contracts.statuspage import IncidentImpact, IncidentStatus
from servicekit.api import UtcDatetime

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,59}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
_LINE_CONTROLS = frozenset("\t\n\r")


def _one_line(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in value):
        raise ValueError("must be one line without control characters")
    return value


def _text(value: str) -> str:
    # NUL cannot be stored, and no control character but tab and line breaks fits in XML feeds
    if any(unicodedata.category(c) == "Cc" and c not in _LINE_CONTROLS for c in value):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]
Body = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20000),
    AfterValidator(_text),
]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_text)]


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA time zone such as Europe/Berlin") from None
    return value


TimeZone = Annotated[str, AfterValidator(_time_zone)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageCreate(_Input):
    """A new status page."""

    slug: Slug
    title: Name
    time_zone: TimeZone = "Etc/UTC"
    products: list[Slug] = Field(default_factory=list, max_length=50)
    auto_open_incidents: bool = True
    auto_resolve_incidents: bool = True


class PageUpdate(_Input):
    """Fields of a page to change."""

    slug: Slug | None = None
    title: Name | None = None
    time_zone: TimeZone | None = None
    products: list[Slug] | None = Field(default=None, max_length=50)
    auto_open_incidents: bool | None = None
    auto_resolve_incidents: bool | None = None


class PageRead(BaseModel):
    """A status page as the admin API shows it."""

    id: uuid.UUID
    slug: str
    title: str
    url: str
    time_zone: str
    products: list[str]
    auto_open_incidents: bool
    auto_resolve_incidents: bool
    version: int
    updated_at: datetime


class GroupCreate(_Input):
    """A new component group."""

    name: Name
    description: Description | None = None
    position: int = Field(default=0, ge=0, le=10000)


class GroupUpdate(_Input):
    """Fields of a component group to change: an omitted field is kept, and so is a
    null name or position; a null description clears it."""

    name: Name | None = None
    description: Description | None = None
    position: int | None = Field(default=None, ge=0, le=10000)


class GroupRead(BaseModel):
    """A component group."""

    id: uuid.UUID
    name: str
    description: str | None
    position: int


class ComponentCreate(_Input):
    """A new component; a monitor feeds it if listed, or if it is of the component's product."""

    name: Name
    description: Description | None = None
    group_id: uuid.UUID | None = None
    position: int = Field(default=0, ge=0, le=10000)
    only_show_if_degraded: bool = False
    product: Slug | None = None
    monitor_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)


class ComponentUpdate(_Input):
    """Fields of a component to change: an omitted field is kept, and so is a null in a
    field that cannot be empty; a null description, group_id or product clears it."""

    name: Name | None = None
    description: Description | None = None
    group_id: uuid.UUID | None = None
    position: int | None = Field(default=None, ge=0, le=10000)
    only_show_if_degraded: bool | None = None
    product: Slug | None = None
    monitor_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)


NULLABLE = frozenset({"description", "group_id", "product"})
"""Fields of `GroupUpdate` / `ComponentUpdate` that an explicit null clears."""


def changes(data: BaseModel) -> dict[str, object]:
    """The fields an update sets: those sent, less a null where a value is required."""
    sent = data.model_dump(exclude_unset=True)
    return {k: v for k, v in sent.items() if v is not None or k in NULLABLE}


class ComponentRead(BaseModel):
    """A component with where its status came from."""

    id: uuid.UUID
    name: str
    description: str | None
    group_id: uuid.UUID | None
    position: int
    only_show_if_degraded: bool
    product: str | None
    monitor_ids: list[uuid.UUID]
    status: ComponentStatus
    status_source: str
    manual_status: ComponentStatus | None


class ManualStatus(_Input):
    """A status set by a person; monitors do not change it until it is cleared."""

    status: ComponentStatus


class ComponentChange(_Input):
    """A component's status on a notice (becomes its manual status)."""

    component_id: uuid.UUID
    status: ComponentStatus


class IncidentCreate(_Input):
    """A new incident, with its first notice."""

    name: Name
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    impact: IncidentImpact = IncidentImpact.MAJOR
    body: Body
    components: list[ComponentChange] = Field(default_factory=list, max_length=100)
    expected_resolution_at: UtcDatetime | None = None


class NoticeCreate(_Input):
    """A notice on an incident: what is known, and when it should be resolved."""

    body: Body
    status: IncidentStatus | None = None
    components: list[ComponentChange] = Field(default_factory=list, max_length=100)
    expected_resolution_at: UtcDatetime | None = None


class MaintenanceCreate(_Input):
    """A scheduled maintenance: its components are under maintenance for the window."""

    name: Name
    body: Body
    scheduled_for: UtcDatetime
    scheduled_until: UtcDatetime
    component_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)

    @field_validator("scheduled_until")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("scheduled_for")
        if start is not None and value <= start:
            raise ValueError("must be after scheduled_for")
        return value


class NoticeRead(BaseModel):
    """A notice of an incident."""

    id: uuid.UUID
    status: str
    body: str
    expected_resolution_at: datetime | None
    affected_components: list[dict[str, str]]
    automatic: bool
    created_at: datetime


class IncidentRead(BaseModel):
    """An incident or maintenance with its notices, newest first."""

    id: uuid.UUID
    kind: str
    name: str
    status: str
    impact: str
    automatic: bool
    started_at: datetime
    resolved_at: datetime | None
    scheduled_for: datetime | None
    scheduled_until: datetime | None
    component_ids: list[uuid.UUID]
    notices: list[NoticeRead]


class DeadlineState(StrEnum):
    """Where a watched promise stands."""

    WATCHING = "watching"
    CLEARED = "cleared"
    EXPIRED = "expired"


class DeadlineRead(BaseModel):
    """A watched promise."""

    id: uuid.UUID
    kind: str
    state: DeadlineState
    ticket_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    started_at: datetime
    remind_at: datetime
    due_at: datetime
    reminded_at: datetime | None
    cleared_at: datetime | None
    expired_at: datetime | None

"""API models: people, schedules, overrides, policies, pages, who is on call."""

import uuid
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator

from contracts.notifier import Channel
from servicekit.api import UtcDatetime


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    """Request models refuse fields they do not know."""

    model_config = ConfigDict(extra="forbid")


class RuleIn(Strict):
    """Reach the person on `channel`, `delay_s` seconds after the page reached them."""

    channel: Channel
    delay_s: int = Field(default=0, ge=0, le=24 * 3600)


class PersonCreate(Strict):
    """A person who can be paged."""

    name: Name
    email: EmailStr | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{5,40}$")
    slack: str | None = Field(default=None, max_length=200)
    time_zone: TimeZone = "UTC"
    rules: list[RuleIn] = Field(default_factory=list, max_length=20)


class PersonRead(BaseModel):
    """A person, their rules, their iCal feed and what is wrong with them."""

    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    slack: str | None
    time_zone: str
    rules: list[RuleIn]
    ical_url: str
    warnings: list[str]


class RestrictionIn(Strict):
    """The layer is on, on these weekdays (0 = Monday), from `start` to `end` local time."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1, max_length=7)
    start: time
    end: time


class LayerIn(Strict):
    """A rotation: members take turns, a shift of `shift_count` `shift_unit`s each,
    handing off at `rotation_start` (a local wall-clock time in the schedule's zone)."""

    name: str = Field(default="", max_length=200)
    rotation_start: datetime
    shift_unit: Literal["hours", "days", "weeks"] = "weeks"
    shift_count: int = Field(default=1, ge=1, le=1000)
    members: list[uuid.UUID] = Field(min_length=1, max_length=100)
    restrictions: list[RestrictionIn] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _local(self) -> "LayerIn":
        if self.rotation_start.tzinfo is not None:
            raise ValueError("rotation_start is a local time in the schedule's zone: no offset")
        return self


class ScheduleCreate(Strict):
    """A schedule: layers, lowest first (a higher one covers those below it)."""

    name: Name
    time_zone: TimeZone
    layers: list[LayerIn] = Field(min_length=1, max_length=20)


class ScheduleRead(BaseModel):
    """A schedule as stored."""

    id: uuid.UUID
    name: str
    time_zone: str
    layers: list[LayerIn]
    ical_url: str


class OverrideCreate(Strict):
    """`person_id` covers the schedule from `starts_at` to `ends_at`."""

    person_id: uuid.UUID
    starts_at: UtcDatetime
    ends_at: UtcDatetime

    @model_validator(mode="after")
    def _order(self) -> "OverrideCreate":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class OverrideRead(BaseModel):
    """An override."""

    id: uuid.UUID
    schedule_id: uuid.UUID
    person_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


class LevelIn(Strict):
    """One rung of the ladder: a schedule's on-call or a person, and how long they have."""

    target_type: Literal["schedule", "person"]
    target_id: uuid.UUID
    timeout_s: float = Field(default=300.0, gt=0, le=24 * 3600)


class PolicyCreate(Strict):
    """An escalation policy: for one product, or the default for the rest."""

    name: Name
    product_slug: str | None = Field(default=None, min_length=1, max_length=100)
    is_default: bool = False
    repeat: int = Field(default=0, ge=0, le=20)
    levels: list[LevelIn] = Field(min_length=1, max_length=20)


class PolicyRead(PolicyCreate):
    """A policy as stored."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID


class Shift(BaseModel):
    """Someone (or nobody) on call for a period."""

    person_id: uuid.UUID | None
    person_name: str | None
    starts_at: datetime
    ends_at: datetime


class OncallRead(BaseModel):
    """Who is on call on a schedule at a time."""

    schedule_id: uuid.UUID
    at: datetime
    person: PersonRead | None


class PageAction(Strict):
    """Who acts on a page (a known person, or the API key's name) and a note."""

    person_id: uuid.UUID | None = None
    note: str = Field(default="", max_length=2000)


class PageTicket(BaseModel):
    """A ticket grouped into a page."""

    ticket_id: uuid.UUID
    number: str
    reporter_email: str
    reporter_acknowledged_at: datetime | None


class PageEventRead(BaseModel):
    """A step on a page's timeline."""

    kind: str
    detail: str
    at: datetime


class PageRead(BaseModel):
    """A page with its tickets and timeline."""

    id: uuid.UUID
    product_slug: str
    product_name: str
    source: str
    summary: str
    state: str
    urgency: str
    level: int
    round: int
    opened_at: datetime
    notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by_name: str | None
    resolved_at: datetime | None
    tickets: list[PageTicket] = Field(default_factory=list)
    timeline: list[PageEventRead] = Field(default_factory=list)


class Warnings(BaseModel):
    """What would make a page reach nobody."""

    warnings: list[str]

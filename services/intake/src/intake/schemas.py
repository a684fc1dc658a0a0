"""API models: what the support portal sends and what it gets back."""

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
)

from contracts.common import HealthState, Severity

TicketStatus = Literal["new", "oncall_notified", "acknowledged", "resolved", "closed"]
STATUS_ORDER: tuple[str, ...] = ("new", "oncall_notified", "acknowledged", "resolved", "closed")
KNOWN_SCOPES = frozenset({"tickets:write", "tickets:read", "admin"})
TICKET_REF_PATTERN = (
    r"^(?:[Kk][Ll][Xx]-[0-9]{1,16}"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$"
)
"""A ticket's number (KLX-1042, any case) or its id (a UUID in the usual 8-4-4-4-12 form)."""

_LINE_BREAKS = {"\u2028", "\u2029"}


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _single_line(value: str) -> str:
    """Refuse CR, LF and every other control character (header injection)."""
    for char in value:
        if unicodedata.category(char) == "Cc" or char in _LINE_BREAKS:
            raise ValueError("must be one line without control characters (CR, LF, ...)")
    return value


def _http_url(value: str) -> str:
    if any(unicodedata.category(c) == "Cc" or c.isspace() for c in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    return value


SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
"""What `SingleLine` accepts, for the OpenAPI document (validated by `_single_line`)."""
NO_NUL_PATTERN = "^[^\\u0000]*$"

SingleLine = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1),
    AfterValidator(_single_line),
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
]
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
HttpUrlText = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]
Slug = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
]


class Reporter(BaseModel):
    """Who reported the problem."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[SingleLine, Field(max_length=200)]
    email: Annotated[EmailStr, Field(max_length=254)]


class TicketCreate(BaseModel):
    """A ticket as the support portal files it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "organization": "Acme Corp",
                    "reporter": {"name": "Ada Lovelace", "email": "ada@acme.example"},
                    "product": "canvas-hosting",
                    "severity": "critical",
                    "subject": "Every page returns 502",
                    "description": "Since 09:12 UTC our canvas site is down.",
                    "urls": ["https://acme.canvas.example/"],
                    "error_text": "502 Bad Gateway",
                }
            ]
        },
    )

    organization: Annotated[SingleLine, Field(max_length=200)]
    reporter: Reporter
    product: Slug = Field(description="Product slug from GET /v1/products.")
    severity: Severity
    subject: Annotated[SingleLine, Field(max_length=200)]
    description: Annotated[Text, Field(max_length=20_000)] = ""
    urls: list[HttpUrlText] = Field(default_factory=list, max_length=20)
    error_text: Annotated[Text, Field(max_length=50_000)] = ""


class ProductRead(BaseModel):
    """A product of the catalogue."""

    slug: str
    name: str
    active: bool


class ProductCreate(BaseModel):
    """A new product."""

    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: Annotated[SingleLine, Field(max_length=200)]


class ProductUpdate(BaseModel):
    """Changes to a product."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[SingleLine, Field(max_length=200)] | None = None
    active: StrictBool | None = Field(default=None, description="true or false (not 0 or 1).")


class AttachmentRead(BaseModel):
    """An attachment's metadata; GET its `url` for the bytes."""

    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    url: str
    created_at: datetime


class TimelineEntry(BaseModel):
    """One thing that happened to a ticket."""

    at: datetime
    kind: str
    status: str | None = None
    detail: str = ""


class ProductBrief(BaseModel):
    """Product as shown on a ticket."""

    slug: str
    name: str


class TicketSummary(BaseModel):
    """A ticket in a list."""

    id: uuid.UUID
    number: str
    organization: str
    reporter: Reporter
    product: ProductBrief
    severity: Severity
    subject: str
    status: TicketStatus
    monitoring_state: HealthState
    created_at: datetime
    updated_at: datetime


class TicketRead(TicketSummary):
    """A ticket with everything about it."""

    description: str
    urls: list[str]
    error_text: str
    attachments: list[AttachmentRead]
    timeline: list[TimelineEntry]
    next_steps: str = Field(description="What happens next, in words for the reporter.")


class TicketPage(BaseModel):
    """One page of tickets; pass `next_cursor` as `cursor` for the next one."""

    items: list[TicketSummary]
    next_cursor: str | None


class ApiKeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[SingleLine, Field(max_length=200)]
    scopes: list[Literal["tickets:write", "tickets:read", "admin"]] = Field(min_length=1)


class ApiKeyRead(BaseModel):
    """An API key, without its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    """A new key; `key` is shown this once and never again."""

    key: str


class CriticalUsageRow(BaseModel):
    """CRITICAL tickets of one organization, by what monitoring saw at filing time."""

    organization: str
    critical_total: int
    filed_while_up: int
    filed_while_down: int
    filed_while_unknown: int


class CriticalUsageReport(BaseModel):
    """Per organization, how many CRITICAL tickets were filed while monitoring saw the product up."""

    created_from: datetime | None
    created_to: datetime | None
    organizations: list[CriticalUsageRow]

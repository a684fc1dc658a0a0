"""API models of the monitor service."""

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(value: str) -> str:
    # NUL cannot be stored in Postgres text or jsonb; CR/LF would inject header lines
    if _CONTROL.search(value):
        raise ValueError("must be one line without control characters")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


OneLine = AfterValidator(_one_line)
Name = Annotated[str, Field(min_length=1, max_length=200), OneLine]
SLUG = r"^[a-z0-9][a-z0-9-]*$"
TAG = r"^[A-Za-z0-9_.:-]+$"
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=SLUG)]
Tag = Annotated[str, Field(min_length=1, max_length=50, pattern=TAG)]
Region = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Kind = Literal["http", "tcp", "heartbeat"]
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
State = Literal["pending", "up", "degraded", "down", "paused"]

_STATUS = re.compile(r"^([1-5]\d\d)(?:-([1-5]\d\d))?$")


def status_ranges(specs: list[str]) -> list[tuple[int, int]]:
    """``["200-299", "301"]`` as inclusive ranges."""
    ranges = []
    for spec in specs:
        match = _STATUS.match(spec)
        if match is None:
            raise ValueError(f"{spec!r} is not a status code or range such as 200-299")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise ValueError(f"{spec!r} ends before it starts")
        ranges.append((low, high))
    return ranges


class MonitorSpec(BaseModel):
    """A monitor as written by a client (create, replace, or one entry of an apply)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    product: Slug
    component: Annotated[str, Field(min_length=1, max_length=200), OneLine] | None = None
    kind: Kind = "http"
    url: Annotated[str, Field(max_length=2000), OneLine] | None = None
    method: Method = "GET"
    headers: dict[
        Annotated[str, Field(min_length=1, max_length=200), OneLine],
        Annotated[str, Field(max_length=1000), OneLine],
    ] = Field(default_factory=dict, max_length=50)
    body: Annotated[str, Field(max_length=100_000), AfterValidator(_no_nul)] | None = None
    expected_status: list[str] = Field(default_factory=lambda: ["200-399"], min_length=1)
    keyword: Annotated[str, Field(min_length=1, max_length=500), OneLine] | None = None
    keyword_absent: bool = False
    """True: the keyword must NOT appear (e.g. "error")."""
    degraded_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    follow_redirects: bool = True
    verify_tls: bool = True
    cert_warn_days: Annotated[int, Field(ge=0, le=365)] = 14
    host: Annotated[str, Field(min_length=1, max_length=253), OneLine] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    period_s: Annotated[float, Field(ge=1, le=366 * 86400)] | None = None
    grace_s: Annotated[float, Field(ge=0, le=86400)] = 0
    interval_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] | None = None
    recheck_s: Annotated[float, Field(gt=0, le=86400)] | None = None
    failures_to_down: Annotated[int, Field(ge=1, le=20)] | None = None
    successes_to_up: Annotated[int, Field(ge=1, le=20)] | None = None
    regions: list[Region] = Field(default_factory=list, max_length=20)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    paused: bool = False

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        status_ranges(value)
        return value

    @model_validator(mode="after")
    def _by_kind(self) -> "MonitorSpec":
        if self.kind == "http" and not self.url:
            raise ValueError("an http monitor needs a url")
        if self.kind == "tcp" and (not self.host or not self.port):
            raise ValueError("a tcp monitor needs a host and a port")
        if self.kind == "heartbeat" and not self.period_s:
            raise ValueError("a heartbeat monitor needs period_s")
        return self


class RegionState(BaseModel):
    """One region's view of a monitor."""

    region: str
    state: str
    last_checked_at: datetime | None
    last_error: str | None
    due_at: datetime


class MonitorRead(MonitorSpec):
    """A stored monitor with its state."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    state: State
    state_changed_at: datetime
    last_error: str | None
    cert_expires_at: datetime | None
    heartbeat_token: str | None
    last_ping_at: datetime | None
    created_at: datetime
    updated_at: datetime
    region_states: list[RegionState] = Field(default_factory=list)


class MonitorPage(BaseModel):
    """A page of monitors ordered by name; pass `next_after` as `after` for the next."""

    items: list[MonitorRead]
    next_after: str | None


class CheckResultRead(BaseModel):
    """One check."""

    at: datetime
    region: str
    outcome: str
    latency_ms: int
    error: str | None


class UptimeRead(BaseModel):
    """Uptime over a window."""

    window: str
    checks: int
    failures: int
    uptime_pct: float | None
    latency_p50_ms: int | None
    latency_p95_ms: int | None
    latency_p99_ms: int | None


class PatchWindowSpec(BaseModel):
    """A patch window: one-off (`starts_at`, `ends_at`) or recurring (`cron`, `duration_s`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    cron: Annotated[str, Field(min_length=1, max_length=200), OneLine] | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64), OneLine] = "UTC"
    duration_s: Annotated[int, Field(ge=1, le=7 * 86400)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    monitor_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    products: list[Slug] = Field(default_factory=list, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=20)


class PatchWindowRead(PatchWindowSpec):
    """A stored patch window and its next occurrence."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    next_starts_at: datetime | None
    next_ends_at: datetime | None
    created_at: datetime


class VerificationRunRead(BaseModel):
    """A patch window's verdict for one product, with its evidence."""

    id: uuid.UUID
    patch_window_id: uuid.UUID
    window_name: str
    product: str
    starts_at: datetime
    ends_at: datetime
    outcome: Literal["passed", "failed"]
    monitor_ids: list[uuid.UUID]
    evidence: list[dict[str, object]]
    decided_at: datetime


class ApplyDocument(BaseModel):
    """Monitors (and patch windows) as code: the whole desired set, keyed by name."""

    model_config = ConfigDict(extra="forbid")

    monitors: list[MonitorSpec] = Field(default_factory=list, max_length=100_000)
    patch_windows: list[PatchWindowSpec] | None = None


class ApplyResult(BaseModel):
    """What an apply changed (or, with dry_run, would change), by name."""

    dry_run: bool
    created: list[str]
    updated: list[str]
    unchanged: int
    deleted: list[str]
    patch_windows_created: list[str] = Field(default_factory=list)
    patch_windows_updated: list[str] = Field(default_factory=list)
    patch_windows_deleted: list[str] = Field(default_factory=list)

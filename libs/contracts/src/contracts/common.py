"""Value types shared by several services' payloads."""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
"""An address already validated where it entered Klaxon (the API); events only check its shape."""


class Severity(StrEnum):
    """Ticket severity as the support portal files it."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class HealthState(StrEnum):
    """What monitoring says about a product or component."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class ComponentStatus(StrEnum):
    """Statuspage-style component status."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"


class ProductRef(BaseModel):
    """A product of the vendor's catalogue, by stable slug."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    slug: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)


class Person(BaseModel):
    """Someone a message is about or goes to."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    email: Email

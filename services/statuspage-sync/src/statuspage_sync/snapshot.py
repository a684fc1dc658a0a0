"""Everything a status page shows, read in one transaction, for rendering.

Read once per change of the page (and once a minute), never per request.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from statuspage_sync.models import (
    component,
    component_group,
    component_status_span,
    incident,
    incident_component,
    notice,
    status_page,
)

HISTORY_DAYS = 90
_COUNTED = ("major_outage", "partial_outage", "degraded_performance", "under_maintenance")
RECENT_INCIDENTS = 50


@dataclass
class Incident:
    """An incident or maintenance with its notices (newest first) and components."""

    row: Any
    notices: list[Any] = field(default_factory=list)
    component_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """True once resolved (or, for a maintenance, completed)."""
        return bool(self.row.status in ("resolved", "completed"))


@dataclass
class Day:
    """One day of a component's uptime bar."""

    day: date
    major_s: float
    partial_s: float
    degraded_s: float
    maintenance_s: float
    observed_s: float
    """How much of the day the component existed (up to now)."""

    @property
    def known(self) -> bool:
        """True if the component existed on that day."""
        return self.observed_s > 0


@dataclass
class Snapshot:
    """A page, its groups, components, incidents, maintenances and uptime."""

    page: Any
    url: str
    taken_at: datetime
    groups: list[Any]
    components: list[Any]
    incidents: list[Incident]
    maintenances: list[Incident]
    uptime: dict[uuid.UUID, list[Day]]

    @property
    def zone(self) -> ZoneInfo:
        """The page's time zone."""
        return ZoneInfo(self.page.time_zone)


async def _incidents(session: AsyncSession, page_id: uuid.UUID, kind: str) -> list[Incident]:
    since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    rows = await session.execute(
        select(incident)
        .where(
            incident.c.status_page_id == page_id,
            incident.c.kind == kind,
            or_(
                incident.c.resolved_at.is_(None),
                incident.c.resolved_at >= since,
                incident.c.scheduled_until >= since,
            ),
        )
        .order_by(incident.c.started_at.desc(), incident.c.created_at.desc())
        .limit(500)
    )
    found = {row.id: Incident(row) for row in rows}
    if not found:
        return []
    ids = list(found)
    for n in await session.execute(
        select(notice).where(notice.c.incident_id.in_(ids)).order_by(notice.c.created_at.desc())
    ):
        found[n.incident_id].notices.append(n)
    for link in await session.execute(
        select(incident_component).where(incident_component.c.incident_id.in_(ids))
    ):
        found[link.incident_id].component_ids.append(link.component_id)
    return list(found.values())


def _days(now: datetime, zone: ZoneInfo) -> list[tuple[date, float, float]]:
    """The last 90 days in the page's time zone, oldest first: (day, start, end) with
    start and end as timestamps, today ending now."""
    today = now.astimezone(zone).date()
    result = []
    for back in range(HISTORY_DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        start = datetime.combine(day, datetime.min.time(), tzinfo=zone).timestamp()
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        result.append((day, start, min(end.timestamp(), now.timestamp())))
    return result


def _uptime(
    spans: list[Any], created_at: datetime, now: datetime, days: list[tuple[date, float, float]]
) -> list[Day]:
    """Seconds spent in each status on each of `days`.

    Plain float timestamps: datetime arithmetic with a ZoneInfo costs microseconds per
    operation, and this runs 90 times per component.
    """
    created_s = created_at.timestamp()
    intervals = [
        (s.status, s.started_at.timestamp(), (s.ended_at or now).timestamp())
        for s in spans
        if s.status in _COUNTED
    ]
    result = []
    for day, start_s, end_s in days:
        totals = dict.fromkeys(_COUNTED, 0.0)
        for status, began, ended in intervals:
            overlap = min(ended, end_s) - max(began, start_s)
            if overlap > 0:
                totals[status] += overlap
        result.append(
            Day(
                day=day,
                major_s=totals["major_outage"],
                partial_s=totals["partial_outage"],
                degraded_s=totals["degraded_performance"],
                maintenance_s=totals["under_maintenance"],
                observed_s=max(0.0, end_s - max(start_s, created_s)),
            )
        )
    return result


async def take(session: AsyncSession, slug: str, url: str) -> Snapshot | None:
    """The page's snapshot, or None if there is no such page."""
    page = (await session.execute(select(status_page).where(status_page.c.slug == slug))).first()
    if page is None:
        return None
    now = datetime.now(UTC)
    zone = ZoneInfo(page.time_zone)
    groups = list(
        await session.execute(
            select(component_group)
            .where(component_group.c.status_page_id == page.id)
            .order_by(component_group.c.position, component_group.c.name)
        )
    )
    comps = list(
        await session.execute(
            select(component)
            .where(component.c.status_page_id == page.id)
            .order_by(component.c.position, component.c.name)
        )
    )
    spans: dict[uuid.UUID, list[Any]] = {c.id: [] for c in comps}
    if comps:
        for span in await session.execute(
            select(component_status_span).where(
                component_status_span.c.component_id.in_(list(spans)),
                or_(
                    component_status_span.c.ended_at.is_(None),
                    component_status_span.c.ended_at >= now - timedelta(days=HISTORY_DAYS + 1),
                ),
            )
        ):
            spans[span.component_id].append(span)
    days = _days(now, zone)
    return Snapshot(
        page=page,
        url=url,
        taken_at=now,
        groups=groups,
        components=comps,
        incidents=await _incidents(session, page.id, "incident"),
        maintenances=await _incidents(session, page.id, "maintenance"),
        uptime={c.id: _uptime(spans[c.id], c.created_at, now, days) for c in comps},
    )

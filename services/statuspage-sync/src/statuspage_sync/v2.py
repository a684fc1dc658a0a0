"""Atlassian Statuspage public API v2 documents, built from a snapshot.

Same paths, field names, types and status values as Statuspage's public
``/api/v2/*.json``, so existing widgets, scripts and client libraries work unchanged.
Identifiers are Klaxon's UUIDs (strings, as Statuspage's ids are).
"""

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from statuspage_sync.snapshot import RECENT_INCIDENTS, Incident, Snapshot

SEVERITY = {
    "operational": 0,
    "under_maintenance": 1,
    "degraded_performance": 2,
    "partial_outage": 3,
    "major_outage": 4,
}
INDICATORS = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}
_FROM_COMPONENT = {
    "operational": "none",
    "under_maintenance": "maintenance",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
_RANK = ["none", "maintenance", "minor", "major", "critical"]


def ts(value: datetime | None, zone: tzinfo = UTC) -> str | None:
    """A timestamp as Statuspage writes it: ISO 8601 with milliseconds, in the page's
    time zone (``2026-11-29T14:03:07.123+01:00``; ``Z`` in UTC)."""
    if value is None:
        return None
    local = value.astimezone(zone)
    text = local.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _page(snap: Snapshot) -> dict[str, Any]:
    page = snap.page
    return {
        "id": str(page.id),
        "name": page.title,
        "url": snap.url,
        "time_zone": page.time_zone,
        "updated_at": ts(page.updated_at, snap.zone),
    }


def visible_components(snap: Snapshot) -> list[Any]:
    """Components shown: those marked only-if-degraded are hidden while operational."""
    return [
        c for c in snap.components if not (c.only_show_if_degraded and c.status == "operational")
    ]


def _component(snap: Snapshot, c: Any) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "name": c.name,
        "status": c.status,
        "created_at": ts(c.created_at, snap.zone),
        "updated_at": ts(c.updated_at, snap.zone),
        "position": c.position,
        "description": c.description,
        "showcase": True,
        "start_date": c.created_at.date().isoformat(),
        "group_id": str(c.group_id) if c.group_id else None,
        "page_id": str(snap.page.id),
        "group": False,
        "only_show_if_degraded": c.only_show_if_degraded,
    }


def group_status(members: list[Any]) -> str:
    """A group shows the worst status of its components."""
    statuses = [m.status for m in members] or ["operational"]
    return str(max(statuses, key=lambda s: SEVERITY.get(s, 0)))


def components(snap: Snapshot) -> list[dict[str, Any]]:
    """Components and groups, as Statuspage lists them (groups with ``group: true``)."""
    shown = visible_components(snap)
    result = [_component(snap, c) for c in shown]
    for g in snap.groups:
        members = [c for c in snap.components if c.group_id == g.id]
        result.append(
            {
                "id": str(g.id),
                "name": g.name,
                "status": group_status(members),
                "created_at": ts(g.created_at, snap.zone),
                "updated_at": ts(g.updated_at, snap.zone),
                "position": g.position,
                "description": g.description,
                "showcase": False,
                "start_date": None,
                "group_id": None,
                "page_id": str(snap.page.id),
                "group": True,
                "only_show_if_degraded": False,
                "components": [str(c.id) for c in members],
            }
        )
    return sorted(result, key=lambda item: (item["position"], item["name"]))


def status(snap: Snapshot) -> dict[str, str]:
    """The page's overall indicator and its description."""
    indicator = "none"
    for c in snap.components:
        candidate = _FROM_COMPONENT.get(c.status, "none")
        if _RANK.index(candidate) > _RANK.index(indicator):
            indicator = candidate
    for item in snap.incidents:
        impact = str(item.row.impact)
        if not item.resolved and impact in _RANK and _RANK.index(impact) > _RANK.index(indicator):
            indicator = impact
    return {"indicator": indicator, "description": INDICATORS[indicator]}


def _update(snap: Snapshot, item: Incident, n: Any) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "status": n.status,
        "body": n.body,
        "incident_id": str(item.row.id),
        "created_at": ts(n.created_at, snap.zone),
        "updated_at": ts(n.created_at, snap.zone),
        "display_at": ts(n.created_at, snap.zone),
        "affected_components": list(n.affected_components) or None,
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident(snap: Snapshot, item: Incident) -> dict[str, Any]:
    """An incident (or maintenance) as Statuspage writes it."""
    row = item.row
    members = [c for c in snap.components if c.id in set(item.component_ids)]
    doc: dict[str, Any] = {
        "id": str(row.id),
        "name": row.name,
        "status": row.status,
        "created_at": ts(row.created_at, snap.zone),
        "updated_at": ts(row.updated_at, snap.zone),
        "monitoring_at": ts(row.monitoring_at, snap.zone),
        "resolved_at": ts(row.resolved_at, snap.zone),
        "impact": row.impact,
        "shortlink": f"{snap.url}#incident-{row.id}",
        "started_at": ts(row.started_at, snap.zone),
        "page_id": str(snap.page.id),
        "incident_updates": [_update(snap, item, n) for n in item.notices],
        "components": [_component(snap, c) for c in members],
    }
    if row.kind == "maintenance":
        doc["scheduled_for"] = ts(row.scheduled_for, snap.zone)
        doc["scheduled_until"] = ts(row.scheduled_until, snap.zone)
    return doc


def documents(snap: Snapshot) -> dict[str, bytes]:
    """Every v2 document of the page, by path under ``api/v2/``."""
    page = _page(snap)
    comps = components(snap)
    overall = status(snap)
    recent = [incident(snap, i) for i in snap.incidents[:RECENT_INCIDENTS]]
    unresolved = [incident(snap, i) for i in snap.incidents if not i.resolved]
    maints = [incident(snap, m) for m in snap.maintenances[:RECENT_INCIDENTS]]
    upcoming = [incident(snap, m) for m in snap.maintenances if m.row.status == "scheduled"]
    active = [
        incident(snap, m) for m in snap.maintenances if m.row.status in ("in_progress", "verifying")
    ]
    docs: dict[str, Any] = {
        "summary.json": {
            "page": page,
            "components": comps,
            "incidents": unresolved,
            "scheduled_maintenances": active + upcoming,
            "status": overall,
        },
        "status.json": {"page": page, "status": overall},
        "components.json": {"page": page, "components": comps},
        "incidents.json": {"page": page, "incidents": recent},
        "incidents/unresolved.json": {"page": page, "incidents": unresolved},
        "scheduled-maintenances.json": {"page": page, "scheduled_maintenances": maints},
        "scheduled-maintenances/upcoming.json": {"page": page, "scheduled_maintenances": upcoming},
        "scheduled-maintenances/active.json": {"page": page, "scheduled_maintenances": active},
    }
    return {
        name: json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        for name, doc in docs.items()
    }

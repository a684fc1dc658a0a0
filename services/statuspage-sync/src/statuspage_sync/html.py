"""The public HTML page: server-rendered with Jinja2, readable without JavaScript.

Every colour comes with text (status words, icons hidden from screen readers,
an accessible name and a hover title on each uptime bar).
"""

from collections import defaultdict
from datetime import datetime
from functools import cache
from html import escape as escape_html
from importlib import resources
from typing import Any

import jinja2

from statuspage_sync import v2
from statuspage_sync.snapshot import Day, Incident, Snapshot

STATUS_TEXT = {
    "operational": ("Operational", "ok", "✓"),
    "degraded_performance": ("Degraded performance", "minor", "!"),
    "partial_outage": ("Partial outage", "partial", "!"),
    "major_outage": ("Major outage", "major", "✕"),
    "under_maintenance": ("Under maintenance", "maint", "🔧"),
}
OVERALL = {
    "none": ("ok", "✓"),
    "maintenance": ("maint", "🔧"),
    "minor": ("minor", "!"),
    "major": ("partial", "!"),
    "critical": ("major", "✕"),
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
IMPACT_TEXT = {
    "none": "No impact",
    "minor": "Minor impact",
    "major": "Major impact",
    "critical": "Critical impact",
    "maintenance": "Maintenance",
}


@cache
def environment() -> jinja2.Environment:
    """The template environment (autoescaping on)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("statuspage_sync", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def stylesheet() -> bytes:
    """The page's stylesheet."""
    return resources.files("statuspage_sync").joinpath("templates/style.css").read_bytes()


def _when(snap: Snapshot, value: datetime) -> dict[str, str]:
    local = value.astimezone(snap.zone)
    return {"iso": v2.ts(value, snap.zone) or "", "text": local.strftime("%b %d, %Y %H:%M %Z")}


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes} min"


def _bar(day: Day) -> dict[str, str]:
    label = f"{_MONTHS[day.day.month - 1]} {day.day.day:02d}, {day.day.year}"
    if not day.known:
        return {"css": "none", "text": f"{label}: no data"}
    parts = []
    for seconds, what in (
        (day.major_s, "major outage"),
        (day.partial_s, "partial outage"),
        (day.degraded_s, "degraded performance"),
        (day.maintenance_s, "maintenance"),
    ):
        if seconds >= 30:
            parts.append(f"{_minutes(seconds)} {what}")
    css = (
        "major"
        if day.major_s >= 30
        else "partial"
        if day.partial_s >= 30
        else "minor"
        if day.degraded_s + day.maintenance_s >= 30
        else "ok"
    )
    return {"css": css, "text": f"{label}: " + (", ".join(parts) or "no downtime")}


def _bars(days: list[Day]) -> str:
    """The uptime bar's rectangles, each with its day's figure as a hover title, as
    markup (every text in it escaped here; the template marks it safe).

    Built here rather than in the template: 90 per component, a loop in Jinja (or
    Markup.format) is the slowest part of rendering the page."""
    rects = []
    for index, day in enumerate(days):
        bar = _bar(day)
        rects.append(
            f'<rect x="{index * 4}" y="0" width="3" height="24" class="{bar["css"]}">'
            f"<title>{escape_html(bar['text'])}</title></rect>"
        )
    return "".join(rects)


def uptime_percent(days: list[Day]) -> float | None:
    """Uptime over the known days: a major outage counts fully, a partial one 30 %."""
    known = [d for d in days if d.known]
    if not known:
        return None
    total = sum(d.observed_s for d in known)
    down = sum(d.major_s + 0.3 * d.partial_s for d in known)
    return max(0.0, 100.0 * (1 - down / total))


def _component(snap: Snapshot, c: Any) -> dict[str, Any]:
    text, css, icon = STATUS_TEXT[c.status]
    days = snap.uptime.get(c.id, [])
    percent = uptime_percent(days)
    uptime_text = (
        f"{percent:.2f} % uptime over the last 90 days" if percent is not None else "no data yet"
    )
    return {
        "name": c.name,
        "description": c.description,
        "status_text": text,
        "css": css,
        "icon": icon,
        "bars": _bars(days),
        "bars_width": len(days) * 4,
        "uptime_text": uptime_text,
    }


def _incident(snap: Snapshot, item: Incident) -> dict[str, Any]:
    row = item.row
    names = [c.name for c in snap.components if c.id in set(item.component_ids)]
    window = ""
    if row.kind == "maintenance":
        window = (
            f"Scheduled {_when(snap, row.scheduled_for)['text']} to "
            f"{_when(snap, row.scheduled_until)['text']}"
        )
    notices = []
    for n in item.notices:
        entry: dict[str, Any] = {
            "status_text": n.status.replace("_", " ").capitalize(),
            "body": n.body,
            **_when(snap, n.created_at),
            "eta": _when(snap, n.expected_resolution_at)
            if n.expected_resolution_at and row.kind == "incident"
            else None,
        }
        notices.append(entry)
    return {
        "id": str(row.id),
        "name": row.name,
        "css": row.impact,
        "impact_text": IMPACT_TEXT.get(row.impact, row.impact),
        "status_text": row.status.replace("_", " ").capitalize(),
        "window": window,
        "affects": ", ".join(names),
        "notices": notices,
    }


def _history(snap: Snapshot) -> list[dict[str, Any]]:
    months: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in snap.incidents:
        if item.resolved:
            key = item.row.started_at.astimezone(snap.zone).strftime("%Y-%m")
            months[key].append(_incident(snap, item))
    now = snap.taken_at.astimezone(snap.zone)
    keys = []
    year, month = now.year, now.month
    for _ in range(3):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return [
        {
            "key": key,
            "title": datetime.strptime(key, "%Y-%m").strftime("%B %Y"),
            "incidents": months.get(key, []),
        }
        for key in keys
    ]


def render(snap: Snapshot) -> bytes:
    """The page's HTML."""
    overall = v2.status(snap)
    css, icon = OVERALL[overall["indicator"]]
    shown = v2.visible_components(snap)
    groups = []
    for g in snap.groups:
        members = [c for c in shown if c.group_id == g.id]
        if not members:
            continue
        text, group_css, _ = STATUS_TEXT[v2.group_status(members)]
        groups.append(
            {
                "id": str(g.id),
                "name": g.name,
                "description": g.description,
                "status_text": text,
                "css": group_css,
                "components": [_component(snap, c) for c in members],
            }
        )
    grouped = {g.id for g in snap.groups}
    context = {
        "page": snap.page,
        "overall": {"css": css, "icon": icon, "text": overall["description"]},
        "updated": _when(snap, snap.page.updated_at),
        "active_incidents": [_incident(snap, i) for i in snap.incidents if not i.resolved],
        "active_maintenances": [
            _incident(snap, m)
            for m in snap.maintenances
            if m.row.status in ("in_progress", "verifying")
        ],
        "upcoming_maintenances": [
            _incident(snap, m) for m in reversed(snap.maintenances) if m.row.status == "scheduled"
        ],
        "groups": groups,
        "ungrouped": [_component(snap, c) for c in shown if c.group_id not in grouped],
        "history": _history(snap),
    }
    return environment().get_template("page.html.j2").render(context).encode()

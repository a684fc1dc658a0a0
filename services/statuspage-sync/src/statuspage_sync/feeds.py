"""Atom and RSS feeds of a page's incidents and maintenances, with their notices."""

from feedgen.feed import FeedGenerator
from markupsafe import escape

from statuspage_sync.snapshot import Incident, Snapshot

FEED_ITEMS = 50


def _content(snap: Snapshot, item: Incident) -> str:
    parts = []
    for n in item.notices:
        when = n.created_at.astimezone(snap.zone).strftime("%b %d, %H:%M %Z")
        eta = ""
        if n.expected_resolution_at is not None and item.row.kind == "incident":
            eta = " Expected resolution: " + n.expected_resolution_at.astimezone(
                snap.zone
            ).strftime("%b %d, %H:%M %Z")
        parts.append(
            f"<p><small>{escape(when)}</small><br><strong>{escape(n.status.capitalize())}</strong>"
            f" - {escape(n.body)}{escape(eta)}</p>"
        )
    return "".join(parts)


def _generator(snap: Snapshot) -> FeedGenerator:
    feed = FeedGenerator()
    feed.id(f"tag:klaxon,2026:{snap.page.id}")
    feed.title(f"{snap.page.title} status history")
    feed.link(href=snap.url, rel="alternate")
    feed.link(href=f"{snap.url}history.atom", rel="self")
    feed.description(f"Incidents and maintenance of {snap.page.title}")
    feed.language("en")
    feed.updated(snap.page.updated_at)
    items = sorted(
        [*snap.incidents, *snap.maintenances],
        key=lambda i: i.notices[0].created_at if i.notices else i.row.created_at,
        reverse=True,
    )[:FEED_ITEMS]
    for item in reversed(items):
        entry = feed.add_entry()
        entry.id(f"tag:klaxon,2026:incident/{item.row.id}")
        entry.title(item.row.name)
        entry.link(href=f"{snap.url}#incident-{item.row.id}")
        entry.published(item.row.created_at)
        entry.updated(item.notices[0].created_at if item.notices else item.row.updated_at)
        entry.content(_content(snap, item), type="html")
        entry.description(_content(snap, item))
    return feed


def render(snap: Snapshot) -> dict[str, bytes]:
    """``history.atom`` and ``history.rss``."""
    feed = _generator(snap)
    return {"history.atom": feed.atom_str(pretty=False), "history.rss": feed.rss_str(pretty=False)}

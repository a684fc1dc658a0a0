"""Emails as delivery payloads: multipart text + HTML from Jinja2 templates, with a
Message-ID derived from the delivery's dedupe key (a resend after a crash carries the
same one) and threading headers, so every mail about one page, or to one reporter about
one ticket, lands in one thread."""

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from notifier.settings import Settings

_ENV = Environment(
    loader=PackageLoader("notifier", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=False,
    keep_trailing_newline=True,
)


def message_id(settings: Settings, key: str) -> str:
    """A Message-ID that is the same for the same dedupe key."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{settings.mail_domain}>"


def page_thread(settings: Settings, page_id: uuid.UUID) -> str:
    """The Message-ID every mail about a page refers to (the first one carries it)."""
    return f"<page-{page_id}@{settings.mail_domain}>"


def ticket_thread(settings: Settings, ticket_id: uuid.UUID) -> str:
    """The Message-ID of a reporter's acknowledgement; their later mails refer to it."""
    return f"<ticket-{ticket_id}@{settings.mail_domain}>"


def render(
    settings: Settings,
    *,
    template: str,
    to: str,
    subject: str,
    dedupe_key: str,
    thread: str,
    is_thread_start: bool,
    context: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The payload of an email delivery: addresses, headers, both bodies and `meta` (what
    the outcome handler needs to know about it)."""
    values = {"subject": subject, **context}
    text = _ENV.get_template(f"{template}.txt").render(values)
    html = _ENV.get_template(f"{template}.html").render(values)
    headers: dict[str, str] = {}
    if is_thread_start:
        mid = thread
    else:
        mid = message_id(settings, dedupe_key)
        headers = {"In-Reply-To": thread, "References": thread}
    return {
        "to": to,
        "subject": subject,
        "text": text,
        "html": html,
        "message_id": mid,
        "headers": headers,
        **meta,
    }


def fmt_time(at: datetime) -> str:
    """A time as mails show it."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def link_list(links: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Status-page links as templates take them."""
    return [{"title": title, "url": url} for title, url in links]

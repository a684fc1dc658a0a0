"""Signed, expiring acknowledge/resolve links for notifications (itsdangerous).

A link names one page and one action and who it was sent to; it is signed with the
service's link secret (`notifier.link_secret`: the same on every replica and across
restarts) and refused after ``link_max_age_s``. A GET of the link
only shows a confirm page; the POST acts (mail scanners that prefetch links act on nothing).
"""

import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from notifier.settings import Settings

ACTIONS = ("acknowledge", "resolve")
_SALT = "klaxon.page-action"


@dataclass(frozen=True)
class LinkAction:
    """What a valid link asks for."""

    page_id: uuid.UUID
    action: str
    person_id: uuid.UUID | None


class BadLink(Exception):
    """The link is forged, altered or expired."""


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def action_url(
    settings: Settings,
    secret: str,
    *,
    page_id: uuid.UUID,
    action: str,
    person_id: uuid.UUID | None,
) -> str:
    """The public URL that performs `action` on a page for `person_id`, signed with `secret`."""
    token = _serializer(secret).dumps(
        {"p": str(page_id), "a": action, "w": str(person_id) if person_id else None}
    )
    return f"{settings.public_base_url.rstrip('/')}/v1/links/{token}"


def read_link(settings: Settings, secret: str, token: str) -> LinkAction:
    """The action a token signed with `secret` carries; `BadLink` if forged or expired."""
    try:
        data = _serializer(secret).loads(token, max_age=settings.link_max_age_s)
    except SignatureExpired as exc:
        raise BadLink("this link has expired") from exc
    except BadSignature as exc:
        raise BadLink("this link is not valid") from exc
    try:
        action = str(data["a"])
        if action not in ACTIONS:
            raise BadLink("this link is not valid")
        who = data.get("w")
        return LinkAction(uuid.UUID(data["p"]), action, uuid.UUID(who) if who else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadLink("this link is not valid") from exc

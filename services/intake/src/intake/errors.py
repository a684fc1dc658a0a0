"""Intake's domain errors, each a problem+json response (servicekit maps them)."""

from servicekit.problems import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
)


class TicketNotFound(NotFound):
    """No ticket has that id or number."""

    title = "Ticket not found"


class AttachmentTooLarge(PayloadTooLarge):
    """An attachment, the number of attachments, or the whole body is over its limit."""


class UnsupportedAttachment(UnsupportedMediaType):
    """An attachment is not an image, a PDF or text by its content."""


class IdempotencyKeyReused(Problem):
    """The Idempotency-Key was first used with a different request body."""

    status = 422
    title = "Idempotency-Key reused with a different request"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"the Idempotency-Key {key!r} was already used with a different request body; "
            "send a new key for a new ticket",
            errors=[{"field": "Idempotency-Key", "reason": "already used with a different body"}],
        )


class IdempotencyKeyInFlight(Conflict):
    """The first request with this Idempotency-Key has not finished."""


__all__ = [
    "AttachmentTooLarge",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "TicketNotFound",
    "Unprocessable",
    "UnsupportedAttachment",
]

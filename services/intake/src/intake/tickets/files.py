"""Uploaded files: checked against the limits, sniffed, and hashed once."""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intake.content import accepted_type
from intake.errors import AttachmentTooLarge
from intake.schemas import AttachmentRead
from intake.settings import Settings


@dataclass(frozen=True)
class Upload:
    """One uploaded file, read in full (its size was capped while reading)."""

    filename: str
    data: bytes
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())


def check_room(*, existing: int, adding: int, settings: Settings) -> None:
    """413 unless a ticket with `existing` attachments can take `adding` more."""
    if existing + adding > settings.attachments_per_ticket:
        raise AttachmentTooLarge(
            f"a ticket holds at most {settings.attachments_per_ticket} attachments",
            limit=settings.attachments_per_ticket,
        )


def check_uploads(uploads: Sequence[Upload], *, settings: Settings) -> list[tuple[Upload, str]]:
    """Each upload with its media type (sniffed), within the per-file limit (413, 415)."""
    checked = []
    for upload in uploads:
        if len(upload.data) > settings.attachment_max_bytes:
            raise AttachmentTooLarge(
                f"attachment {upload.filename!r} is over {settings.attachment_max_bytes} bytes",
                limit_bytes=settings.attachment_max_bytes,
            )
        checked.append((upload, accepted_type(upload.data, upload.filename)))
    return checked


def file_digests(uploads: Sequence[Upload]) -> list[list[str]]:
    """Name and hash of each upload, for a request fingerprint."""
    return [[u.filename, u.sha256] for u in uploads]


def attachment_url(ticket_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
    """Where an attachment's bytes are served."""
    return f"/v1/tickets/{ticket_id}/attachments/{attachment_id}"


def attachment_rows(
    ticket_id: uuid.UUID, checked: Sequence[tuple[Upload, str]], at: datetime
) -> list[dict[str, Any]]:
    """The attachment rows to insert for checked uploads."""
    return [
        {
            "id": uuid.uuid4(),
            "ticket_id": ticket_id,
            "filename": upload.filename,
            "content_type": media_type,
            "size_bytes": len(upload.data),
            "sha256": upload.sha256,
            "content": upload.data,
            "created_at": at,
        }
        for upload, media_type in checked
    ]


def attachment_read(row: dict[str, Any]) -> AttachmentRead:
    """The API view of an attachment row."""
    return AttachmentRead(
        id=row["id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        url=attachment_url(row["ticket_id"], row["id"]),
        created_at=row["created_at"],
    )

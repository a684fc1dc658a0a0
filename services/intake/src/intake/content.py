"""What an attachment is, judged by its bytes and never by its name."""

from intake.errors import UnsupportedAttachment

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def sniff(data: bytes) -> str | None:
    """The media type of `data` (PNG, JPEG, GIF, WebP, PDF or UTF-8 text), or None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain; charset=utf-8"


def accepted_type(data: bytes, filename: str) -> str:
    """The media type to store for `data`; raises UnsupportedAttachment for anything else."""
    media_type = sniff(data)
    if media_type is None:
        raise UnsupportedAttachment(
            f"attachment {filename!r} is not an image (PNG, JPEG, GIF, WebP), a PDF or "
            "UTF-8 text, judged by its content",
            filename=filename,
        )
    return media_type

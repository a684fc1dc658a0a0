"""Settings of the intake service (``KLAXON_*`` environment variables)."""

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Intake settings."""

    service_name: str = "intake"
    db_schema: str = "intake"
    http_port: int = 8001

    attachment_max_bytes: int = 10 * 1024 * 1024
    attachments_per_ticket: int = 10
    json_body_max_bytes: int = 1024 * 1024
    """Cap of a JSON body, and of the non-file parts of a multipart body."""
    upload_memory_bytes: int = Field(default=160 * 1024 * 1024, ge=1024 * 1024)
    """Bytes that multipart uploads in progress may hold at once, counted in bytes, not
    requests. A multipart body is held in memory (about twice at its peak, while it is
    parsed and stored), so each upload reserves its declared Content-Length, or
    ``request_body_max_bytes`` (about 101 MiB with the defaults) when it declares none,
    before its body is read. With the default 160 MiB: many small uploads at once, one at
    the largest size, and at most about 320 MiB at the peak, within a 512 MiB pod. An
    upload that finds too little free waits up to ``upload_wait_s``, then gets 503 with
    Retry-After."""
    upload_wait_s: float = Field(default=2.0, ge=0)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    """Request headers above this in all are refused with 431."""
    status_page_update_promise_min: int = 30
    """Minutes within which a CRITICAL reporter is promised a status-page update."""
    idempotency_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """How long an Idempotency-Key is remembered (a retry within it replays the first
    response); older keys are deleted by the maintenance loop."""

    @property
    def request_body_max_bytes(self) -> int:
        """Cap of a whole multipart body: every attachment at its limit, plus the fields."""
        return self.attachments_per_ticket * (self.attachment_max_bytes + 16 * 1024) + (
            self.json_body_max_bytes
        )

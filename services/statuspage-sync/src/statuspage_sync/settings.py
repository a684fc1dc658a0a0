"""Settings of the statuspage-sync service (``KLAXON_*`` environment variables)."""

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Statuspage-sync settings."""

    service_name: str = "statuspage"
    db_schema: str = "statuspage"
    http_port: int = 8004

    public_base_url: str = "http://127.0.0.1:8004"
    """Where customers reach this service; a page's URL is ``<base>/status/<slug>/``."""
    report_update_deadline_s: float = Field(default=30 * 60.0, gt=0)
    """A CRITICAL report is promised a status-page notice within this long."""
    report_reminder_s: float = Field(default=20 * 60.0, gt=0)
    """When, after the report, the on-call engineer is reminded of that promise."""
    eta_reminder_s: float = Field(default=30 * 60.0, gt=0)
    """An incident open this long with no notice carrying an ETA gets a reminder."""
    render_max_age_s: float = Field(default=60.0, gt=0)
    """A rendered page is rendered again after this long even if nothing changed (the
    uptime bars and 'upcoming' lists move with the clock)."""
    cache_max_age_s: int = Field(default=5, ge=0)
    """``Cache-Control: max-age`` of public responses."""
    json_body_max_bytes: int = 256 * 1024
    export_dir: str | None = None
    """If set, every page is written here as static files after each change."""

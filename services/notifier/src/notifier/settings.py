"""Settings of the notifier service (``KLAXON_*`` environment variables)."""

from pydantic import Field

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Notifier settings: SMTP, links, the reporter email's promise, escalation defaults."""

    service_name: str = "notifier"
    db_schema: str = "notifier"
    http_port: int = 8003
    consumer_workers: int = 4
    """Batches handled at once: a page's handler runs a dozen statements, so at 50 CRITICAL
    tickets a second one batch at a time falls behind on a loaded machine."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    """Upgrade the connection with STARTTLS (port 587 style)."""
    smtp_tls: bool = False
    """Connect with implicit TLS (port 465 style)."""
    smtp_ca_file: str = ""
    """A CA bundle to verify the SMTP server with (the system's if empty)."""
    smtp_timeout_s: float = 10.0
    smtp_connections: int = Field(default=4, ge=1)
    """SMTP connections kept open and reused by the email sender."""
    mail_from: str = "Klaxon <klaxon@localhost>"
    mail_domain: str = "klaxon.localhost"
    """The right-hand side of every Message-ID."""

    public_base_url: str = "http://127.0.0.1:8003"
    """Where the signed acknowledge/resolve links in emails point."""
    link_secret: str = ""
    """Signs acknowledge/resolve links. Optional: when empty, the notifier signs with a
    random secret made once and kept in its schema (`notifier.link_secret`), so links
    outlive restarts and work on every replica; set it only to choose the secret."""
    link_max_age_s: int = Field(default=24 * 3600, gt=0)

    default_status_page_url: str = "https://status.example.com"
    """Shown to reporters of products no status page covers yet."""
    after_hours_phone: str = "+1 555 0100"
    after_hours_phones: dict[str, str] = Field(default_factory=dict)
    """After-hours number per product slug (JSON); `after_hours_phone` for the rest."""
    status_update_promise_min: int = 30
    """Minutes within which a CRITICAL reporter is promised a status-page update."""

    default_ack_timeout_s: float = 300.0
    gap_warning_days: int = 14

    def phone_for(self, product_slug: str) -> str:
        """The after-hours number for a product."""
        return self.after_hours_phones.get(product_slug, self.after_hours_phone)

"""Settings of the notifier service (``KLAXON_*`` environment variables)."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Notifier settings."""

    service_name: str = "notifier"
    db_schema: str = "notifier"
    http_port: int = 8003

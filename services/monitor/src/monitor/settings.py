"""Settings of the monitor service (``KLAXON_*`` environment variables)."""

from servicekit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Monitor settings."""

    service_name: str = "monitor"
    db_schema: str = "monitor"
    http_port: int = 8002
